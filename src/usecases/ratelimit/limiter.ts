// RateLimiter: runs one algorithm against DynamoDB, with a cache of blocked identifiers and optional leases.
import type { CounterClient } from "../../core/client.js";
import { CounterError, validationError } from "../../core/errors.js";
import { resolveLayout, toKey, type CounterKey, type TableLayout, type TableOptions } from "../../core/keys.js";
import type { NumberMode } from "../../core/numbers.js";
import { checkNames, fn, int, lazy, oneOf, parseOptions, positiveInt, text, typed, withTable, type Shape } from "../../core/options.js";
import type { Algorithm, Item, Plan, Reading } from "./algorithm.js";
import { bucketAlgorithm } from "./bucket.js";
import { Memories, type Memory } from "./memory.js";
import { windowAlgorithm } from "./windows.js";

/** Options of {@link RateLimiter}.
 *
 * @example
 * ```ts
 * new RateLimiter(client, { limit: 100, windowMs: 60_000, algorithm: "token-bucket", lease: 10 });
 * ```
 */
export interface RateLimiterOptions extends TableOptions {
  /** Units (requests, or what `cost` counts) allowed per window; a token bucket's capacity. Required. */
  limit: number;
  /** Window length in milliseconds; a token bucket refills `limit` tokens over this time. Required. */
  windowMs: number;
  /**
   * `"fixed-window"` counts per calendar window; `"sliding-window"` adds the previous window weighted by how
   * much of it still overlaps the last `windowMs`; `"token-bucket"` allows bursts up to `limit` and a
   * sustained rate of `limit` per `windowMs`. @default "sliding-window"
   */
  algorithm?: "sliding-window" | "fixed-window" | "token-bucket";
  /**
   * Units an instance takes for an identifier in one request and then hands out from memory, with no request.
   * Nothing is ever admitted over the limit across instances; unused leased units are the only slack (at most
   * `lease` per instance and identifier), and a lease ends with its window (token bucket: the time its tokens
   * took to refill). Leases follow demand: an instance's first take in a window is what the call needs, each
   * next one four times larger up to `lease`, and near the limit it takes half of what was left. @default 1
   */
  lease?: number;
  /**
   * What `limit` answers when DynamoDB fails, times out or throttles (after two quick attempts): allow
   * (`"open"`) or deny (`"closed"`). Setup errors (Validation, Config, TableNotFound, AccessDenied) are thrown
   * either way. @default "open"
   */
  failureMode?: "open" | "closed";
  /**
   * What the limit is for (`"login"`, `"api"`): the policy name in headers and part of the default item key,
   * so limiters with different names, algorithms or windows on one identifier each keep their own count.
   * Letters, digits and `_ . -`, at most 64. @default "default"
   */
  name?: string;
  /**
   * Item key of an identifier, used as it is (limiters sharing it share one count: give each its own).
   * @default (identifier) => `ratelimit:${name}:${algorithm}:${windowMs}:${identifier}`
   */
  key?: (identifier: string) => CounterKey;
  /** Attribute holding the item's expiry in epoch seconds, for DynamoDB TTL (`createTable({ ttlAttribute })`). @default "expiresAt" */
  ttlAttribute?: string;
  /** Answer identifiers with nothing left from memory, without a request, until a unit is free again. @default true */
  cacheBlocked?: boolean;
  /** Most identifiers remembered (blocks, leases, last state seen). @default 10000 */
  cacheSize?: number;
  /** The clock, in epoch milliseconds. @default Date.now */
  now?: () => number;
}

/** Options of {@link RateLimiter.limit}.
 *
 * @example
 * ```ts
 * await limiter.limit(userId, { cost: 5 });
 * ```
 */
export interface LimitOptions {
  /** Units this call takes. @default 1 */
  cost?: number;
  /** Another name for `cost` (as in @upstash/ratelimit). */
  rate?: number;
}

/** Options of {@link RateLimiter.refund}.
 *
 * @example
 * ```ts
 * await limiter.refund(userId, 1, { result }); // result: what limit() answered when the units were taken
 * ```
 */
