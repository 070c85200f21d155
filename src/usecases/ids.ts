// Id allocation: unique ids handed out from blocks reserved with one request each, riding out failures.
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import { layoutOptions, resolveLayout, type CounterKey, type TableOptions } from "../core/keys.js";
import type { CounterValue, NumberMode } from "../core/numbers.js";
import { checkNames, lazy, nonNegativeInt, parseOptions, positiveInt, timerMs, withTable, type Shape } from "../core/options.js";
import { unrefTimeout } from "../core/timers.js";
import { backoffDelay } from "../core/transport.js";

/** Options of {@link IdAllocator}.
 *
 * @example
 * ```ts
 * new IdAllocator(client, "order-id", { blockSize: 1000, prefetchBelow: 200, timeoutMs: 5000 });
 * ```
 */
export interface IdAllocatorOptions extends TableOptions {
  /** Ids reserved per request. @default 100 */
  blockSize?: number;
  /**
   * Fetch the next block in the background when fewer than this many ids are left, once this allocator has
   * handed out `blockSize` ids (before that, blocks are reserved only when needed: a short script never pays
   * for a block it does not use). @default half of blockSize
   */
  prefetchBelow?: number;
  /**
   * How long one `next()` keeps trying while reservations fail with retryable errors (throttling, outages),
   * before it rejects with a `Timeout`. Per call: `next({ timeoutMs })`. At most 2^31 − 1. @default 30000
   */
  timeoutMs?: number;
}

const shape = /* @__PURE__ */ lazy(
  (): Shape => withTable({ blockSize: positiveInt(), prefetchBelow: nonNegativeInt(), timeoutMs: timerMs(1) }),
);
const nextShape = /* @__PURE__ */ lazy((): Shape => ({ timeoutMs: timerMs(1) }));
const NEXT = /* @__PURE__ */ new Set(["timeoutMs"]);

interface Block<V> {
  next: V;
  last: V;
}

/** Background prefetches give up after this many failures in a row when nobody is waiting; the next caller restarts them. */
const PREFETCH_ATTEMPTS = 6;

/**
 * Hands out ids unique across every process sharing the table, reserving them in blocks: one request per
 * `blockSize` ids, the next block fetched before the current one runs out.
 *
 * Prefetch, one rule: once this allocator has handed out a whole block's worth of ids (`blockSize`), the next
 * block is reserved in the background whenever fewer than `prefetchBelow` ids are left. Before that nothing is
 * reserved ahead: a script that takes 60 ids with the default block of 100 reserves one block, never two. A
 * caller that keeps going waits for one reservation where its first block ends, and from then on finds the next
 * block ready.
 *
 * Failures: a reservation that fails with a retryable error (throttling, 5xx, timeouts, resets) is tried
 * again with backoff, shared by every waiting caller, until it succeeds or a caller's `timeoutMs` passes
 * (that caller alone then rejects with `Timeout`). A non-retryable error (TableNotFound, AccessDenied,
 * Validation) reaches every waiting caller at once. A failed prefetch is retried in the background and
 * never rejects anyone by itself. Ids are never handed out twice; a reservation whose answer was lost is
 * retried, which leaves a gap of `blockSize` ids (the lost block is simply never used; ids stay unique
 * and increasing per allocator, not dense).
 *
 * @example
 * ```ts
 * const orders = new IdAllocator(client, "order-id", { blockSize: 100 });
 * const id = await orders.next(); // 1, 2, 3, … (another process gets 101…200)
 * ```
 */
export class IdAllocator<M extends NumberMode = "number"> {
  readonly #client: CounterClient<M>;
  readonly #key: CounterKey;
  readonly #blockSize: number;
  readonly #prefetchBelow: number;
  readonly #timeoutMs: number;
  readonly #tableOptions: TableOptions;
  /** The block ids come from, then the prefetched one. */
  readonly #blocks: Block<CounterValue<M>>[] = [];
  #left = 0;
  /** Ids handed out so far, counted up to `blockSize` (where prefetching starts). */
  #handedOut = 0;
  /** The one reservation loop in flight; every caller that needs a block waits on it. */
  #inflight: Promise<void> | undefined;
  /** Callers waiting for a block. */
  #waiting = 0;
  #lastError: CounterError | undefined;

