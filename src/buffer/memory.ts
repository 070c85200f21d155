// The in-process buffer: the flush engine over memory and an unref'd timer.
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import type { CounterKey, TableOptions } from "../core/keys.js";
import type { Amount, NumberMode } from "../core/numbers.js";
import { lazy, parseOptions, text, timerMs, type Shape } from "../core/options.js";
import { unrefTimeout } from "../core/timers.js";
import { FlushEngine } from "./engine.js";
import { flushOptionsShape, flushSettings, type FlushOptions } from "./flush-options.js";
import type { DeadLetter, FlushResult } from "./results.js";

export type { FlushOptions } from "./flush-options.js";
export type { CrowdedItem, DeadLetter, FlushErrorInfo, FlushResult } from "./results.js";

/** Options of {@link CounterBuffer}.
 *
 * @example
 * ```ts
 * new CounterBuffer(client, { maxKeys: 500, flushIntervalMs: 2000, writerId: `api-${hostname}-${pid}`, concurrency: 32 });
 * ```
 */
export interface BufferOptions extends FlushOptions {
  /**
   * A stable id of this writer, unique among live buffers (two live buffers with one id are reported as a
   * `Conflict`). With it, flushes are exactly-once: a marker attribute named after the writer on each item it
   * writes (about 20 + id length bytes of the item, forever). Without it, flushes are at-least-once and items
   * get no marker. @default undefined
   */
  writerId?: string;
}

const bufferOptionsShape = /* @__PURE__ */ lazy(
  (): Shape => ({
    ...flushOptionsShape(),
    writerId: text(1, 200, /^[A-Za-z0-9_.:@-]+$/, "may contain only letters, digits and _ . : @ -"),
  }),
);

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
      ...flushSettings(o, 1000),
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
    void this.#engine.scheduleFlush();
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