export interface RefundOptions {
  /** The result of the call that took the units: they go back to its window, or nowhere once it has passed. */
  result?: Pick<RateLimitResult, "reset">;
}

/** The answer of {@link RateLimiter.limit}, shaped like @upstash/ratelimit's.
 *
 * @example
 * ```ts
 * const { success, remaining, reset, pending } = await limiter.limit(ip);
 * ctx.waitUntil(pending);
 * ```
 */
export interface RateLimitResult {
  /** Whether the request may proceed. */
  success: boolean;
  /** The configured limit. */
  limit: number;
  /** Units left (with a lease: this instance's leased units plus what DynamoDB had left when it last answered). */
  remaining: number;
  /**
   * Epoch ms. Allowed: when the quota is whole again (window end; token bucket: full). Denied: when the call
   * would fit again if nothing else were taken (fixed window: its end).
   */
  reset: number;
  /** Work still running in the background, for `ctx.waitUntil` (today always resolved: nothing is deferred). */
  pending: Promise<unknown>;
  /**
   * Where the answer came from when not from a request to DynamoDB: `"cacheBlock"` (the local cache of blocked
   * identifiers), `"lease"` (units this instance had already taken), `"failOpen"` / `"failClosed"` (DynamoDB
   * failed; see `error`).
   */
  reason?: "cacheBlock" | "lease" | "failOpen" | "failClosed";
  /** The failure behind `failOpen` / `failClosed`. */
  error?: CounterError;
}

/** Ten years: longer windows would take window arithmetic (index × windowMs) towards 2^53. */
const MAX_WINDOW_MS = 315_360_000_000;

const shape = /* @__PURE__ */ lazy((): Shape => withTable({
  name: text(1, 64, /^[A-Za-z0-9_.-]+$/, "may contain only letters, digits, '_', '-' and '.'"),
  limit: positiveInt(),
  windowMs: int(1, MAX_WINDOW_MS),
  algorithm: oneOf(["sliding-window", "fixed-window", "token-bucket"] as const),
  lease: positiveInt(),
  failureMode: oneOf(["open", "closed"] as const),
  key: fn(),
  ttlAttribute: text(1, 255),
  cacheBlocked: typed("boolean"),
  cacheSize: positiveInt(),
  now: fn(),
}));

const LIMIT_OPTIONS = /* @__PURE__ */ new Set(["cost", "rate"]);
const REFUND_OPTIONS = /* @__PURE__ */ new Set(["result"]);
const SETUP_ERRORS = /* @__PURE__ */ new Set(["Validation", "Config", "TableNotFound", "AccessDenied"]);
/**
 * A limiter answers in the request path: rather than ride out seconds of throttling (the client's default
 * budget), it tries twice within ~50 ms and then answers by its failureMode, reporting the Throttled error.
 */
const FAIL_FAST = { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 };
/** Rounds of a call whose condition failed only because the item changed under it (others were admitted meanwhile). */
const MAX_ROUNDS = 8;
const DONE: Promise<unknown> = /* @__PURE__ */ Promise.resolve();


/**
 * Rate limiting on DynamoDB: one conditional `UpdateItem` per call at most, none for identifiers answered
 * from memory (blocked ones, leases). A denied call changes nothing: the condition fails and DynamoDB returns
 * the item as it is (`ReturnValuesOnConditionCheckFailure`), which is all the answer needs.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter(client, { limit: 10, windowMs: 60_000 });
 * const result = await limiter.limit(ip);
 * if (!result.success) return new Response("Too many requests", { status: 429, headers: rateLimitHeaders(result, { windowMs: limiter.windowMs }) });
 * ```
 */
export class RateLimiter {
  /** The window (token bucket: refill time of `limit` tokens), for {@link rateLimitHeaders}. */
  readonly windowMs: number;
  /** The algorithm in use. */
  readonly algorithm: "sliding-window" | "fixed-window" | "token-bucket";
  /** What the limit is for: the policy name in headers, part of the default item key. */
  readonly name: string;
  readonly #client: CounterClient<NumberMode>;
  readonly #table: TableLayout;
  readonly #limit: number;
  readonly #lease: number;
  readonly #algo: Algorithm;
  readonly #failOpen: boolean;
  readonly #key: (identifier: string) => CounterKey;
  readonly #cacheBlocked: boolean;
  readonly #now: () => number;
  /** identifier → what this instance knows; insertion order makes eviction oldest-first. */
  readonly #memory: Memories;

