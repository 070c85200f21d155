// The in-process buffer: the flush engine over memory and an unref'd timer.
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import { flushRetryDelay, nextSeq, notify, tally, warnFlushFailure, writeBatch, type Batch, type FlushResult } from "./engine.js";
import type { CounterKey, TableOptions } from "../core/keys.js";
import type { Amount, NumberMode } from "../core/numbers.js";
import { fn, lazy, nonNegativeInt, parseOptions, positiveInt, text, type Shape } from "../core/options.js";
import { Coalescer } from "./coalescer.js";
import { unrefTimeout } from "../core/timers.js";

export type { FlushResult } from "./engine.js";

/** Context passed to {@link BufferOptions.onError}.
 *
 * @example
 * ```ts
 * new CounterBuffer(client, { onError: (error, { keys, ambiguous, retryInMs }) => log.warn({ code: error.code, keys, ambiguous, retryInMs }) });
 * ```
 */
export interface FlushErrorInfo {
  /** Items whose write failed; they stay queued and are retried. */
  keys: number;
  /** Whether some failed writes may have been applied. Without a `writerId` a retry may then count twice. */
  ambiguous: boolean;
  /** Consecutive failed flushes so far. */
  failures: number;
  /** When the buffer retries by itself, in ms. */
  retryInMs: number;
}

/** Options of {@link CounterBuffer}.
 *
 * @example
 * ```ts
 * new CounterBuffer(client, { maxKeys: 500, flushIntervalMs: 2000, writerId: `api-${hostname}`, concurrency: 32 });
 * ```
 */
export interface BufferOptions {
  /** Flush as soon as this many distinct keys are waiting. @default 100 */
  maxKeys?: number;
  /** Flush this long after the first unflushed add. @default 1000 */
  flushIntervalMs?: number;
  /**
   * A stable id of this writer, unique among live buffers. With it, flushes are exactly-once (a marker
   * attribute named after the writer on each item). Without it, flushes are at-least-once and items get no
   * marker. @default undefined
   */
  writerId?: string;
  /** Called for every failed flush; the batch stays queued and is retried. @default console.warn of the message */
  onError?: (error: CounterError, info: FlushErrorInfo) => void;
  /** Called after every successful flush with what it wrote (metrics, tests). @default undefined */
  onFlush?: (result: FlushResult) => void;
  /** `UpdateItem` requests in flight at once during a flush. @default 16 */
  concurrency?: number;
  /** Cap of the backoff between retries of a failed flush. @default 30000 */
  maxRetryDelayMs?: number;
}

const bufferOptionsShape = /* @__PURE__ */ lazy((): Shape => ({
  maxKeys: positiveInt(),
  flushIntervalMs: nonNegativeInt(),
  writerId: text(1, 200, /^[A-Za-z0-9_.:@-]+$/, "may contain only letters, digits and _ . : @ -"),
  onError: fn(),
  onFlush: fn(),
  concurrency: positiveInt(),
  maxRetryDelayMs: positiveInt(),
}));

/**
 * Coalesces increments in memory and writes them later: one `UpdateItem` per distinct key per flush.
 *
 * @example
 * ```ts
 * const buffer = new CounterBuffer(client, { maxKeys: 100, flushIntervalMs: 1000, writerId: "api-1" });
 * buffer.add("page:/home");            // synchronous, no request
 * buffer.add("page:/pricing", 3);
 * await buffer.flush();                // → { keys: 2, requests: 2, total: 4 }
 * await buffer.close();                // before the process exits
 * // In a Worker without a Durable Object: ctx.waitUntil(buffer.flush())
 * ```
 */
export class CounterBuffer {
  readonly #client: CounterClient<NumberMode>;
  readonly #maxKeys: number;
  readonly #intervalMs: number;
  readonly #writerId: string | undefined;
  readonly #onError: (error: CounterError, info: FlushErrorInfo) => void;
  readonly #onFlush: ((result: FlushResult) => void) | undefined;
  readonly #concurrency: number;
  readonly #maxRetryDelayMs: number;
  readonly #pending: Coalescer;
  /** The batch that failed last, retried unchanged (same seq) before anything newer. */
  #retry: Batch | undefined;
  #seq = 0;
  #failures = 0;
  #chain: Promise<unknown> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** An automatic flush is queued and has not drained the pending map yet: one is enough. */
  #autoQueued = false;
  #closed = false;