  constructor(client: CounterClient<M>, key: CounterKey, options: IdAllocatorOptions = {}) {
    const o = parseOptions(shape, options, "id allocator");
    this.#client = client;
    this.#key = key;
    this.#blockSize = o.blockSize ?? 100;
    this.#prefetchBelow = Math.min(o.prefetchBelow ?? Math.floor(this.#blockSize / 2), this.#blockSize);
    this.#timeoutMs = o.timeoutMs ?? 30_000;
    this.#tableOptions = layoutOptions(resolveLayout(client.table, o));
  }

  /** Ids left in reserved blocks. */
  get available(): number {
    return this.#left;
  }

  /**
   * The next id. Concurrent calls share reservations; each id is handed out once. Rejects with the
   * reservation's error when it is not retryable, or with `Timeout` once `timeoutMs` passes.
   *
   * @example
   * ```ts
   * const id = await ids.next({ timeoutMs: 2000 }); // this caller's own deadline
   * ```
   */
  async next(options: { timeoutMs?: number } = {}): Promise<CounterValue<M>> {
    // The common call passes nothing: a name check only; the schema runs when a deadline is given.
    checkNames(options, NEXT, "next");
    const timeoutMs = options.timeoutMs === undefined ? this.#timeoutMs : parseOptions(nextShape, options, "next").timeoutMs!;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const block = this.#blocks[0];
      if (block !== undefined && block.next <= block.last) {
        const id = block.next;
        block.next = (typeof id === "bigint" ? id + 1n : (id as number) + 1) as CounterValue<M>;
        this.#left--;
        if (this.#handedOut < this.#blockSize) this.#handedOut++;
        else if (this.#left < this.#prefetchBelow && this.#inflight === undefined) this.#reserve().catch(() => undefined);
        return id;
      }
      if (block !== undefined) {
        this.#blocks.shift();
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const last = this.#lastError ? `; last error: ${this.#lastError.code}: ${this.#lastError.message}` : "";
        throw new CounterError(
          "Timeout",
          `IdAllocator.next() got no id within ${timeoutMs} ms (timeoutMs): reserving a block kept failing${last}`,
          {
            retryable: true,
            cause: this.#lastError,
          },
        );
      }
      this.#waiting++;
      try {
        await this.#within(this.#inflight ?? this.#reserve(), left);
      } finally {
        this.#waiting--;
      }
    }
  }

  /** Resolves when `promise` settles or `ms` passes, whichever is first (the loop then checks the deadline). */
  #within(promise: Promise<void>, ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(() => resolve(), ms)))]).finally(() => {
      if (timer !== undefined) clearTimeout(timer);
    });
  }

  /**
   * Reserves one block, retrying retryable failures with backoff while someone waits (a prefetch alone
   * gives up after a few). Rejects only with a non-retryable error.
   */
  #reserve(): Promise<void> {
    const run = (async () => {
      for (let failures = 0; ; ) {
        try {
          const { first, last } = await this.#client.reserve(this.#key, this.#blockSize, { ...this.#tableOptions, atLeastOnce: true });
          this.#blocks.push({ next: first, last });
          this.#left += this.#blockSize;
          this.#lastError = undefined;
          return;
        } catch (error) {
          const e = error instanceof CounterError ? error : new CounterError("Service", String(error), { cause: error, retryable: true });
          this.#lastError = e;
          if (!e.retryable) throw e;
          if (++failures >= PREFETCH_ATTEMPTS && this.#waiting === 0) return;
          // Unref'd: a background prefetch alone does not keep the program alive; a waiting caller's own timer does.
          await new Promise<void>((resolve) => unrefTimeout(resolve, Math.max(10, backoffDelay(failures, 50, 2000))));
        }
      }
    })().finally(() => {
      this.#inflight = undefined;
    });
    this.#inflight = run;
    return run;
  }
}
