// Rate limiting on DynamoDB: one conditional UpdateItem per call at most.
import * as z from "zod/mini";
import type { CounterClient } from "../core/client.js";
import { CounterError, validationError } from "../core/errors.js";
import { toKey, resolveLayout, type CounterKey, type TableLayout, type TableOptions } from "../core/keys.js";
import type { NumberMode } from "../core/numbers.js";
import { checkNames, fn, lazy, oneOf, parseOptions, positiveInt, text, withTable, type Shape } from "../core/options.js";

/** Options of {@link RateLimiter}.
 *
 * @example
 * ```ts
 * new RateLimiter(client, { limit: 100, windowMs: 60_000, algorithm: "fixed-window", failureMode: "closed" });
 * ```
 */
export interface RateLimiterOptions extends TableOptions {
  /** Requests (or cost units) allowed per window. Required. */
  limit: number;
  /** Window length in milliseconds. Required. */
  windowMs: number;
  /**
   * `"fixed-window"` counts per calendar window; `"sliding-window"` also weighs the previous window by how
   * much of it still overlaps the last `windowMs`. @default "sliding-window"
   */
  algorithm?: "sliding-window" | "fixed-window";
  /**
   * What `limit` answers when DynamoDB fails, times out or throttles (after two quick attempts): allow
   * (`"open"`) or deny (`"closed"`). Setup errors (Validation, Config, TableNotFound, AccessDenied) are thrown
   * either way. @default "open"
   */
  failureMode?: "open" | "closed";
  /** Item key of an identifier. @default (identifier) => `ratelimit:${identifier}` */
  key?: (identifier: string) => CounterKey;
  /** Attribute holding the item's expiry in epoch seconds, for DynamoDB TTL (`createTable({ ttlAttribute })`). @default "expiresAt" */
  ttlAttribute?: string;
  /** Answer identifiers already over the limit from memory, without a request, until their window resets. @default true */
  cacheBlocked?: boolean;
  /** Most identifiers kept in that cache. @default 10000 */
  cacheSize?: number;
  /** The clock, in epoch milliseconds. @default Date.now */
  now?: () => number;
}

/** The answer of {@link RateLimiter.limit}, shaped like @upstash/ratelimit's.
 *
 * @example
 * ```ts
 * const { success, remaining, reset, reason } = await limiter.limit(ip);
 * ```
 */
export interface RateLimitResult {
  /** Whether the request may proceed. */
  success: boolean;
  /** The configured limit. */
  limit: number;
  /** Units left in the current window (0 when blocked). */
  remaining: number;
  /** When the current window ends, in epoch milliseconds. */
  reset: number;
  /**
   * Why the answer did not come from DynamoDB: `"cacheBlock"` (answered from the local cache of blocked
   * identifiers), `"failOpen"` / `"failClosed"` (DynamoDB failed; see `error`). Absent otherwise.
   */
  reason?: "cacheBlock" | "failOpen" | "failClosed";
  /** The failure behind `failOpen` / `failClosed`. */
  error?: CounterError;
}

const shape = /* @__PURE__ */ lazy((): Shape => withTable({
  limit: positiveInt(),
  windowMs: positiveInt(),
  algorithm: oneOf(["sliding-window", "fixed-window"] as const),
  failureMode: oneOf(["open", "closed"] as const),
  key: fn(),
  ttlAttribute: text(1, 255),
  cacheBlocked: z.boolean(),
  cacheSize: positiveInt(),
  now: fn(),
}));

const LIMIT_OPTIONS = /* @__PURE__ */ new Set(["cost"]);

type Item = Record<string, { N?: string } | undefined>;

const windowAttribute = (index: number) => `w${index}`;
const SETUP_ERRORS = new Set(["Validation", "Config", "TableNotFound", "AccessDenied"]);
/**
 * A limiter answers in the request path: rather than ride out seconds of throttling (the client's default
 * budget), it tries twice within ~50 ms and then answers by its failureMode, reporting the Throttled error.
 */
const FAIL_FAST = { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 };

/**
 * Rate limiting on DynamoDB with one `UpdateItem` per call: both windows live on one item per identifier,
 * the current one is incremented, the stale one removed and the TTL pushed forward in the same request.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter(client, { limit: 10, windowMs: 60_000 });
 * const { success, remaining, reset } = await limiter.limit(ip);
 * if (!success) return new Response("Too many requests", { status: 429, headers: { "retry-after": String(Math.ceil((reset - Date.now()) / 1000)) } });
 * ```
 */
export class RateLimiter {
  readonly #client: CounterClient<NumberMode>;
  readonly #table: TableLayout;
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #sliding: boolean;
  readonly #failOpen: boolean;
  readonly #key: (identifier: string) => CounterKey;
  readonly #ttl: string;
  readonly #cacheBlocked: boolean;
  readonly #cacheSize: number;
  readonly #now: () => number;
  /** identifier → end of the window it is blocked in. Insertion order makes eviction oldest-first. */
  readonly #blocked = new Map<string, number>();

