// Id allocation: unique ids handed out from blocks reserved with one request each.
import type { CounterClient } from "../core/client.js";
import { layoutOptions, resolveLayout, type CounterKey, type TableOptions } from "../core/keys.js";
import type { CounterValue, NumberMode } from "../core/numbers.js";
import { lazy, nonNegativeInt, parseOptions, positiveInt, withTable, type Shape } from "../core/options.js";

/** Options of {@link IdAllocator}.
 *
 * @example
 * ```ts
 * new IdAllocator(client, "order-id", { blockSize: 1000, prefetchBelow: 200 });
 * ```
 */
export interface IdAllocatorOptions extends TableOptions {
  /** Ids reserved per request. @default 100 */
  blockSize?: number;
  /** Fetch the next block when fewer than this many ids are left. @default half of blockSize */
  prefetchBelow?: number;
}

const shape = /* @__PURE__ */ lazy((): Shape => withTable({ blockSize: positiveInt(), prefetchBelow: nonNegativeInt() }));

interface Block<V> {
  next: V;
  last: V;
}

/**
 * Hands out ids unique across every process sharing the table, reserving them in blocks: one request per
 * `blockSize` ids, the next block fetched before the current one runs out. An ambiguous failure is
 * retried, which may leave a gap but never repeats an id.
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
  readonly #tableOptions: TableOptions;
  /** The block ids come from, then the prefetched one. */
  readonly #blocks: Block<CounterValue<M>>[] = [];
  #left = 0;
  /** The one reservation in flight; every caller that needs a block waits on it. */
  #inflight: Promise<void> | undefined;

  constructor(client: CounterClient<M>, key: CounterKey, options: IdAllocatorOptions = {}) {
    const o = parseOptions(shape, options, "id allocator");
    this.#client = client;
    this.#key = key;
    this.#blockSize = o.blockSize ?? 100;
    this.#prefetchBelow = Math.min(o.prefetchBelow ?? Math.floor(this.#blockSize / 2), this.#blockSize);
    this.#tableOptions = layoutOptions(resolveLayout(client.table, o));
  }

  /** Ids left in reserved blocks. */
  get available(): number {
    return this.#left;
  }

  /** The next id. Concurrent calls share reservations; each id is handed out once. */
  async next(): Promise<CounterValue<M>> {
    for (;;) {
      const block = this.#blocks[0];
      if (block !== undefined && block.next <= block.last) {
        const id = block.next;
        block.next = (typeof id === "bigint" ? id + 1n : (id as number) + 1) as CounterValue<M>;
        this.#left--;
        if (this.#left < this.#prefetchBelow && this.#inflight === undefined) this.#reserve().catch(() => undefined);
        return id;
      }
      if (block !== undefined) {
        this.#blocks.shift();
        continue;
      }
      await (this.#inflight ?? this.#reserve());
    }
  }

  #reserve(): Promise<void> {
    const run = this.#client
      .reserve(this.#key, this.#blockSize, { ...this.#tableOptions, atLeastOnce: true })
      .then(({ first, last }) => {
        this.#blocks.push({ next: first, last });
        this.#left += this.#blockSize;
      })
      .finally(() => {
        this.#inflight = undefined;
      });
    this.#inflight = run;
    return run;
  }
}
