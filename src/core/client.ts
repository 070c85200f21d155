// CounterClient: the request path plus reserve and createTable (table set-up).
import { BaseClient } from "./base-client.js";
import { CounterError } from "./errors.js";
import { resolveLayout, type CounterKey, type TableOptions } from "./keys.js";
import { amountToWire, firstOfRange, type Amount, type CounterValue, type NumberMode } from "./numbers.js";
import { callOptionNames, checkNames, int, lazy, parseOptions, text, withTable, type Shape } from "./options.js";
import { sleep } from "./timers.js";

export type { ClientOptions, GetOptions, IncrementOptions } from "./base-client.js";

/** Options of {@link CounterClient.reserve}.
 *
 * @example
 * ```ts
 * await client.reserve("invoice-no", 50, { atLeastOnce: true });
 * ```
 */
export interface ReserveOptions extends TableOptions {
  /** Retry ambiguous failures too (a retried reservation may skip a range, never repeat one). @default the client's retry.atLeastOnce */
  atLeastOnce?: boolean;
}

/** Options of {@link CounterClient.createTable}.
 *
 * @example
 * ```ts
 * await client.createTable({ ttlAttribute: "expiresAt", waitMs: 60_000 });
 * ```
 */
export interface CreateTableOptions extends TableOptions {
  /** Enable DynamoDB TTL on this attribute (epoch seconds). @default undefined (TTL unchanged) */
  ttlAttribute?: string;
  /** How long to wait for the table to become ACTIVE. @default 120000 */
  waitMs?: number;
}

/** A reserved range of consecutive values, both ends included.
 *
 * @example
 * ```ts
 * const { first, last } = await client.reserve("ids", 10); // last - first + 1 === 10
 * ```
 */
export interface Reservation<V> {
  first: V;
  last: V;
}

const RESERVE = /* @__PURE__ */ callOptionNames("atLeastOnce");
// createTable is set-up, not a per-request path: its options get the full schema check.
const createTableShape = /* @__PURE__ */ lazy((): Shape => withTable({ ttlAttribute: text(1, 255), waitMs: int(0) }));

/**
 * Atomic counters in a DynamoDB table, over DynamoDB's JSON API signed with aws4fetch.
 *
 * @example
 * ```ts
 * import { CounterClient } from "dynacount";
 *
 * const client = new CounterClient({ region: "eu-west-1" }); // credentials from the environment
 * await client.createTable();
 * const views = await client.increment("page:/home");
 * const { first, last } = await client.reserve("order-ids", 100);
 * ```
 */
export class CounterClient<M extends NumberMode = "number"> extends BaseClient<M> {
  /**
   * Reserves `count` consecutive values in one request; ranges are unique across every client of the table.
   *
   * @example
   * ```ts
   * const { first, last } = await client.reserve("invoice-no", 50); // last - first + 1 === 50
   * ```
   */
  async reserve(key: CounterKey, count: Amount, options: ReserveOptions = {}): Promise<Reservation<CounterValue<M>>> {
    checkNames(options, RESERVE, "reserve");
    const wire = amountToWire(count, "count", 1n);
    const last = await this.increment(key, { ...options, by: count });
    return { first: firstOfRange<M>(last, wire), last };
  }

  /**
   * Creates the table if it is missing (on-demand billing, key schema from the options), waits until it
   * is ACTIVE and enables TTL when `ttlAttribute` is given. Calling it again is harmless.
   *
   * @example
   * ```ts
   * await client.createTable({ ttlAttribute: "expiresAt" });
   * ```
   */
  async createTable(options: CreateTableOptions = {}): Promise<void> {
    parseOptions(createTableShape, options, "createTable");
    const table = resolveLayout(this.table, options);
    const waitMs = options.waitMs ?? 120_000;
    const ttl = options.ttlAttribute;
    const attributes = [{ AttributeName: table.keyAttribute, AttributeType: "S" }];
    const schema = [{ AttributeName: table.keyAttribute, KeyType: "HASH" }];
    if (table.sortKeyAttribute !== undefined) {
      attributes.push({ AttributeName: table.sortKeyAttribute, AttributeType: "S" });
      schema.push({ AttributeName: table.sortKeyAttribute, KeyType: "RANGE" });
    }
    const sendOptions = { idempotent: true, tableName: table.tableName };
    try {
      await this.send(
        "CreateTable",
        { TableName: table.tableName, AttributeDefinitions: attributes, KeySchema: schema, BillingMode: "PAY_PER_REQUEST" },
        sendOptions,
      );
    } catch (error) {
      if (!(error instanceof CounterError && error.awsType === "ResourceInUseException")) throw error;
    }
    const deadline = Date.now() + waitMs;
    for (let attempt = 1; ; attempt++) {
      const out = await this.send<{ Table?: { TableStatus?: string } }>("DescribeTable", { TableName: table.tableName }, sendOptions);
      if (out.Table?.TableStatus === "ACTIVE") break;
      if (Date.now() > deadline) {
        throw new CounterError("Timeout", `Table "${table.tableName}" did not become ACTIVE within ${waitMs} ms (waitMs)`, { retryable: true });
      }
      await sleep(Math.min(1000, 25 * 2 ** attempt));
    }
    if (ttl !== undefined) await this.#enableTtl(table.tableName, ttl);
  }

  async #enableTtl(tableName: string, attribute: string): Promise<void> {
    const options = { idempotent: true, tableName };
    try {
      const current = await this.send<{ TimeToLiveDescription?: { TimeToLiveStatus?: string; AttributeName?: string } }>(
        "DescribeTimeToLive",
        { TableName: tableName },
        options,
      );
      const d = current.TimeToLiveDescription;
      if (d?.AttributeName === attribute && (d.TimeToLiveStatus === "ENABLED" || d.TimeToLiveStatus === "ENABLING")) return;
      await this.send("UpdateTimeToLive", { TableName: tableName, TimeToLiveSpecification: { AttributeName: attribute, Enabled: true } }, options);
    } catch (error) {
      // Some local emulators (dynalite) have no TTL API; items there simply never expire.
      if (!(error instanceof CounterError && error.awsType === "UnknownOperationException")) throw error;
    }
  }
}
