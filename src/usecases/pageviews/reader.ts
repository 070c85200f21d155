// PageViews: lifetime totals, hourly and daily series, unique visitors and the top pages of a day, read from DynamoDB.
import type { CounterClient } from "../../core/client.js";
import { CounterError, validationError } from "../../core/errors.js";
import { keyAttributes, keyParts, resolveLayout, dynamoKey, type TableLayout, type TableOptions } from "../../core/keys.js";
import type { NumberMode } from "../../core/numbers.js";
import { checkNames, lazy, parseOptions, text, typed, withTable, type Shape } from "../../core/options.js";
import { batchGet, type Item } from "./batch-get.js";
import { bucketStarts, checkTime, dayAttribute, dayOf, hourAttribute, hourOf, monthOf, parseDay } from "./buckets.js";
import { Sketch } from "./hll.js";
import {
  DAY_TOTAL,
  DEFAULT_TTL_ATTRIBUTE,
  itemKey,
  parseKey,
  shortWriter,
  SKETCH,
  TOP_INDEX,
  TOP_KEY,
  TOP_SHARDS,
  TOTAL,
} from "./layout.js";
import { checkPage } from "./views.js";
import { MARKER_PREFIX } from "../../buffer/writer.js";

/** Options of {@link PageViews}.
 *
 * @example
 * ```ts
 * new PageViews(client, { consistent: false, ttlAttribute: "expiresAt" });
 * ```
 */
export interface PageViewsOptions extends TableOptions {
  /** The TTL attribute the recorders write (items past it are ignored: DynamoDB deletes them only within days). @default "expiresAt" */
  ttlAttribute?: string;
  /** Strongly consistent reads (twice the read cost). `top` reads an index, which is always eventually consistent. @default true */
  consistent?: boolean;
}

/** Options of {@link PageViews.series}.
 *
 * @example
 * ```ts
 * await views.series("/home", { bucket: "hour", from: Date.now() - 86_400_000, to: Date.now() });
 * ```
 */
export interface SeriesOptions {
  /** UTC hours or UTC days. */
  bucket: "hour" | "day";
  /** Start, epoch ms, inclusive. */
  from: number;
  /** End, epoch ms, exclusive. */
  to: number;
}

/** One bucket of a series: its first ms and the views in it.
 *
 * @example
 * ```ts
 * const [{ start, views }] = await pageViews.series("/home", { bucket: "day", from, to });
 * ```
 */
export interface SeriesPoint {
  start: number;
  views: number;
}

/** One row of {@link PageViews.top}.
 *
 * @example
 * ```ts
 * const [{ page, views }] = await pageViews.top({ day: "2026-11-21" });
 * ```
 */
export interface TopPage {
  page: string;
  views: number;
}

const shape = /* @__PURE__ */ lazy((): Shape => withTable({ ttlAttribute: text(1, 255), consistent: typed("boolean") }));
const SERIES = /* @__PURE__ */ new Set(["bucket", "from", "to"]);
const DAY = /* @__PURE__ */ new Set(["day"]);
const TOP = /* @__PURE__ */ new Set(["day", "limit"]);

const count = (item: Item | undefined, attribute: string): number => Number(item?.[attribute]?.N ?? 0);

/**
 * Reads what `DurablePageViews` objects recorded, from any runtime: lifetime totals, hourly and daily series
 * (zeros included), unique visitors of a day (the objects' sketches merged) and the most viewed pages of a day.
 * Everything is as of the objects' last flush; items past their TTL are ignored.
 *
 * @example
 * ```ts
 * import { CounterClient, PageViews } from "dynacount";
 *
 * const views = new PageViews(new CounterClient());
 * await views.total("/pricing");
 * await views.series("/pricing", { bucket: "hour", from: Date.now() - 86_400_000, to: Date.now() });
 * await views.uniques("/pricing", { day: "2026-11-21" });
 * await views.top({ day: "2026-11-21", limit: 10 });
 * ```
 */
export class PageViews<M extends NumberMode = "number"> {
  readonly #client: CounterClient<M>;
  readonly #table: TableLayout;
  readonly #ttl: string;
  readonly #consistent: boolean;