  constructor(client: CounterClient<NumberMode>, options: RateLimiterOptions) {
    const o = parseOptions(shape, options, "rate limiter", ["limit", "windowMs"]);
    this.#client = client;
    this.#table = resolveLayout(client.table, o);
    this.#limit = o.limit;
    this.windowMs = o.windowMs;
    this.algorithm = o.algorithm ?? "sliding-window";
    this.#lease = Math.min(o.lease ?? 1, o.limit);
    const ttl = o.ttlAttribute ?? "expiresAt";
    this.#algo = this.algorithm === "token-bucket"
      ? bucketAlgorithm(o.limit, o.windowMs, ttl)
      : windowAlgorithm(o.limit, o.windowMs, this.algorithm === "sliding-window", ttl);
    this.#failOpen = (o.failureMode ?? "open") === "open";
    this.name = o.name ?? "default";
    // Per (name, algorithm, window): two limiters on one identifier (100 a second and 5 a day) must never
    // read each other's counts as their own.
    const prefix = `ratelimit:${this.name}:${this.algorithm}:${o.windowMs}:`;
    this.#key = (o.key as RateLimiterOptions["key"]) ?? ((identifier) => prefix + identifier);
    this.#cacheBlocked = o.cacheBlocked ?? true;
    this.#memory = new Memories(o.cacheSize ?? 10_000);
    this.#now = (o.now as RateLimiterOptions["now"]) ?? Date.now;
  }

