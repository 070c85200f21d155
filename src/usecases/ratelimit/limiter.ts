// RateLimiter: runs one algorithm against DynamoDB, with a cache of blocked identifiers and optional leases.
import type { CounterClient } from "../../core/client.js";
import { CounterError, validationError } from "../../core/errors.js";
import { resolveLayout, dynamoKey, type CounterKey, type TableLayout, type TableOptions } from "../../core/keys.js";
import type { NumberMode } from "../../core/numbers.js";
import {
  checkNames,
  fn,
  int,
  lazy,
  oneOf,
  parseOptions,
  positiveInt,
  schema,
  text,
  timerMs,
  typed,
  withTable,
  type Shape,
} from "../../core/options.js";
import { announced, planUpdate, type Item, type Plan, type Reading } from "./algorithm.js";
import { bucketAlgorithm } from "./bucket.js";
import { Memories, type Memory } from "./memory.js";
import { Policies, type LimitSource, type Policy } from "./plan.js";
import { windowAlgorithm } from "./windows.js";

export type { LimitSource } from "./plan.js";

/** Options of {@link RateLimiter}.
 *
 * @example
 * ```ts
 * new RateLimiter(client, { limit: 100, windowMs: 60_000, algorithm: "token-bucket", lease: 10 });
 * ```
 */