  constructor(client: CounterClient<M>, options: PageViewsOptions = {}) {
    const o = parseOptions(shape, options, "page views");
    this.#client = client;
    this.#table = resolveLayout(client.table, o);
    this.#ttl = o.ttlAttribute ?? DEFAULT_TTL_ATTRIBUTE;
    this.#consistent = o.consistent ?? true;
  }

  /**
   * Lifetime views of `page` (what the objects have flushed).
   *
   * @example
   * ```ts
   * const n = await views.total("/home");
   * ```
   */
  async total(page: string): Promise<number> {
    checkPage(page);
    const [item] = await this.#get([itemKey(this.#table, "t", page)], [TOTAL]);
    return count(item, TOTAL);
  }

  /**
   * Views of `page` per UTC hour or day: one point for every bucket overlapping [from, to), zeros included, in
   * order. Hours come from day items (kept `hourlyRetentionDays`), days from month items (`dailyRetentionDays`);
   * both are read with `BatchGetItem` (one item per day or month covered).
   *
   * @example
   * ```ts
   * const last24h = await views.series("/home", { bucket: "hour", from: Date.now() - 86_400_000, to: Date.now() });
   * ```
   */
  async series(page: string, options: SeriesOptions): Promise<SeriesPoint[]> {
    checkPage(page);
    if (typeof options !== "object" || options === null) throw validationError("series() needs { bucket, from, to }");
    checkNames(options, SERIES, "series");
    const { bucket } = options;
    if (bucket !== "hour" && bucket !== "day") throw validationError(`"bucket" must be "hour" or "day", got ${JSON.stringify(bucket)}`);
    const from = checkTime(options.from, "from");
    const to = checkTime(options.to, "to");
    if (to < from) throw validationError(`"to" (${to}) is before "from" (${from})`);
    const starts = bucketStarts(bucket, from, to);
    const periodOf = bucket === "hour" ? dayOf : monthOf;
    const attributeOf =
      bucket === "hour" ? (ms: number) => hourAttribute(hourOf(ms)) : (ms: number) => dayAttribute(Number(dayOf(ms).slice(8)));
    const periods = [...new Set(starts.map(periodOf))];
    const kind = bucket === "hour" ? "d" : "m";
    const attributes =
      bucket === "hour"
        ? Array.from({ length: 24 }, (_, h) => hourAttribute(h))
        : Array.from({ length: 31 }, (_, d) => dayAttribute(d + 1));
    const items = await this.#get(
      periods.map((p) => itemKey(this.#table, kind, page, p)),
      attributes,
    );
    const byPeriod = new Map<string, Item>();
    periods.forEach((p, i) => items[i] && byPeriod.set(p, items[i]!));
    return starts.map((start) => ({ start, views: count(byPeriod.get(periodOf(start)), attributeOf(start)) }));
  }

  /**
   * Distinct visitors of `page` on a UTC day (an estimate: exact-looking up to ~1,000, then within ~1.6 %
   * standard error), the sketches of every object that counted it merged. Each day's visitor hashes are
   * unrelated to the next day's, so uniques of several days cannot be added up to people: a person is one
   * visitor per day.
   *
   * @example
   * ```ts
   * const visitors = await views.uniques("/home", { day: "2026-11-21" });
   * ```
   */
  async uniques(page: string, options: { day: string }): Promise<number> {
    checkPage(page);
    if (typeof options !== "object" || options === null) throw validationError("uniques() needs { day }");
    checkNames(options, DAY, "uniques");
    const day = options.day;
    parseDay(day);
    // The day item carries one exactly-once marker per object that counted the page that day: its writers.
    const dayKey = itemKey(this.#table, "d", page, day);
    const [item] = await this.#get([dayKey], undefined);
    if (item === undefined) return 0;
    const writers = Object.keys(item)
      .filter((name) => name.startsWith(MARKER_PREFIX))
      .map((name) => shortWriter(name.slice(MARKER_PREFIX.length)));
    if (writers.length === 0) return 0;
    const sketches = await this.#get(
      writers.map((w) => itemKey(this.#table, "u", page, `${day}#${w}`)),
      [SKETCH],
    );
    const merged = new Sketch();
    for (const s of sketches) if (s?.[SKETCH]?.S !== undefined) merged.merge(Sketch.decode(s[SKETCH].S));
    return merged.estimate();
  }

  /**
   * The most viewed pages of a UTC day, most views first (ties by page), from the index that
   * `client.createTable({ pageViews: true })` creates: one `Query` per index shard (10), merged. Eventually
   * consistent; a missing index is a `Config` error that says how to create it.
   *
   * @example
   * ```ts
   * const top = await views.top({ day: "2026-11-21", limit: 5 }); // [{ page: "/", views: 1234 }, …]
   * ```
   */
  async top(options: { day: string; limit?: number }): Promise<TopPage[]> {
    if (typeof options !== "object" || options === null) throw validationError("top() needs { day, limit? }");
    checkNames(options, TOP, "top");
    const { day, limit = 10 } = options;
    parseDay(day);
    if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw validationError(`"limit" must be an integer from 1 to 1000, got ${String(limit)}`);
    const t = this.#table;
    const now = Date.now() / 1000;
    const rows: TopPage[] = [];
    await Promise.all(
      Array.from({ length: TOP_SHARDS }, async (_, shard) => {
        let out: { Items?: Item[] };
        try {
          out = await this.#client.send<{ Items?: Item[] }>(
            "Query",
            {
              TableName: t.tableName,
              IndexName: TOP_INDEX,
              KeyConditionExpression: "#k = :k",
              ExpressionAttributeNames: { "#k": TOP_KEY },
              ExpressionAttributeValues: { ":k": { S: `${day}#${shard}` } },
              ScanIndexForward: false,
              Limit: limit,
            },
            { idempotent: true, tableName: t.tableName },
          );
        } catch (error) {
          if (error instanceof CounterError && error.code === "Validation" && /specified index/i.test(error.message)) {
            throw new CounterError(
              "Config",
              `Table "${t.tableName}" has no index "${TOP_INDEX}", which top() reads: call client.createTable({ pageViews: true }) once to add it`,
              { cause: error },
            );
          }
          throw error;
        }
        for (const item of out.Items ?? []) {
          if (this.#expired(item, now)) continue;
          const parsed = parseKey(
            item[t.keyAttribute]?.S ?? "",
            t.sortKeyAttribute === undefined ? undefined : item[t.sortKeyAttribute]?.S,
          );
          if (parsed?.kind === "d") rows.push({ page: parsed.page, views: count(item, DAY_TOTAL) });
        }
      }),
    );
    return rows.sort((a, b) => b.views - a.views || (a.page < b.page ? -1 : a.page > b.page ? 1 : 0)).slice(0, limit);
  }

  #expired(item: Item, nowSeconds: number): boolean {
    const ttl = item[this.#ttl]?.N;
    return ttl !== undefined && Number(ttl) <= nowSeconds;
  }

  /** The items at `keys`, in their order (undefined when missing or expired), with `attributes` (and the TTL) or whole. */
  async #get(keys: ReturnType<typeof itemKey>[], attributes: string[] | undefined): Promise<Array<Item | undefined>> {
    const t = this.#table;
    const wire = keys.map((k) => dynamoKey(t, k));
    const names = attributes && [t.keyAttribute, ...(t.sortKeyAttribute ? [t.sortKeyAttribute] : []), this.#ttl, ...attributes];
    const items = await batchGet(this.#client, t.tableName, wire, { consistent: this.#consistent, ...(names && { names }) });
    const now = Date.now() / 1000;
    const found = new Map<string, Item>();
    const id = (i: Item) => `${i[t.keyAttribute]?.S}\n${t.sortKeyAttribute ? i[t.sortKeyAttribute]?.S : ""}`;
    for (const item of items) if (!this.#expired(item, now)) found.set(id(item), item);
    return keys.map((k) => {
      const { id: pk, sort } = keyParts(t, k);
      return found.get(id(keyAttributes(t, pk, sort)));
    });
  }
}
