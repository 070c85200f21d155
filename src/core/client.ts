// CounterClient: the request path plus reserve and createTable (table set-up).
import { BaseClient } from "./base-client.js";
import { CounterError, shown } from "./errors.js";
import { resolveLayout, type CounterKey, type TableLayout, type TableOptions } from "./keys.js";
import { amountToWire, firstOfRange, type Amount, type CounterValue, type NumberMode } from "./numbers.js";
import { callOptionNames, checkNames, int, lazy, parseOptions, text, typed, withTable, type Shape } from "./options.js";
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
  /**
   * Set up what page views need: the index behind `PageViews.top` (`dynacount-pageviews-top`, write-sharded by
   * day), on a new table or added to an existing one with `UpdateTable`, and TTL on `ttlAttribute` (default
   * `"expiresAt"`, the rate limiter's). A server that cannot add the index is a `Config` error. @default false
   */
  pageViews?: boolean;
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
const createTableShape = /* @__PURE__ */ lazy(
  (): Shape => withTable({ ttlAttribute: text(1, 255), waitMs: int(0), pageViews: typed("boolean") }),
);

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
   * is ACTIVE and enables TTL when `ttlAttribute` is given. Calling it again is harmless. An existing table
   * whose key schema, or TTL attribute, differs from the one asked for is a `Config` error that says what
   * differs, never a silent success.
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
    const pageViews = options.pageViews === true;
    // Page views expire by TTL: on, on the rate limiter's attribute, unless another is named.
    const ttl = options.ttlAttribute ?? (pageViews ? "expiresAt" : undefined);
    const index = pageViews ? topIndex(ttl!) : undefined;
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
        {
          TableName: table.tableName,
          AttributeDefinitions: index ? [...attributes, ...index.attributes] : attributes,
          KeySchema: schema,
          BillingMode: "PAY_PER_REQUEST",
          ...(index && { GlobalSecondaryIndexes: [index.index] }),
        },
        sendOptions,
      );
    } catch (error) {
      // The table exists already (or is being created by someone else): its key schema is checked below.
      if (!(error instanceof CounterError && error.awsType === "ResourceInUseException")) throw error;
    }
    const deadline = Date.now() + waitMs;
    let checked = false;
    let status: string | undefined;
    let notFound: CounterError | undefined;
    let description: TableDescription | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await this.send<{ Table?: TableDescription }>("DescribeTable", { TableName: table.tableName }, sendOptions);
        notFound = undefined;
        status = out.Table?.TableStatus;
        if (!checked) keySchemaCheck(table, out.Table);
        checked = true;
        if (status === "ACTIVE") {
          description = out.Table;
          break;
        }
      } catch (error) {
        // Table metadata is eventually consistent: DescribeTable right after CreateTable (ours, or the one that
        // made CreateTable answer ResourceInUseException) may still say the table does not exist. AWS documents
        // this and the AWS SDK's waiters retry it; so do we, until the deadline.
        if (!(error instanceof CounterError && error.awsType === "ResourceNotFoundException")) throw error;
        notFound = error;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new CounterError(
          "Timeout",
          `Table "${table.tableName}" did not ${notFound ? "appear" : `become ACTIVE (status ${status})`} within ${waitMs} ms (waitMs)` +
            (notFound ? ": DescribeTable still answers ResourceNotFoundException (table metadata is eventually consistent)" : "") +
            ". Call createTable() again, or pass a larger waitMs",
          {
            retryable: true,
            ...(notFound && { status: notFound.status, awsType: notFound.awsType, requestId: notFound.requestId, cause: notFound }),
          },
        );
      }
      // Exponential, capped at 1 s, half of it jittered so clients that created together poll apart; never
      // past the deadline, so the last look is at the deadline itself.
      const delay = Math.min(1000, 25 * 2 ** attempt);
      await sleep(Math.min(left, delay / 2 + (Math.random() * delay) / 2));
    }
    if (index) await this.#addIndex(table.tableName, [...attributes, ...index.attributes], index.index, description, deadline, waitMs);
    if (ttl !== undefined) await this.#enableTtl(table.tableName, ttl);
  }

  /**
   * Makes sure `index` exists on an ACTIVE table: checks it when present, else adds it with UpdateTable and waits
   * for it to be ACTIVE. dynalite accepts that UpdateTable and silently adds nothing: an index still missing after
   * it is a Config error.
   */
  async #addIndex(
    tableName: string,
    attributes: unknown[],
    index: IndexSpec,
    table: TableDescription | undefined,
    deadline: number,
    waitMs: number,
  ): Promise<void> {
    const options = { idempotent: true, tableName };
    const find = (t: TableDescription | undefined) => t?.GlobalSecondaryIndexes?.find((i) => i.IndexName === index.IndexName);
    const check = (found: NonNullable<ReturnType<typeof find>>) => {
      const keys = (found.KeySchema ?? []).map((k) => `${k.AttributeName}:${k.KeyType}`).join(",");
      const wanted = index.KeySchema.map((k) => `${k.AttributeName}:${k.KeyType}`).join(",");
      if (keys !== wanted) {
        throw new CounterError(
          "Config",
          `Table "${tableName}" has an index "${index.IndexName}" with the key schema ${keys}, not ${wanted} as page views need: delete that index (or use another table) and call createTable({ pageViews: true }) again`,
        );
      }
    };
    let found = find(table);
    if (found === undefined) {
      const provisioned =
        table?.BillingModeSummary?.BillingMode === "PROVISIONED" ||
        (table?.BillingModeSummary === undefined && (table?.ProvisionedThroughput?.WriteCapacityUnits ?? 0) > 0);
      const create = provisioned
        ? {
            ...index,
            ProvisionedThroughput: {
              ReadCapacityUnits: table!.ProvisionedThroughput!.ReadCapacityUnits ?? 5,
              WriteCapacityUnits: table!.ProvisionedThroughput!.WriteCapacityUnits ?? 5,
            },
          }
        : index;
      const update = (c: unknown) =>
        this.send(
          "UpdateTable",
          { TableName: tableName, AttributeDefinitions: attributes, GlobalSecondaryIndexUpdates: [{ Create: c }] },
          options,
        );
      try {
        await update(create).catch((error: unknown) => {
          // dynalite's schema wants a throughput even for on-demand tables (DynamoDB refuses one there).
          if (
            error instanceof CounterError &&
            error.code === "Validation" &&
            /provisionedThroughput/i.test(error.message) &&
            create === index
          ) {
            return update({ ...index, ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 } });
          }
          throw error;
        });
      } catch (error) {
        // Another client is adding it right now: wait for it below.
        if (!(error instanceof CounterError && /already exists/i.test(error.message))) throw error;
      }
    }
    // Table metadata lags: an index just added may take a moment to be described (a few seconds at most).
    const appearBy = Math.min(deadline, Date.now() + 3000);
    for (let attempt = 1; ; attempt++) {
      if (found !== undefined) {
        check(found);
        if ((found.IndexStatus ?? "ACTIVE") === "ACTIVE" && found.Backfilling !== true) return;
      }
      const now = Date.now();
      if (found === undefined && now >= appearBy) {
        throw new CounterError(
          "Config",
          `This server accepted UpdateTable but did not add the index "${index.IndexName}" to table "${tableName}" (dynalite cannot add an index to an existing table). ` +
            `Page views' top() needs it: create a new table with createTable({ pageViews: true }) (indexes can be created with a table everywhere), or use DynamoDB or DynamoDB Local`,
        );
      }
      if (now >= deadline) {
        throw new CounterError(
          "Timeout",
          `The index "${index.IndexName}" of table "${tableName}" did not become ACTIVE within ${waitMs} ms (waitMs; DynamoDB builds it in the background): call createTable({ pageViews: true }) again later`,
          { retryable: true },
        );
      }
      await sleep(Math.min(deadline - now, Math.min(1000, 25 * 2 ** attempt)));
      found = find((await this.send<{ Table?: TableDescription }>("DescribeTable", { TableName: tableName }, options)).Table);
    }
  }

  async #enableTtl(tableName: string, attribute: string): Promise<void> {
    const options = { idempotent: true, tableName };
    // Whether TTL is on (or turning on) for `attribute`; a Config error when it is for another attribute.
    const isOn = async () => {
      const d = (
        await this.send<{ TimeToLiveDescription?: { TimeToLiveStatus?: string; AttributeName?: string } }>(
          "DescribeTimeToLive",
          { TableName: tableName },
          options,
        )
      ).TimeToLiveDescription;
      const other = d?.AttributeName;
      const on = d?.TimeToLiveStatus === "ENABLED" || d?.TimeToLiveStatus === "ENABLING";
      if (on && other !== attribute) {
        throw new CounterError(
          "Config",
          `Table "${tableName}" has TTL ${d!.TimeToLiveStatus} on ${shown(String(other))}, not on ttlAttribute ${shown(attribute)} (DynamoDB allows one per table). ` +
            `Pass { ttlAttribute: ${shown(String(other))} } here and where expiry times are written (e.g. RateLimiter's ttlAttribute), or disable TTL on ${shown(String(other))} first`,
        );
      }
      return on;
    };
    try {
      if (await isOn()) return;
      try {
        await this.send(
          "UpdateTimeToLive",
          { TableName: tableName, TimeToLiveSpecification: { AttributeName: attribute, Enabled: true } },
          options,
        );
      } catch (error) {
        // Another client may have set TTL since we looked: on this attribute that is a success (DynamoDB
        // says "already enabled"), on another one a Config error.
        if (!(error instanceof CounterError && error.code === "Validation" && (await isOn()))) throw error;
      }
    } catch (error) {
      // Some local emulators (dynalite) have no TTL API; items there simply never expire.
      if (!(error instanceof CounterError && error.awsType === "UnknownOperationException")) throw error;
    }
  }
}

