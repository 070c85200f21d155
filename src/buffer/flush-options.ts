// The options both buffers take, their schemas and defaults, and what they log when no callback is given.
import { printable, shown, type CounterError } from "../core/errors.js";
import { fn, positiveInt, timerMs, type Shape } from "../core/options.js";
import { realTimers } from "../core/timers.js";
import type { DeadLetter, FlushErrorInfo, FlushResult } from "./results.js";

/** The options both buffers take: how often and how hard they flush, and whom they tell.
 *
 * @example
 * ```ts
 * new CounterBuffer(client, { maxKeys: 500, concurrency: 32, maxRetryDelayMs: 10_000, onDeadLetter: (l) => log.error(l) });
 * ```
 */
export interface FlushOptions {
  /** Flush as soon as this many distinct keys are waiting (unless a failed flush is backing off). @default 100 */
  maxKeys?: number;
  /** Flush this long after the first unflushed add. At most 2^31 − 1. @default 1000 (5000 in a Durable Object) */
  flushIntervalMs?: number;
  /** Called for every failed flush; the failed keys stay queued (stored) and are retried. @default console.warn of the message */
  onError?: (error: CounterError, info: FlushErrorInfo) => void;
  /** Called after every successful flush with what it wrote (metrics, tests, crowded items). @default undefined */
  onFlush?: (result: FlushResult) => void;
  /** Called for every entry set aside as a dead letter (a non-retryable failure). @default console.warn of the letter */
  onDeadLetter?: (letter: DeadLetter) => void;
  /** `UpdateItem` requests in flight at once during a flush. @default 16 */
  concurrency?: number;
  /** Cap of the backoff between retries of a failed flush. At most 2^31 − 1. @default 30000 */
  maxRetryDelayMs?: number;
  /**
   * Most distinct keys held. An `add` of a new key beyond it throws `BufferFull` (nothing is queued, nothing
   * is lost silently); adds to keys already waiting are always accepted. @default 100000
   */
  maxPendingKeys?: number;
  /**
   * Most memory (estimated: keys' text and bookkeeping) that pending keys and held dead letters may take. A new
   * key beyond it makes `add` throw `BufferFull`, as `maxPendingKeys` does: keys are often caller input, and
   * during an outage a flood of long ones must not take a Worker's 128 MB. @default 33554432 (32 MiB)
   */
  maxPendingBytes?: number;
  /** Warn (in `FlushResult.crowded`, or console.warn without `onFlush`) when an item carries more markers than this. @default 10 */
  markerWarnAt?: number;
}

/** The schemas of {@link FlushOptions}, for each buffer's own shape. */
export const flushOptionsShape = (): Shape => ({
  maxKeys: positiveInt(),
  flushIntervalMs: timerMs(),
  onError: fn(),
  onFlush: fn(),
  onDeadLetter: fn(),
  concurrency: positiveInt(),
  maxRetryDelayMs: timerMs(50),
  maxPendingKeys: positiveInt(),
  maxPendingBytes: positiveInt(),
  markerWarnAt: positiveInt(),
});

/** The engine settings of validated {@link FlushOptions}, with their defaults. */
export const flushSettings = (o: FlushOptions, intervalMs: number) => ({
  concurrency: o.concurrency ?? 16,
  maxKeys: o.maxKeys ?? 100,
  intervalMs: o.flushIntervalMs ?? intervalMs,
  maxRetryDelayMs: o.maxRetryDelayMs ?? 30_000,
  maxPendingKeys: o.maxPendingKeys ?? 100_000,
  maxPendingBytes: o.maxPendingBytes ?? 32 * 1024 * 1024,
  markerWarnAt: o.markerWarnAt ?? 10,
  onError: o.onError ?? warnFlushFailure,
  onFlush: o.onFlush,
  onDeadLetter: o.onDeadLetter ?? warnDeadLetter,
  timers: realTimers,
});

/** Calls an observer (onFlush, onError); its exceptions are its own and must not change the flush. */
export function notify<A extends unknown[]>(observer: ((...args: A) => void) | undefined, ...args: A): void {
  try {
    observer?.(...args);
  } catch {
    // ignored on purpose
  }
}

/** What a failed flush logs when no onError is given. */
export const warnFlushFailure = (error: CounterError, info: { keys: number; retryInMs: number }): void =>
  console.warn(
    `dynacount: flush of ${info.keys} keys failed (${error.code}: ${printable(error.message)}); retrying in ${Math.round(info.retryInMs)} ms`,
  );

/** What a dead letter logs when no onDeadLetter is given. */
export const warnDeadLetter = (letter: DeadLetter): void =>
  console.warn(
    `dynacount: ${String(letter.amount)} for ${shown(typeof letter.key === "string" ? letter.key : letter.key.id)} in table "${letter.tableName}" ` +
      `cannot be written (${letter.error.code}: ${printable(letter.error.message)}); it is held in the buffer's deadLetters`,
  );
