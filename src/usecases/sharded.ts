// Write sharding: one logical counter spread over several items, summed with BatchGetItem.
import { chunks } from "../core/chunks.js";
import { accountOf } from "../core/base-client.js";
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import { keyParts, resolveLayout, dynamoKey, type CounterKey, type TableLayout, type TableOptions } from "../core/keys.js";
import { addAmounts, amountToWire, wireToValue, type Amount, type CounterValue, type NumberMode } from "../core/numbers.js";
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

/**
 * Counters (endpoint, region, account, table, key, shard count) whose shard count this process has recorded: a
 * counter built per request, with a client built per request, writes it once. Where the data lives is part of it:
 * the same table name on another server, in another region or account is another counter, whose readers need the
 * count recorded there too.
 */
const RECORDED = new Set<string>();

/** The attribute of the meta item (`<key>#shards`) that holds the most shards any writer used. */
const SHARDS_ATTRIBUTE = "dynacount:shards";
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
  /** DynamoDB `Key`s of the shards, validated once: the suffix must still fit DynamoDB's key limits. */
  readonly #keys: Record<string, { S: string }>[];
  readonly #shardKey: (i: number) => CounterKey;
  /** The item that records the most shards any writer used (`dynacount:shards`). */
  readonly #meta: Record<string, { S: string }>;
  /** This counter and shard count, for {@link RECORDED}. */
  readonly #recordId: string;

  constructor(client: CounterClient<M>, key: CounterKey, options: ShardedCounterOptions = {}) {
    const o = parseOptions(shape, options, "sharded counter");
    this.#client = client;
    this.#table = resolveLayout(client.table, o);
    const { id, sort } = keyParts(this.#table, key);
    this.#shardKey = (i) => (sort === undefined ? `${id}#${i}` : { id: `${id}#${i}`, sort });
    this.#keys = Array.from({ length: o.shards ?? 10 }, (_, i) => dynamoKey(this.#table, this.#shardKey(i)));
    this.#meta = dynamoKey(this.#table, sort === undefined ? `${id}#shards` : { id: `${id}#shards`, sort });
    this.#recordId = JSON.stringify([
      client.endpoint,
      client.region,
      accountOf(client),
      this.#table.tableName,
      this.#meta,
      this.#keys.length,
    ]);
  }

  /**
   * Adds `by` (default 1) to one shard chosen at random. Before its first add (once per process and counter),
   * an instance records its shard count on the counter, so that `total()` of an instance configured with fewer
   * shards still reads every shard that holds counts. A failure to record fails the add, which then was not
   * applied: no shard is ever written that a reader could miss.
   */
  async add(by: Amount = 1): Promise<void> {
    // Checked before the shard count is recorded: bad input sends nothing.
    const amount = amountToWire(by, "by");
    const t = this.#table;
    const shard = this.#keys[Math.floor(Math.random() * this.#keys.length)]!;
    if (!RECORDED.has(this.#recordId)) await this.#record();
    // The new value is not asked for: add returns none, so a shard past 2^53 cannot fail an add that was applied.
    await this.#client.send(
      "UpdateItem",
      {
        TableName: t.tableName,
        Key: shard,
        UpdateExpression: "ADD #c :by",
        ExpressionAttributeNames: { "#c": t.countAttribute },
        ExpressionAttributeValues: { ":by": { N: amount } },
      },
      { idempotent: false, tableName: t.tableName },
    );
  }

  /** Records this instance's shard count on the counter's meta item, if larger than what is there. */
  async #record(): Promise<void> {
    const t = this.#table;
    try {
      await this.#client.send(
        "UpdateItem",
        {
          TableName: t.tableName,
          Key: this.#meta,
          UpdateExpression: "SET #n = :n",
          ConditionExpression: "attribute_not_exists(#n) OR #n < :n",
          ExpressionAttributeNames: { "#n": SHARDS_ATTRIBUTE },
          ExpressionAttributeValues: { ":n": { N: String(this.#keys.length) } },
        },
        { idempotent: true, tableName: t.tableName },
      );
    } catch (error) {
      // A larger count is already recorded: done. Anything else fails the add before its increment was sent.
      if (!(error instanceof CounterError && error.awsType === "ConditionalCheckFailedException")) {
        const e = error instanceof CounterError ? error : undefined;
        throw new CounterError(
          e?.code ?? "Service",
          `ShardedCounter.add() was not applied: recording the shard count failed (${e?.message ?? String(error)})`,
          {
            retryable: e?.retryable ?? true,
            cause: error,
          },
        );
      }
    }
    this.#remember();
  }

  /** Once recorded, no instance of this process writes it again (one per request would make the record item hot). */
  #remember(): void {
    if (RECORDED.size >= 10_000) RECORDED.clear();
    RECORDED.add(this.#recordId);
  }

  /**
   * The sum of all shards, read with strongly consistent `BatchGetItem`s (100 keys each), retrying
   * `UnprocessedKeys`. When a writer recorded more shards than this instance has (the count was lowered), the
   * others are read too: shrinking `shards` never loses counts.
   */
  async total(): Promise<CounterValue<M>> {
    let sum: Amount = 0;
    let recorded = 0;
    for (const item of await this.#read([this.#meta, ...this.#keys])) {
      const n = item[this.#table.countAttribute]?.N;
      if (n !== undefined) sum = addAmounts(sum, wireToValue(n, "bigint", "shard"));
      recorded = Math.max(recorded, Number(item[SHARDS_ATTRIBUTE]?.N ?? 0));
    }
    if (recorded > this.#keys.length) {
      const more = Array.from({ length: Math.min(recorded, 1000) - this.#keys.length }, (_, i) =>
        dynamoKey(this.#table, this.#shardKey(this.#keys.length + i)),
      );
      for (const item of await this.#read(more)) {
        const n = item[this.#table.countAttribute]?.N;
        if (n !== undefined) sum = addAmounts(sum, wireToValue(n, "bigint", "shard"));
      }
    }
    return wireToValue(String(sum), this.#client.numbers, "sharded total");
  }

  /** Every item of `all` that exists, read strongly consistent. */
  async #read(all: Record<string, unknown>[]): Promise<Item[]> {
    const t = this.#table;
    const found: Item[] = [];
    await Promise.all(
      chunks(all, 100).map(async (keys) => {
        let request: KeysAndAttributes | undefined = {
          Keys: keys,
          ConsistentRead: true,
          ProjectionExpression: "#c, #n",
          ExpressionAttributeNames: { "#c": t.countAttribute, "#n": SHARDS_ATTRIBUTE },
        };
        for (let attempt = 1; request !== undefined; attempt++) {
          if (attempt > 10)
            throw new CounterError("Throttled", `BatchGetItem left keys unprocessed after ${attempt - 1} attempts`, { retryable: true });
          if (attempt > 1) await sleep(backoffDelay(attempt - 1, 25, 1000));
          const out: { Responses?: Record<string, Item[]>; UnprocessedKeys?: Record<string, KeysAndAttributes> } = await this.#client.send<{
            Responses?: Record<string, Item[]>;
            UnprocessedKeys?: Record<string, KeysAndAttributes>;
          }>("BatchGetItem", { RequestItems: { [t.tableName]: request } }, { idempotent: true, tableName: t.tableName });
          found.push(...(out.Responses?.[t.tableName] ?? []));
          const left: KeysAndAttributes | undefined = out.UnprocessedKeys?.[t.tableName];
          request = left !== undefined && left.Keys.length > 0 ? left : undefined;
        }
      }),
    );
    return found;
  }
}