export interface RateLimiterOptions extends TableOptions {
  /**
   * Units (requests, or what `cost` counts) allowed per window; a token bucket's capacity. Required. A function
   * of the identifier gives per-plan limits (free 100, pro 1,000): it is called on an identifier's first call and
   * again at most once per `limitCacheMs`; the item key does not depend on it, so a changed limit applies to what
   * was already used.
   */
  limit: LimitSource;
  /** How long a `limit` function's answer is used for an identifier before it is asked again. @default 60000 */
  limitCacheMs?: number;
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
  /**
   * The result of the call that took the units: they go back to its window, or nowhere once it has passed (a token
   * bucket gets back only the tokens of that take not refilled since). A result that took nothing (`success:
   * false`, or `reason: "failOpen"`: DynamoDB was not reached) gives nothing back.
   */
  result?: Pick<RateLimitResult, "reset"> & Partial<Pick<RateLimitResult, "success" | "reason">>;
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
  /** The limit that applied (per-plan limits: the identifier's). */
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

/** A positive integer, or a function of the identifier (per-plan limits). */
const limitOption = () =>
  schema<LimitSource>((v) =>
    typeof v === "function" || (typeof v === "number" && Number.isSafeInteger(v) && v >= 1)
      ? undefined
      : "must be a positive integer or a function of the identifier",
  );

const shape = /* @__PURE__ */ lazy(
  (): Shape =>
    withTable({
      name: text(1, 64, /^[A-Za-z0-9_.-]+$/, "may contain only letters, digits, '_', '-' and '.'"),
      limit: limitOption(),
      limitCacheMs: timerMs(),
      windowMs: int(1, MAX_WINDOW_MS),
      algorithm: oneOf(["sliding-window", "fixed-window", "token-bucket"] as const),
      lease: positiveInt(),
      failureMode: oneOf(["open", "closed"] as const),
      key: fn(),
      ttlAttribute: text(1, 255),
      cacheBlocked: typed("boolean"),
      cacheSize: positiveInt(),
      now: fn(),
    }),
);

const LIMIT_OPTIONS = /* @__PURE__ */ new Set(["cost", "rate"]);
const REFUND_OPTIONS = /* @__PURE__ */ new Set(["result"]);
const SETUP_ERRORS = /* @__PURE__ */ new Set(["Validation", "Config", "TableNotFound", "AccessDenied"]);
/**
 * A limiter answers in the request path: rather than ride out seconds of throttling (the client's default
 * budget), it tries twice within ~50 ms and then answers by its failureMode, reporting the Throttled error.
 */
export const FAIL_FAST = { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 };
/** Rounds of a call whose condition failed only because the item changed under it (others were admitted meanwhile). */
export const MAX_ROUNDS = 8;
const DONE: Promise<unknown> = /* @__PURE__ */ Promise.resolve();

/** One call of one limiter for one identifier, checked and ready to run (what `limit()` and `limitAll` share). */
export interface Prepared {
  readonly limiter: RateLimiter;
  readonly identifier: string;
  readonly key: Record<string, { S: string }>;
  readonly memory: Memory;
  readonly policy: Policy;
  readonly cost: number;
  /** The lease this call's units came from (`Memory.lease`), when they came from one. */
  lease?: number;
}

/**
 * A limiter's machinery, for `limitAll` (package-internal: not exported from the package). Every method works on
 * a {@link Prepared} call and keeps the identifier's memory (leases, blocks, last item seen) as `limit()` does.
 */
export interface LimiterInternals {
  readonly client: CounterClient<NumberMode>;
  readonly tableName: string;
  readonly name: string;
  readonly windowMs: number;
  now(): number;
  /** Validates and resolves a call (the identifier's limit included) before any request. */
  prepare(identifier: string, cost: number): Promise<Prepared>;
  /** The call answered by `limit()` itself (local answers, one request, rounds). */
  limit(p: Prepared): Promise<RateLimitResult>;
  /** The local block's answer, when the identifier is blocked. */
  blocked(p: Prepared, now: number): RateLimitResult | undefined;
  /** Takes the units from this instance's lease, when it holds enough. */
  fromLease(p: Prepared, now: number): RateLimitResult | undefined;
  /** Gives units taken by {@link fromLease} back to the lease (while it lasts). */
  returnLease(p: Prepared, now: number): void;
  /** Units to ask DynamoDB for: the cost, or a lease sized by demand. */
  want(p: Prepared, now: number): number;
  /** Books a take of `want` units confirmed by DynamoDB, `item` being the item after it (or as assumed). */
  taken(p: Prepared, now: number, want: number, item: Item | undefined): RateLimitResult;
  /** Books a denial read from `reading` (the block cache included). */
  denied(p: Prepared, reading: Reading, now: number): RateLimitResult;
  /** The answer of a failed request: thrown for setup errors, else by failureMode. */
  failure(p: Prepared, error: unknown, now: number): RateLimitResult;
  /** The answer after losing every round to other instances: denied, never admitted uncounted. */
  busy(p: Prepared, now: number): RateLimitResult;
  /** One conditional update, never resent after an ambiguous failure. */
  update(key: Record<string, { S: string }>, plan: Plan): Promise<Item | undefined>;
  /** The item behind a failed condition; rethrows other failures. */
  failedItem(error: unknown, key: Record<string, { S: string }>): Promise<Item>;
  /** Gives back what `result` took (to its lease, or to its window in DynamoDB); failures are thrown. */
  giveBack(p: Prepared, result: RateLimitResult): Promise<void>;
}

/** The internals of each limiter (set by its constructor): how `limitAll` reaches them. */
const INTERNALS = /* @__PURE__ */ new WeakMap<RateLimiter, LimiterInternals>();

/** The machinery of `limiter`; a Validation error for anything that is not a RateLimiter. */
export function internalsOf(limiter: unknown): LimiterInternals {
  const found = typeof limiter === "object" && limiter !== null ? INTERNALS.get(limiter as RateLimiter) : undefined;
  if (!found) throw validationError(`"limiter" must be a RateLimiter`);
  return found;
}

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
  readonly #policies: Policies;
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
    this.windowMs = o.windowMs;
    this.algorithm = o.algorithm ?? "sliding-window";
    const ttl = o.ttlAttribute ?? "expiresAt";
    const { windowMs, algorithm } = this;
    this.#policies = new Policies(
      o.limit,
      (limit) =>
        algorithm === "token-bucket"
          ? bucketAlgorithm(limit, windowMs, ttl)
          : windowAlgorithm(limit, windowMs, algorithm === "sliding-window", ttl),
      o.lease ?? 1,
      o.limitCacheMs ?? 60_000,
    );
    this.#failOpen = (o.failureMode ?? "open") === "open";
    this.name = o.name ?? "default";
    // Per (name, algorithm, window): two limiters on one identifier (100 a second and 5 a day) must never
    // read each other's counts as their own.
    const prefix = `ratelimit:${this.name}:${this.algorithm}:${o.windowMs}:`;
    this.#key = (o.key as RateLimiterOptions["key"]) ?? ((identifier) => prefix + identifier);
    this.#cacheBlocked = o.cacheBlocked ?? true;
    this.#memory = new Memories(o.cacheSize ?? 10_000);
    this.#now = (o.now as RateLimiterOptions["now"]) ?? Date.now;
    INTERNALS.set(this, this.#internals());
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
    return this.#limit(await this.#prepare(identifier, this.#units(options), true));
  }

  /**
   * Gives back `cost` units to `identifier`: to the window they were taken in when given the `result` of the
   * call that took them (else the window this instance last answered in, else the one current when `refund` is
   * called), and never to a window that began after it (a refund once that window has passed gives nothing); a
   * token bucket gets tokens back, never past full. Never below zero use: nothing is credited to an identifier
   * that used nothing. Never resent after an ambiguous failure. Failures are thrown.
   *
   * @example
   * ```ts
   * const result = await limiter.limit(userId);
   * if (result.success && !(await doWork())) await limiter.refund(userId, 1, { result });
   * ```
   */
  async refund(identifier: string, cost = 1, options: RefundOptions = {}): Promise<void> {
    checkNames(options, REFUND_OPTIONS, "refund");
    const { result } = options;
    if (result !== undefined && (typeof result !== "object" || result === null || !Number.isFinite(result.reset)))
      throw validationError(`Invalid refund option "result": must be the result of limit(), with a numeric reset`);
    const p = await this.#prepare(identifier, this.#units({ cost }), false);
    // A denied call took nothing, and a failOpen answer took nothing known (its failure may have counted, but
    // giving back for it could credit units never taken): nothing to give back.
    if (result?.success === false || result?.reason === "failOpen") return;
    await this.#refund(p, result);
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
    const { key, policy } = await this.#prepare(identifier, 1, false);
    const item = await this.#read(key);
    const { available, reset } = policy.algo.read(this.#now(), 1, item);
    return { remaining: available, limit: policy.limit, reset };
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
    const key = this.#dynamoKey(identifier);
    this.#memory.forget(identifier);
    await this.#client.send(
      "DeleteItem",
      { TableName: this.#table.tableName, Key: key },
      { idempotent: true, tableName: this.#table.tableName },
    );
  }

  /** Checks the identifier and the units (against the identifier's limit when `capped`) and resolves its policy. */
  async #prepare(identifier: string, units: number, capped: boolean): Promise<Prepared> {
    const key = this.#dynamoKey(identifier);
    const memory = this.#memory.recall(identifier);
    const found = this.#policies.of(identifier, memory, this.#now());
    const policy = found instanceof Promise ? await found : found;
    if (capped && units > policy.limit) {
      const whose = this.#policies.fixed === undefined ? ` for this identifier` : "";
      throw validationError(`"cost" (${units}) is more than "limit" (${policy.limit}${whose}): such a call could never be admitted`);
    }
    return { limiter: this, identifier, key, memory, policy, cost: units };
  }

  async #limit(p: Prepared): Promise<RateLimitResult> {
    const { memory, policy, cost } = p;
    for (;;) {
      const now = this.#now();
      const blocked = this.#blocked(p, now);
      if (blocked) return blocked;
      if (policy.lease === 1) return this.#take(p, cost, now);
      const leased = this.#fromLease(p, now);
      if (leased) return leased;
      if (memory.taking) {
        await memory.taking;
        continue;
      }
      let done!: () => void;
      memory.taking = new Promise<void>((resolve) => (done = resolve));
      try {
        return await this.#take(p, this.#want(p, now), now);
      } finally {
        memory.taking = undefined;
        done();
      }
    }
  }

  #blocked(p: Prepared, now: number): RateLimitResult | undefined {
    const { memory } = p;
    if (memory.blockedUntil === undefined) return undefined;
    if (now < memory.blockedUntil) return this.#result(p, false, 0, memory.blockedUntil, "cacheBlock");
    memory.blockedUntil = undefined;
    return undefined;
  }

  #fromLease(p: Prepared, now: number): RateLimitResult | undefined {
    const { memory, cost } = p;
    if (memory.leased < cost || now >= memory.until) return undefined;
    memory.leased -= cost;
    p.lease = memory.lease;
    return this.#result(p, true, memory.leased + memory.left, memory.reset, "lease");
  }

  #returnLease({ memory, cost, lease }: Prepared, now: number): void {
    // Units of a lease that has ended are dropped, as they would have gone unused; so are units of a lease that
    // has been replaced since: they were counted in its window, and another lease's would admit them twice.
    if (now < memory.until && lease === memory.lease) memory.leased += cost;
  }

  /**
   * Units to take: a lease all of it while far from the limit, half of what was left near it. Leases follow
   * demand: the first take in a window is what this call needs, then each take grows fourfold up to `lease`;
   * near the limit, half of what was left. Cold identifiers so lease nothing they do not use.
   */
  #want({ memory, policy, cost }: Prepared, now: number): number {
    if (policy.lease === 1) return cost;
    const warm = now < memory.reset;
    const want = Math.max(cost, warm ? Math.min(policy.lease, memory.grant * 4, Math.floor(memory.left / 2)) : cost);
    memory.grant = want;
    return want;
  }

  async #refund(p: Prepared, result: RefundOptions["result"]): Promise<void> {
    const { key, memory, policy, cost: units } = p;
    const algo = policy.algo;
    memory.blockedUntil = undefined;
    // The window is fixed when the refund is asked for, not at each round: units to give back were taken by then,
    // so a refund whose rounds outlast its window (retries, a slow read of the failed item) must not give them to
    // a window that began meanwhile, as units that window never had (they would admit calls over its limit).
    // Without a result or an answer of this instance: the window current when the refund is asked for, as `limit()`
    // counts it (the item's newer window when it is one ahead: a clock behind the item's joins it).
    const asked = this.#now();
    const memoryless = result === undefined && memory.reset <= 0;
    // This call's hint, as in #take: concurrent calls may leave an older item in the instance's memory.
    let seen = memory.seen;
    let takenAt = result !== undefined ? algo.takenAt(result) : memory.reset > 0 ? algo.takenAt(memory) : algo.countsAt(asked, seen);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const now = this.#now();
      const fix = algo.normalize(now, seen);
      const plan = fix ?? algo.refund(now, units, seen, takenAt);
      if (!plan) return;
      try {
        // Not resent after an ambiguous failure: that could give back twice.
        seen = (await this.#update(key, plan)) ?? seen;
        memory.seen = seen;
        if (fix) continue;
        return;
      } catch (error) {
        seen = await this.#failedItem(error, key);
        memory.seen = seen;
        // The item as it stood when the refund was asked (the answer came back within the same window of this
        // clock) says which window was current then; one read later, it could name a window begun since.
        if (memoryless && round === 0 && Math.floor(this.#now() / this.windowMs) === Math.floor(asked / this.windowMs)) {
          takenAt = algo.countsAt(asked, seen);
        }
      }
    }
    throw this.#busyError("refund");
  }

  /** Takes `want` units (≥ `cost`) in as few requests as the item allows; `cost` go to this call, the rest to the lease. */
  async #take(p: Prepared, want: number, now: number): Promise<RateLimitResult> {
    const { key, memory, cost } = p;
    const algo = p.policy.algo;
    // This call's hint: the instance's at first, then what this call's own requests returned. Concurrent calls
    // share the instance's memory and may leave an older item there; planning a retry from it would repeat the
    // assumption that just failed (a full bucket, an old window), round after round.
    let seen = memory.seen;
    const learn = (item: Item | undefined) => {
      seen = item;
      memory.seen = item;
    };
    /** When the last request whose condition failed was sent (see Algorithm.take). */
    let lostAt: number | undefined;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      // Each round at the time it is sent: a call whose retries outlast a window would otherwise take newer
      // windows (written by right clocks meanwhile) for a clock far ahead, write them back, and count in a window
      // that has passed.
      if (round > 0) now = this.#now();
      // State from a clock far ahead (or kept in another limit's scale) is brought back first: it must not lock
      // the identifier out.
      const fix = algo.normalize(now, seen);
      if (fix) {
        try {
          learn((await this.#update(key, fix)) ?? seen);
        } catch (error) {
          try {
            learn(await this.#failedItem(error, key));
          } catch (failure) {
            return this.#failure(p, failure, now);
          }
        }
        continue;
      }
      const plan = algo.take(now, want, seen, lostAt);
      if (!plan) {
        learn(seen);
        return { ...this.#denied(p, algo.read(now, cost, seen ?? {}), now), reason: "cacheBlock" };
      }
      try {
        return this.#taken(p, now, want, await this.#update(key, plan));
      } catch (error) {
        let item: Item;
        try {
          item = await this.#failedItem(error, key);
        } catch (failure) {
          return this.#failure(p, failure, now);
        }
        learn(item);
        if (algo.normalize(now, item)) continue;
        const reading = algo.read(now, cost, item);
        if (reading.available < cost) {
          const answeredAt = this.#now();
          return this.#denied(p, announced(algo, reading, cost, item, answeredAt), answeredAt);
        }
        // It fits: the condition failed on an assumption (window, previous count, bucket state). Ask again, for
        // no more than is there.
        want = Math.max(cost, Math.min(want, reading.available));
        lostAt = now;
      }
    }
    return this.#busy(p, now);
  }

  #taken(p: Prepared, now: number, want: number, item: Item | undefined): RateLimitResult {
    const { memory, policy, cost } = p;
    memory.seen = item;
    const after = policy.algo.read(now, 1, item ?? {});
    if (policy.lease > 1) {
      // Units left from an older lease (fewer than this call needed) are dropped: they are the bounded slack.
      memory.leased = want - cost;
      memory.until = Math.min(policy.algo.leaseUntil(now, want), after.reset);
      memory.lease++;
    }
    memory.left = after.available;
    memory.reset = after.reset;
    return this.#result(p, true, after.available + memory.leased, after.reset);
  }

  #denied(p: Prepared, reading: Reading, now: number): RateLimitResult {
    const { memory, policy } = p;
    memory.left = reading.available;
    memory.reset = reading.reset;
    memory.leased = 0;
    if (this.#cacheBlocked && reading.available === 0) memory.blockedUntil = policy.algo.read(now, 1, memory.seen ?? {}).freeAt;
    return this.#result(p, false, reading.available, reading.freeAt);
  }

  #failure(p: Prepared, error: unknown, now: number): RateLimitResult {
    const { policy } = p;
    // Setup mistakes surface; only failures of a working setup (outage, throttling, timeouts) follow failureMode.
    if (!(error instanceof CounterError) || SETUP_ERRORS.has(error.code)) throw error;
    const end = policy.algo.leaseUntil(now, policy.limit);
    const result = this.#failOpen ? this.#result(p, true, policy.limit, end, "failOpen") : this.#result(p, false, 0, end, "failClosed");
    result.error = error;
    return result;
  }

  #busy(p: Prepared, now: number): RateLimitResult {
    // Contention is not an outage: admitting here (failureMode "open") would admit a call nobody counted.
    const result = this.#result(p, false, 0, now + 1, "failClosed");
    result.error = this.#busyError("limit");
    return result;
  }

  #result(p: Prepared, success: boolean, remaining: number, reset: number, reason?: RateLimitResult["reason"]): RateLimitResult {
    const result: RateLimitResult = { success, limit: p.policy.limit, remaining, reset, pending: DONE };
    if (reason) result.reason = reason;
    return result;
  }

  /** One conditional update; the item after it. Never resent after an ambiguous failure (it would count twice). */
  async #update(key: Record<string, { S: string }>, plan: Plan): Promise<Item | undefined> {
    const out = await this.#client.send<{ Attributes?: Item }>(
      "UpdateItem",
      planUpdate(this.#table.tableName, key, plan),
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

  /** `cost` (or `rate`) as a positive integer; checked against the identifier's limit once that is known. */
  #units(options: LimitOptions): number {
    const { cost, rate } = options;
    if (cost !== undefined && rate !== undefined && cost !== rate)
      throw validationError(`"cost" and "rate" are the same option; got both (${cost}, ${rate})`);
    const units = cost ?? rate ?? 1;
    if (!Number.isSafeInteger(units) || units < 1) throw validationError(`"cost" must be a positive integer, got ${String(units)}`);
    return units;
  }

  #dynamoKey(identifier: string): Record<string, { S: string }> {
    if (typeof identifier !== "string" || identifier.length === 0) throw validationError(`identifier must be a non-empty string`);
    return dynamoKey(this.#table, this.#key(identifier));
  }

  #busyError(what: string): CounterError {
    return new CounterError("Conflict", `${what}: the item kept changing under ${MAX_ROUNDS} conditional requests in a row`, {
      retryable: true,
    });
  }

  /** What `limitAll` reaches through {@link internalsOf}. */
  #internals(): LimiterInternals {
    return {
      client: this.#client,
      tableName: this.#table.tableName,
      name: this.name,
      windowMs: this.windowMs,
      now: () => this.#now(),
      prepare: (identifier, cost) => this.#prepare(identifier, this.#units({ cost }), true),
      limit: (p) => this.#limit(p),
      blocked: (p, now) => this.#blocked(p, now),
      fromLease: (p, now) => this.#fromLease(p, now),
      returnLease: (p, now) => this.#returnLease(p, now),
      want: (p, now) => this.#want(p, now),
      taken: (p, now, want, item) => this.#taken(p, now, want, item),
      denied: (p, reading, now) => this.#denied(p, reading, now),
      failure: (p, error, now) => this.#failure(p, error, now),
      busy: (p, now) => this.#busy(p, now),
      update: (key, plan) => this.#update(key, plan),
      failedItem: (error, key) => this.#failedItem(error, key),
      giveBack: async (p, result) => {
        // A lease's units go back to the lease; a failOpen answer took nothing known; anything else took from
        // DynamoDB, in the window of `result`.
        if (result.reason === "lease") return this.#returnLease(p, this.#now());
        if (result.reason === "failOpen" || !result.success) return;
        p.memory.blockedUntil = undefined;
        await this.#refund(p, result);
      },
    };
  }
}