/** The index behind page views' `top`: partition `pvTop` ("<day>#<shard>"), sort `pvViews` (the day's total). */
interface IndexSpec {
  IndexName: string;
  KeySchema: Array<{ AttributeName: string; KeyType: string }>;
  Projection: { ProjectionType: string; NonKeyAttributes: string[] };
}

// Names from src/usecases/pageviews/layout.ts (the client does not import the use case, so that its bundle stays small).
const topIndex = (ttlAttribute: string): { attributes: Array<{ AttributeName: string; AttributeType: string }>; index: IndexSpec } => ({
  attributes: [
    { AttributeName: "pvTop", AttributeType: "S" },
    { AttributeName: "pvViews", AttributeType: "N" },
  ],
  index: {
    IndexName: "dynacount-pageviews-top",
    KeySchema: [
      { AttributeName: "pvTop", KeyType: "HASH" },
      { AttributeName: "pvViews", KeyType: "RANGE" },
    ],
    // The TTL comes along, so that top() can leave out expired days without reading the items.
    Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: [ttlAttribute] },
  },
});

/** The parts of DescribeTable's `Table` that createTable reads. */
interface TableDescription {
  GlobalSecondaryIndexes?: Array<{
    IndexName?: string;
    IndexStatus?: string;
    Backfilling?: boolean;
    KeySchema?: Array<{ AttributeName?: string; KeyType?: string }>;
  }>;
  BillingModeSummary?: { BillingMode?: string };
  ProvisionedThroughput?: { ReadCapacityUnits?: number; WriteCapacityUnits?: number };
  TableStatus?: string;
  KeySchema?: Array<{ AttributeName?: string; KeyType?: string }>;
  AttributeDefinitions?: Array<{ AttributeName?: string; AttributeType?: string }>;
}

