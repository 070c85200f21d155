// The storage layout of page views: item keys per page and day, month and lifetime, sketches, the top index and TTLs.
import type { CounterKey, TableLayout } from "../../core/keys.js";
import { DAY_MS, dayEnd, monthEnd } from "./buckets.js";

/** The day total of a day item; also the sort key of the index behind `top`. */
export const DAY_TOTAL = "pvViews";
/** The total of a month item and of the lifetime item. */
export const TOTAL = "views";
/** The partition key of the index behind `top`: `"<day>#<shard>"`. */
export const TOP_KEY = "pvTop";
/** The index behind `top`, created by `createTable({ pageViews: true })`. */
export const TOP_INDEX = "dynacount-pageviews-top";
/**
 * Shards of one day in the index: a day's index writes spread over this many partitions (~1,000 writes/s
 * each), which `top` reads in parallel and merges. Writers and readers must agree: a constant, not an option.
 */
export const TOP_SHARDS = 10;
/** A sketch item's sketch and its version (a later write never loses to an earlier one). */
export const SKETCH = "hll";
export const SKETCH_VERSION = "hllVersion";
/** Where views past a cap or outside an allowlist go. */
export const OTHER_PAGE = "(other)";
/** The default TTL attribute, shared with the rate limiter (DynamoDB allows one per table). */
export const DEFAULT_TTL_ATTRIBUTE = "expiresAt";
/** Default retention: day items (hourly counts, day totals, `top`, uniques) 35 days; month items (daily counts) 400 days. */
export const DEFAULT_HOURLY_DAYS = 35;
export const DEFAULT_DAILY_DAYS = 400;

/** The kinds of item: a day's hours, a month's days, the lifetime total, a writer's sketch of a day. */
export type Kind = "d" | "m" | "t" | "u";

/**
 * The key of one page-view item. Without a sort key: `pv#<kind>#<period>#<page>` in the partition key (the page
 * last, so it may hold any character); with one: partition `pv#<page>`, sort `<kind>#<period>`.
 */
export function itemKey(table: TableLayout, kind: Kind, page: string, period?: string): CounterKey {
  const tail = period === undefined ? kind : `${kind}#${period}`;
  return table.sortKeyAttribute === undefined ? `pv#${tail}#${page}` : { id: `pv#${page}`, sort: tail };
}

/** What an item key says: its kind, period and page; undefined for keys that are not page views'. */
export function parseKey(id: string, sort: string | undefined): { kind: Kind; period: string | undefined; page: string } | undefined {
  let tail: string;
  let page: string | undefined;
  if (sort === undefined) {
    const m = /^pv#(?:(t)|(d#\d{4}-\d{2}-\d{2}|m#\d{4}-\d{2}|u#\d{4}-\d{2}-\d{2}#[^#]+))#/.exec(id);
    if (!m) return undefined;
    tail = m[1] ?? m[2]!;
    page = id.slice(m[0].length);
  } else {
    if (!id.startsWith("pv#")) return undefined;
    tail = sort;
    page = id.slice(3);
  }
  const kind = tail[0] as Kind;
  if (!"dmtu".includes(kind) || (kind !== "t" && tail[1] !== "#") || (kind === "t" && tail.length !== 1)) return undefined;
  return { kind, period: kind === "t" ? undefined : tail.slice(2), page };
}

/** FNV-1a of a string's UTF-16 units: a fast, synchronous, stable spread (not a security hash). */
export function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The index partition of a page's day item: `"<day>#<shard>"`. */
export const topKey = (day: string, page: string): string => `${day}#${fnv1a(page) % TOP_SHARDS}`;

/** A short, stable name of a writer (a Durable Object's id is 64 hex digits) for sketch item keys. */
export const shortWriter = (writerId: string): string =>
  writerId.length <= 16
    ? writerId
    : fnv1a(writerId).toString(16).padStart(8, "0") + fnv1a(writerId, 0x2c1b3c6d).toString(16).padStart(8, "0");

/** Retention settings: how long day items and month items live after their period ends, in days. */
export interface Retention {
  ttlAttribute: string;
  hourlyDays: number;
  dailyDays: number;
}

/** Epoch seconds for a TTL, from epoch ms. */
const seconds = (ms: number) => String(Math.ceil(ms / 1000));

/** When a day item (and a day's sketches) expires: the day's end plus `hourlyDays`. */
export const dayExpiry = (day: string, r: Retention): number => dayEnd(day) + r.hourlyDays * DAY_MS;

/**
 * What every write of a page-view item SETs besides its counts: the TTL of day, month and sketch items, and on a
 * day item the index key. A function of the key alone, so a write retried after a restart is the same write.
 */
export function itemSets(id: string, sort: string | undefined, r: Retention): Record<string, { S: string } | { N: string }> | undefined {
  const parsed = parseKey(id, sort);
  if (parsed === undefined || parsed.kind === "t") return undefined;
  const { kind, period, page } = parsed;
  if (kind === "m") return { [r.ttlAttribute]: { N: seconds(monthEnd(period!) + r.dailyDays * DAY_MS) } };
  const day = period!.slice(0, 10);
  const ttl = { [r.ttlAttribute]: { N: seconds(dayExpiry(day, r)) } };
  return kind === "d" ? { ...ttl, [TOP_KEY]: { S: topKey(day, page) } } : ttl;
}