  /**
   * Takes `cost` units for `identifier` if they fit; a call that does not fit takes nothing.
   *
   * @example
   * ```ts
   * const { success } = await limiter.limit(`user:${userId}`, { cost: 5 });
   * ```
   */
  async limit(identifier: string, options: LimitOptions = {}): Promise<RateLimitResult> {
    checkNames(options, LIMIT_OPTIONS, "limit");
    const cost = this.#cost(options);
    const key = this.#itemKey(identifier);
    const memory = this.#memory.recall(identifier);
    for (;;) {
      const now = this.#now();
      if (memory.blockedUntil !== undefined) {
        if (now < memory.blockedUntil) return this.#result(false, 0, memory.blockedUntil, "cacheBlock");
        memory.blockedUntil = undefined;
      }
      if (this.#lease === 1) return this.#take(key, memory, cost, cost, now);
      if (memory.leased >= cost && now < memory.until) {
        memory.leased -= cost;
        return this.#result(true, memory.leased + memory.left, memory.reset, "lease");
      }
      if (memory.taking) {
        await memory.taking;
        continue;
      }
      // Take a lease: all of it while far from the limit, half of what was left near it.
      // Leases follow demand: the first take in a window is what this call needs, then each take grows fourfold up
      // to `lease`; near the limit, half of what was left. Cold identifiers so lease nothing they do not use.
      const warm = now < memory.reset;
      const want = Math.max(cost, warm ? Math.min(this.#lease, memory.grant * 4, Math.floor(memory.left / 2)) : cost);
      memory.grant = want;
      let done!: () => void;
      memory.taking = new Promise<void>((resolve) => (done = resolve));
      try {
        return await this.#take(key, memory, cost, want, now);
      } finally {
        memory.taking = undefined;
        done();
      }
    }
  }

  /**
   * Gives back `cost` units to `identifier`: to the window they were taken in when given the `result` of the
   * call that took them (else the window this instance last answered in, else the current one), and never to
   * a window that began after it (a refund once that window has passed gives nothing); a token bucket gets
   * tokens back, never past full. Never below zero use: nothing is credited to an identifier that used
   * nothing. Never resent after an ambiguous failure. Failures are thrown.
   *
   * @example
   * ```ts
   * const result = await limiter.limit(userId);
   * if (result.success && !(await doWork())) await limiter.refund(userId, 1, { result });
   * ```
   */
  async refund(identifier: string, cost = 1, options: RefundOptions = {}): Promise<void> {
    checkNames(options, REFUND_OPTIONS, "refund");
    const units = this.#cost({ cost }, Infinity);
    const key = this.#itemKey(identifier);
    const memory = this.#memory.recall(identifier);
    memory.blockedUntil = undefined;
    const takenAt = options.result !== undefined ? this.#algo.takenAt(options.result) : memory.reset > 0 ? this.#algo.takenAt(memory) : undefined;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const now = this.#now();
      const fix = this.#algo.normalize(now, memory.seen);
      const plan = fix ?? this.#algo.refund(now, units, memory.seen, takenAt);
      if (!plan) return;
      try {
        // Not resent after an ambiguous failure: that could give back twice.
        memory.seen = (await this.#update(key, plan)) ?? memory.seen;
        if (fix) continue;
        return;
      } catch (error) {
        memory.seen = await this.#failedItem(error, key);
      }
    }
    throw this.#busy("refund");
  }

  /**
   * Units left for `identifier` now, without taking any (one strongly consistent read).
   *
   * @example
   * ```ts
   * const { remaining, reset } = await limiter.remaining(ip);
   * ```
   */
  async remaining(identifier: string): Promise<{ remaining: number; limit: number; reset: number }> {
    const key = this.#itemKey(identifier);
    const item = await this.#read(key);
    const { available, reset } = this.#algo.read(this.#now(), 1, item);
    return { remaining: available, limit: this.#limit, reset };
  }

  /**
   * Forgets everything counted for `identifier` (the item is deleted) and what this instance remembers of it.
   *
   * @example
   * ```ts
   * await limiter.reset(ip);
   * ```
   */
  async reset(identifier: string): Promise<void> {
    const key = this.#itemKey(identifier);
    this.#memory.forget(identifier);
    await this.#client.send("DeleteItem", { TableName: this.#table.tableName, Key: key }, { idempotent: true, tableName: this.#table.tableName });
  }

  /** Takes `want` units (≥ `cost`) in as few requests as the item allows; `cost` go to this call, the rest to the lease. */
  async #take(key: Record<string, { S: string }>, memory: Memory, cost: number, want: number, now: number): Promise<RateLimitResult> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      // State from a clock far ahead is brought back first: it must not lock the identifier out.
      const fix = this.#algo.normalize(now, memory.seen);
      if (fix) {
        try {
          memory.seen = (await this.#update(key, fix)) ?? memory.seen;
        } catch (error) {
          try {
            memory.seen = await this.#failedItem(error, key);
          } catch (failure) {
            return this.#failure(failure, now);
          }
        }
        continue;
      }
      const plan = this.#algo.take(now, want, memory.seen);
      if (!plan) return { ...this.#denied(memory, this.#algo.read(now, cost, memory.seen ?? {}), now), reason: "cacheBlock" };
      try {
        const item = await this.#update(key, plan);
        memory.seen = item;
        const after = this.#algo.read(now, 1, item ?? {});
        if (this.#lease > 1) {
          // Units left from an older lease (fewer than this call needed) are dropped: they are the bounded slack.
          memory.leased = want - cost;
          memory.until = Math.min(this.#algo.leaseUntil(now, want), after.reset);
        }
        memory.left = after.available;
        memory.reset = after.reset;
        return this.#result(true, after.available + memory.leased, after.reset);
      } catch (error) {
        let item: Item;
        try {
          item = await this.#failedItem(error, key);
        } catch (failure) {
          return this.#failure(failure, now);
        }
        memory.seen = item;
        if (this.#algo.normalize(now, item)) continue;
        const reading = this.#algo.read(now, cost, item);
        if (reading.available < cost) return this.#denied(memory, reading, now);
        // It fits: the condition failed on an assumption (window, previous count, bucket state). Ask again, for
        // no more than is there.
        want = Math.max(cost, Math.min(want, reading.available));
      }
    }
    // Contention is not an outage: admitting here (failureMode "open") would admit a call nobody counted.
    const result = this.#result(false, 0, now + 1, "failClosed");
    result.error = this.#busy("limit");
    return result;
  }

  #denied(memory: Memory, reading: Reading, now: number): RateLimitResult {
    memory.left = reading.available;
    memory.reset = reading.reset;
    memory.leased = 0;
    if (this.#cacheBlocked && reading.available === 0) memory.blockedUntil = this.#algo.read(now, 1, memory.seen ?? {}).freeAt;
    return this.#result(false, reading.available, reading.freeAt);
  }

  #failure(error: unknown, now: number): RateLimitResult {
    // Setup mistakes surface; only failures of a working setup (outage, throttling, timeouts) follow failureMode.
    if (!(error instanceof CounterError) || SETUP_ERRORS.has(error.code)) throw error;
    const end = this.#algo.leaseUntil(now, this.#limit);
    const result = this.#failOpen ? this.#result(true, this.#limit, end, "failOpen") : this.#result(false, 0, end, "failClosed");
    result.error = error;
    return result;
  }

  #result(success: boolean, remaining: number, reset: number, reason?: RateLimitResult["reason"]): RateLimitResult {
    const result: RateLimitResult = { success, limit: this.#limit, remaining, reset, pending: DONE };
    if (reason) result.reason = reason;
    return result;
  }

  /** One conditional update; the item after it. Never resent after an ambiguous failure (it would count twice). */
  async #update(key: Record<string, { S: string }>, plan: Plan): Promise<Item | undefined> {
    const out = await this.#client.send<{ Attributes?: Item }>(
      "UpdateItem",
      {
        TableName: this.#table.tableName,
        Key: key,
        UpdateExpression: plan.update,
        ConditionExpression: plan.condition,
        ExpressionAttributeNames: plan.names,
        ExpressionAttributeValues: plan.values,
        ReturnValues: "ALL_NEW",
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      },
      // Never resent after an ambiguous failure, whatever the client's retry.atLeastOnce: a take applied twice
      // counts twice, a refund applied twice gives back twice (and admits over the limit).
      { idempotent: false, atLeastOnce: false, tableName: this.#table.tableName, throttle: FAIL_FAST },
    );
    return out.Attributes;
  }

  /** The item behind a failed condition (from the error; servers that omit it are read once); rethrows other failures. */
  async #failedItem(error: unknown, key: Record<string, { S: string }>): Promise<Item> {
    if (!(error instanceof CounterError) || error.awsType !== "ConditionalCheckFailedException") throw error;
    return (error.item as Item | undefined) ?? this.#read(key);
  }

  async #read(key: Record<string, { S: string }>): Promise<Item> {
    const out = await this.#client.send<{ Item?: Item }>(
      "GetItem",
      { TableName: this.#table.tableName, Key: key, ConsistentRead: true },
      { idempotent: true, tableName: this.#table.tableName, throttle: FAIL_FAST },
    );
    return out.Item ?? {};
  }

  #cost(options: LimitOptions, most = this.#limit): number {
    const { cost, rate } = options;
    if (cost !== undefined && rate !== undefined && cost !== rate) throw validationError(`"cost" and "rate" are the same option; got both (${cost}, ${rate})`);
    const units = cost ?? rate ?? 1;
    if (!Number.isSafeInteger(units) || units < 1) throw validationError(`"cost" must be a positive integer, got ${String(units)}`);
    if (units > most) throw validationError(`"cost" (${units}) is more than "limit" (${this.#limit}): such a call could never be admitted`);
    return units;
  }

  #itemKey(identifier: string): Record<string, { S: string }> {
    if (typeof identifier !== "string" || identifier.length === 0) throw validationError(`identifier must be a non-empty string`);
    return toKey(this.#table, this.#key(identifier));
  }



  #busy(what: string): CounterError {
    return new CounterError("Conflict", `${what}: the item kept changing under ${MAX_ROUNDS} conditional requests in a row`, { retryable: true });
  }
}
