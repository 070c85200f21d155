// The in-process buffer: the flush engine over memory and an unref'd timer.
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import type { CounterKey, TableOptions } from "../core/keys.js";
import type { Amount, NumberMode } from "../core/numbers.js";
import { fn, lazy, parseOptions, positiveInt, text, timerMs, type Shape } from "../core/options.js";
import { realTimers, unrefTimeout } from "../core/timers.js";
import { FlushEngine, warnDeadLetter, warnFlushFailure, type DeadLetter, type FlushErrorInfo, type FlushResult } from "./engine.js";

export type { CrowdedItem, DeadLetter, FlushErrorInfo, FlushResult } from "./engine.js";

/** Options of {@link CounterBuffer}.
 *
 * @example
 * ```ts
 * new CounterBuffer(client, { maxKeys: 500, flushIntervalMs: 2000, writerId: `api-${hostname}-${pid}`, concurrency: 32 });
 * ```
 */
export interface BufferOptions {
  /** Flush as soon as this many distinct keys are waiting (unless a failed flush is backing off). @default 100 */
  maxKeys?: number;
  /** Flush this long after the first unflushed add. At most 2^31 − 1. @default 1000 */
  flushIntervalMs?: number;
  /**
   * A stable id of this writer, unique among live buffers (two live buffers with one id are reported as a
   * `Conflict`). With it, flushes are exactly-once: a marker attribute named after the writer on each item it
   * writes (about 20 + id length bytes of the item, forever). Without it, flushes are at-least-once and items
   * get no marker. @default undefined
   */
  writerId?: string;
  /** Called for every failed flush; the failed keys stay queued and are retried. @default console.warn of the message */
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
  /** Warn (in `FlushResult.crowded`, or console.warn without `onFlush`) when an item carries more markers than this. @default 10 */
  markerWarnAt?: number;
}

const bufferOptionsShape = /* @__PURE__ */ lazy((): Shape => ({
  maxKeys: positiveInt(),
  flushIntervalMs: timerMs(),
  writerId: text(1, 200, /^[A-Za-z0-9_.:@-]+$/, "may contain only letters, digits and _ . : @ -"),
  onError: fn(),
  onFlush: fn(),
  onDeadLetter: fn(),
  concurrency: positiveInt(),
  maxRetryDelayMs: timerMs(50),
  maxPendingKeys: positiveInt(),
  markerWarnAt: positiveInt(),
}));

const closeShape = /* @__PURE__ */ lazy((): Shape => ({ timeoutMs: timerMs() }));

/**
 * Coalesces increments in memory and writes them later: one `UpdateItem` per distinct key per flush.
 *
 * @example
 * ```ts
 * const buffer = new CounterBuffer(client, { maxKeys: 100, flushIntervalMs: 1000, writerId: "api-1" });
 * buffer.add("page:/home");            // synchronous, no request
 * buffer.add("page:/pricing", 3);
 * await buffer.flush();                // → { keys: 2, requests: 2, total: 4 }
 * await buffer.close();                // before exiting: retries until written or 30 s
 * // In a Worker without a Durable Object: ctx.waitUntil(buffer.flush())
 * ```
 */
export class CounterBuffer {
  readonly #engine: FlushEngine;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(client: CounterClient<NumberMode>, options: BufferOptions = {}) {
    const o = parseOptions(bufferOptionsShape, options, "buffer");
    const clear = () => {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
    };
    this.#engine = new FlushEngine({
      client,
      writerId: o.writerId,
      concurrency: o.concurrency ?? 16,
      maxKeys: o.maxKeys ?? 100,
      intervalMs: o.flushIntervalMs ?? 1000,
      maxRetryDelayMs: o.maxRetryDelayMs ?? 30_000,
      maxPendingKeys: o.maxPendingKeys ?? 100_000,
      markerWarnAt: o.markerWarnAt ?? 10,
      onError: (o.onError as BufferOptions["onError"]) ?? warnFlushFailure,
      onFlush: o.onFlush as BufferOptions["onFlush"],
      onDeadLetter: (o.onDeadLetter as BufferOptions["onDeadLetter"]) ?? warnDeadLetter,
      timers: realTimers,
      store: undefined,
      // Unref'd: a pending flush alone never keeps the program alive (close() does, while it runs).
      scheduler: {
        set: (at) => {
          clear();
          // Due now (maxKeys): start in a microtask, once the caller's synchronous adds are done; an unref'd
          // timer would let a program with nothing else to do end before the flush even began.
          if (at <= Date.now()) queueMicrotask(() => void this.#engine.wake());
          else this.#timer = unrefTimeout(() => void this.#engine.wake(), at - Date.now());
        },
        clear,
      },
    });
  }

  /** Distinct keys waiting to be written (each once, a failed write included; dead letters not). */
  get pending(): number {
    return this.#engine.pending;
  }

  /** Entries set aside after a non-retryable failure (a missing table, a count attribute holding a string, a `Conflict`). */
  get deadLetters(): readonly DeadLetter[] {
    return this.#engine.deadLetters;
  }

  /**
   * Adds `by` to `key` in memory: synchronous and O(1). Invalid input throws a Validation error; a new key
   * beyond `maxPendingKeys` throws `BufferFull`; after `close()` it throws `Closed`.
   */
  add(key: CounterKey, by: Amount = 1, options?: TableOptions): void {
    if (this.#closed) throw new CounterError("Closed", "This CounterBuffer is closed: create a new one, or add before calling close()");
    this.#engine.slots.add(key, by, options);
    void this.#engine.added();
  }

  /**
   * Writes everything added so far and resolves to what this call wrote. Flushes run one at a time; keys
   * whose write fails stay queued (the call rejects with the first error) while the others are written.
   * Works on a closed buffer too, to write what `close()` could not.
   */
  flush(): Promise<FlushResult> {
    return this.#engine.flush();
  }

  /**
   * Stops the timer and flushes with backoff until everything is written or `timeoutMs` passes. Then it
   * rejects with a `Timeout` that says how many keys and what total remain; they stay here (`pending`, a
   * later `flush()`), and nothing retries in the background. Held dead letters also make it reject. Later
   * `add` calls throw `Closed`.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<FlushResult> {
    const o = parseOptions(closeShape, options, "close");
    this.#closed = true;
    return this.#engine.close(o.timeoutMs ?? 30_000);
  }

  /** Puts every dead letter back as a pending add, once the cause is fixed (e.g. the table created); returns how many. */
  retryDeadLetters(): Promise<number> {
    return this.#engine.retryDeadLetters();
  }

  /** Removes and returns every dead letter: the caller takes them over (e.g. logs or stores them elsewhere). */
  takeDeadLetters(): Promise<DeadLetter[]> {
    return this.#engine.takeDeadLetters();
  }
}