  constructor(client: CounterClient<NumberMode>, options: BufferOptions = {}) {
    const o = parseOptions(bufferOptionsShape, options, "buffer");
    this.#client = client;
    this.#maxKeys = o.maxKeys ?? 100;
    this.#intervalMs = o.flushIntervalMs ?? 1000;
    this.#writerId = o.writerId;
    this.#onError = (o.onError as BufferOptions["onError"]) ?? warnFlushFailure;
    this.#onFlush = o.onFlush as BufferOptions["onFlush"];
    this.#concurrency = o.concurrency ?? 16;
    this.#maxRetryDelayMs = o.maxRetryDelayMs ?? 30_000;
    this.#pending = new Coalescer(client.table);
  }

  /** Distinct keys waiting to be written (a failed batch included). */
  get pending(): number {
    return this.#pending.size + (this.#retry?.entries.length ?? 0);
  }

  /**
   * Adds `by` to `key` in memory: synchronous and O(1). Invalid input throws a Validation error; after
   * `close()` it throws `Closed`.
   */
  add(key: CounterKey, by: Amount = 1, options?: TableOptions): void {
    if (this.#closed) throw new CounterError("Closed", "This CounterBuffer is closed: create a new one, or add before calling close()");
    this.#pending.add(key, by, options);
    if (this.#pending.size >= this.#maxKeys) this.#autoFlush();
    else if (this.#timer === undefined) this.#timer = unrefTimeout(() => this.#autoFlush(), this.#intervalMs);
  }

  /**
   * Writes everything added so far (after any earlier failed batch) and resolves to what this call wrote.
   * Flushes run one at a time; a failed flush rejects and keeps its batch for the next one.
   */
  flush(): Promise<FlushResult> {
    const run = this.#chain.then(() => this.#flushNow());
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Flushes everything and stops the timer; later `add` calls throw `Closed`. */
  async close(): Promise<FlushResult> {
    this.#closed = true;
    this.#clearTimer();
    return this.flush();
  }

  #autoFlush(): void {
    this.#clearTimer();
    if (this.#autoQueued) return;
    this.#autoQueued = true;
    // Errors reach onError in #flushNow; the timer it sets retries.
    this.flush().catch(() => undefined);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #flushNow(): Promise<FlushResult> {
    this.#clearTimer();
    this.#autoQueued = false;
    const result: FlushResult = { keys: 0, requests: 0, total: 0 };
    if (this.#retry) await this.#write(this.#retry, result);
    if (this.#pending.size > 0) {
      this.#seq = nextSeq(this.#seq);
      await this.#write({ seq: this.#seq, entries: this.#pending.drain() }, result);
    }
    this.#failures = 0;
    notify(this.#onFlush, result);
    return result;
  }

  async #write(batch: Batch, result: FlushResult): Promise<void> {
    const outcome = await writeBatch(this.#client, batch, { writerId: this.#writerId, concurrency: this.#concurrency });
    tally(result, outcome);
    if (outcome.failed.length === 0) {
      if (batch === this.#retry) this.#retry = undefined;
      return;
    }
    this.#retry = { seq: batch.seq, entries: outcome.failed };
    this.#failures++;
    const retryInMs = flushRetryDelay(this.#failures, this.#maxRetryDelayMs);
    this.#clearTimer();
    this.#timer = unrefTimeout(() => this.#autoFlush(), retryInMs);
    const error = outcome.errors[0]!;
    const ambiguous = outcome.errors.some((e) => e.ambiguous);
    notify(this.#onError, error, { keys: outcome.failed.length, ambiguous, failures: this.#failures, retryInMs });
    throw error;
  }
}