/**
 * Throws a Config error that says what differs, and what to pass, when an existing table's key schema is not
 * `layout`'s. Without it a mismatch surfaces only later, as DynamoDB's "The number of conditions on the keys
 * is invalid" on the first increment.
 */
function keySchemaCheck(layout: TableLayout, table: TableDescription | undefined): void {
  const keys = table?.KeySchema;
  if (!Array.isArray(keys)) return; // nothing to compare with (a server that leaves it out)
  const differences: string[] = [];
  const fix: string[] = [];
  let usable = true;
  let without = "";
  for (const [keyType, what, option, wanted] of [
    ["HASH", "partition key", "keyAttribute", layout.keyAttribute],
    ["RANGE", "sort key", "sortKeyAttribute", layout.sortKeyAttribute],
  ] as const) {
    const name = keys.find((k) => k.KeyType === keyType)?.AttributeName;
    // A type the definitions leave out is not held against the table: only a stated non-S one is.
    const type = table?.AttributeDefinitions?.find((a) => a.AttributeName === name)?.AttributeType ?? "S";
    const quote = (n: string | undefined) => (n === undefined ? "none" : shown(n));
    if (name !== wanted) differences.push(`its ${what} is ${quote(name)} but ${option} is ${quote(wanted)}`);
    if (type !== "S") differences.push(`its ${what} ${quote(name)} has type ${type}, not S (dynacount keys are strings)`);
    usable &&= type === "S";
    if (name !== undefined) fix.push(`${option}: "${name}"`);
    else if (wanted !== undefined) without = ` and no ${option}`;
  }
  if (differences.length === 0) return;
  throw new CounterError(
    "Config",
    `Table "${layout.tableName}" already exists with another key schema than asked for: ${differences.join("; ")}. ` +
      `${usable ? `To use it as it is, pass { ${fix.join(", ")} }${without}; or pass` : "Pass"} another tableName to create a new table`,
  );
}
