// Write sharding: one logical counter spread over several items, summed with BatchGetItem.
import { chunks } from "../core/chunks.js";
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import { keyParts, layoutOptions, resolveLayout, toKey, type CounterKey, type TableLayout, type TableOptions } from "../core/keys.js";
import { addAmounts, wireToValue, type Amount, type CounterValue, type NumberMode } from "../core/numbers.js";
import { int, lazy, parseOptions, withTable, type Shape } from "../core/options.js";
import { sleep } from "../core/timers.js";
import { backoffDelay } from "../core/transport.js";

/** Options of {@link ShardedCounter}.
 *
 * @example
 * ```ts
 * new ShardedCounter(client, "likes:video-42", { shards: 20, tableName: "Hot" });
 * ```
 */
export interface ShardedCounterOptions extends TableOptions {
  /** Items the counter is spread over (each takes ~1,000 writes/s). @default 10 */
  shards?: number;
}

const shape = /* @__PURE__ */ lazy((): Shape => withTable({ shards: int(1, 1000) }));

type Item = Record<string, { N?: string; S?: string } | undefined>;
interface KeysAndAttributes {
  Keys: Record<string, unknown>[];
  ConsistentRead?: boolean;
  ProjectionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
}

/**
 * A counter spread over `shards` items, for counters hotter than one DynamoDB partition (~1,000 writes/s):
 * `add` writes one random shard, `total` reads them all with `BatchGetItem`.
 *
 * @example
 * ```ts
 * const likes = new ShardedCounter(client, "likes:video-42", { shards: 20 });
 * await likes.add();
 * const total = await likes.total();
 * ```
 */
export class ShardedCounter<M extends NumberMode = "number"> {
  readonly #client: CounterClient<M>;
  readonly #table: TableLayout;
  readonly #shards: CounterKey[];
  /** DynamoDB `Key`s of the shards, validated once: the suffix must still fit DynamoDB's key limits. */
  readonly #keys: Record<string, { S: string }>[];
  readonly #tableOptions: TableOptions;

  constructor(client: CounterClient<M>, key: CounterKey, options: ShardedCounterOptions = {}) {
    const o = parseOptions(shape, options, "sharded counter");
    this.#client = client;
    this.#table = resolveLayout(client.table, o);
    const { id, sort } = keyParts(this.#table, key);
    this.#shards = Array.from({ length: o.shards ?? 10 }, (_, i) => (sort === undefined ? `${id}#${i}` : { id: `${id}#${i}`, sort }));
    this.#keys = this.#shards.map((shard) => toKey(this.#table, shard));
    this.#tableOptions = layoutOptions(this.#table);
  }

  /** Adds `by` (default 1) to one shard chosen at random. */
  async add(by: Amount = 1): Promise<void> {
    const shard = this.#shards[Math.floor(Math.random() * this.#shards.length)]!;
    await this.#client.increment(shard, { ...this.#tableOptions, by });
  }

  /** The sum of all shards, read with strongly consistent `BatchGetItem`s (100 keys each), retrying `UnprocessedKeys`. */
  async total(): Promise<CounterValue<M>> {
    const t = this.#table;
    let sum: Amount = 0;
    await Promise.all(
      chunks(this.#keys, 100).map(async (keys) => {
        let request: KeysAndAttributes | undefined = {
          Keys: keys,
          ConsistentRead: true,
          ProjectionExpression: "#c",
          ExpressionAttributeNames: { "#c": t.countAttribute },
        };
        for (let attempt = 1; request !== undefined; attempt++) {
          if (attempt > 10) throw new CounterError("Throttled", `BatchGetItem left keys unprocessed after ${attempt - 1} attempts`, { retryable: true });
          if (attempt > 1) await sleep(backoffDelay(attempt - 1, 25, 1000));
          const out: { Responses?: Record<string, Item[]>; UnprocessedKeys?: Record<string, KeysAndAttributes> } = await this.#client.send<{ Responses?: Record<string, Item[]>; UnprocessedKeys?: Record<string, KeysAndAttributes> }>(
            "BatchGetItem",
            { RequestItems: { [t.tableName]: request } },
            { idempotent: true, tableName: t.tableName },
          );
          for (const item of out.Responses?.[t.tableName] ?? []) {
            const n = item[t.countAttribute]?.N;
            if (n !== undefined) sum = addAmounts(sum, wireToValue(n, "bigint", "shard"));
          }
          const left: KeysAndAttributes | undefined = out.UnprocessedKeys?.[t.tableName];
          request = left !== undefined && left.Keys.length > 0 ? left : undefined;
        }
      }),
    );
    return wireToValue(String(sum), this.#client.numbers, "sharded total");
  }
}