  constructor(client: CounterClient<NumberMode>, options: RateLimiterOptions) {
    const o = parseOptions(shape, options, "rate limiter", ["limit", "windowMs"]);
    this.#client = client;
    this.#table = resolveLayout(client.table, o);
    this.#limit = o.limit;
    this.#windowMs = o.windowMs;
    this.#sliding = (o.algorithm ?? "sliding-window") === "sliding-window";
    this.#failOpen = (o.failureMode ?? "open") === "open";
    this.#key = (o.key as RateLimiterOptions["key"]) ?? ((identifier) => `ratelimit:${identifier}`);
    this.#ttl = o.ttlAttribute ?? "expiresAt";
    this.#cacheBlocked = o.cacheBlocked ?? true;
    this.#cacheSize = o.cacheSize ?? 10_000;
    this.#now = (o.now as RateLimiterOptions["now"]) ?? Date.now;
  }

  /**
   * Counts `cost` units for `identifier` and says whether they fit the limit.
   *
   * @example
   * ```ts
   * const result = await limiter.limit(`user:${userId}`, { cost: 5 });
   * ```
   */
  async limit(identifier: string, options: { cost?: number } = {}): Promise<RateLimitResult> {
    checkNames(options, LIMIT_OPTIONS, "limit");
    const cost = options.cost ?? 1;
    if (!Number.isSafeInteger(cost) || cost < 1) throw validationError(`"cost" must be a positive integer, got ${String(cost)}`);
    const key = this.#itemKey(identifier);
    const now = this.#now();
    const index = Math.floor(now / this.#windowMs);
    const reset = (index + 1) * this.#windowMs;

    const blockedUntil = this.#blocked.get(identifier);
    if (blockedUntil !== undefined) {
      if (now < blockedUntil) return { success: false, limit: this.#limit, remaining: 0, reset: blockedUntil, reason: "cacheBlock" };
      this.#blocked.delete(identifier);
    }

    const current = windowAttribute(index);
    const stale = windowAttribute(index - (this.#sliding ? 2 : 1));
    let item: Item;
    try {
      const out = await this.#client.send<{ Attributes?: Item }>(
        "UpdateItem",
        {
          TableName: this.#table.tableName,
          Key: key,
          UpdateExpression: "ADD #cur :cost SET #ttl = :exp REMOVE #stale",
          ExpressionAttributeNames: { "#cur": current, "#ttl": this.#ttl, "#stale": stale },
          ExpressionAttributeValues: {
            ":cost": { N: String(cost) },
            // The item is needed until the end of the next window (the sliding window looks one back).
            ":exp": { N: String(Math.ceil(((index + 2) * this.#windowMs) / 1000)) },
          },
          ReturnValues: "ALL_NEW",
        },
        // Not resent after an ambiguous failure: a resend would count the request twice.
        { idempotent: false, tableName: this.#table.tableName, throttle: FAIL_FAST },
      );
      item = out.Attributes ?? {};
    } catch (error) {
      // Setup mistakes surface; only failures of a working setup (outage, throttling, timeouts) follow failureMode.
      if (!(error instanceof CounterError) || SETUP_ERRORS.has(error.code)) throw error;
      return this.#failOpen
        ? { success: true, limit: this.#limit, remaining: this.#limit, reset, reason: "failOpen", error }
        : { success: false, limit: this.#limit, remaining: 0, reset, reason: "failClosed", error };
    }
    const used = this.#used(item, index, now);
    const success = used <= this.#limit;
    if (!success && this.#cacheBlocked) this.#block(identifier, reset);
    return { success, limit: this.#limit, remaining: Math.max(0, this.#limit - used), reset };
  }

  /** Units left for `identifier` in the current window, without counting anything (one strongly consistent read). */
  async remaining(identifier: string): Promise<{ remaining: number; limit: number; reset: number }> {
    const key = this.#itemKey(identifier);
    const now = this.#now();
    const index = Math.floor(now / this.#windowMs);
    const out = await this.#client.send<{ Item?: Item }>(
      "GetItem",
      { TableName: this.#table.tableName, Key: key, ConsistentRead: true },
      { idempotent: true, tableName: this.#table.tableName },
    );
    const used = this.#used(out.Item ?? {}, index, now);
    return { remaining: Math.max(0, this.#limit - used), limit: this.#limit, reset: (index + 1) * this.#windowMs };
  }

  /** Forgets everything counted for `identifier` (the item is deleted) and unblocks it locally. */
  async reset(identifier: string): Promise<void> {
    const key = this.#itemKey(identifier);
    this.#blocked.delete(identifier);
    await this.#client.send("DeleteItem", { TableName: this.#table.tableName, Key: key }, { idempotent: true, tableName: this.#table.tableName });
  }

  #itemKey(identifier: string): Record<string, { S: string }> {
    if (typeof identifier !== "string" || identifier.length === 0) throw validationError(`identifier must be a non-empty string`);
    return toKey(this.#table, this.#key(identifier));
  }

  /** Units used in the window that contains `now`: the current count, plus the overlapping share of the previous one. */
  #used(item: Item, index: number, now: number): number {
    const current = Number(item[windowAttribute(index)]?.N ?? 0);
    if (!this.#sliding) return current;
    const previous = Number(item[windowAttribute(index - 1)]?.N ?? 0);
    const overlap = 1 - (now - index * this.#windowMs) / this.#windowMs;
    return current + Math.floor(previous * overlap);
  }

  #block(identifier: string, until: number): void {
    this.#blocked.delete(identifier);
    this.#blocked.set(identifier, until);
    if (this.#blocked.size > this.#cacheSize) this.#blocked.delete(this.#blocked.keys().next().value!);
  }
}
