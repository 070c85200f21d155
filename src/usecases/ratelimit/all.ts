// limitAll: several limits for one call, all or nothing (one transaction where DynamoDB has them; take and give back elsewhere).
import type { CounterClient } from "../../core/client.js";
import { CounterError, shown, validationError } from "../../core/errors.js";
import type { NumberMode } from "../../core/numbers.js";
import { checkNames } from "../../core/options.js";
import { sleep } from "../../core/timers.js";
import { announced, type Item } from "./algorithm.js";
import { internalsOf, MAX_ROUNDS, type LimiterInternals, type Prepared, type RateLimiter, type RateLimitResult } from "./limiter.js";
import { callId, readItems, tokenFor, transact, type Action, type Outcome } from "./transact.js";

/** One limit of a {@link limitAll} call.
 *
 * @example
 * ```ts
 * const check: LimitCheck = { limiter: perUser, identifier: `user:${userId}`, cost: 2 };
 * ```
 */
export interface LimitCheck {
  limiter: RateLimiter;
  identifier: string;
  /** Units this call takes from this limit. @default 1 */
  cost?: number;
}

/** One limit's part of a {@link MultiRateLimitResult}: a {@link RateLimitResult} naming its limit.
 *
 * @example
 * ```ts
 * const denied = multi.results.filter((r) => !r.success).map((r) => r.name); // ["daily"]
 * ```
 */
export interface LimitCheckResult extends RateLimitResult {
  /**
   * Whether this limit had room for the call. Nothing is taken from any limit unless every one had: in a denied
   * call, the limits that had room are `true` here and were not charged.
   */
  success: boolean;
  /** The limiter's `name` (the policy in headers). */
  name: string;
  /** The identifier checked. */
  identifier: string;
  /** The limiter's window, for the headers. */
  windowMs: number;
}

/** The answer of {@link limitAll}: one result per check, and the most restrictive limit's fields on top.
 *
 * @example
 * ```ts
 * const { success, reset, results } = await limitAll([...]);
 * ```
 */
export interface MultiRateLimitResult {
  /** Whether the call may proceed: every limit had room, and each was charged. */
  success: boolean;
  /** One per check, in the order of the checks (checks merged into one share their result). */
  results: LimitCheckResult[];
  /**
   * The most restrictive limit's fields. Denied: the denying limit whose `reset` (when the call fits again) is
   * latest, so `Retry-After` from it is enough for every limit. Allowed: the limit with the fewest `remaining`.
   */
  limit: number;
  remaining: number;
  reset: number;
  /** Every check's `pending`, for `ctx.waitUntil`. */
  pending: Promise<unknown>;
  reason?: RateLimitResult["reason"];
  error?: CounterError;
}

/** One distinct (limiter, identifier) of a call, with the checks it answers. */
interface Call {
  readonly internals: LimiterInternals;
  readonly p: Prepared;
  /** Indices of the checks merged into it. */
  readonly checks: number[];
}

const CHECK_NAMES = /* @__PURE__ */ new Set(["limiter", "identifier", "cost"]);
/** DynamoDB's limit of actions per transaction. */
const MAX_CHECKS = 100;
/** Rounds cancelled only by throttling (no condition failed) before the call follows the limiters' failureMode. */
const THROTTLED_ROUNDS = 2;
const DONE: Promise<unknown> = /* @__PURE__ */ Promise.resolve();
/** Clients whose server has no TransactWriteItems (dynalite), learned once from its UnknownOperationException. */
const NO_TRANSACTIONS = /* @__PURE__ */ new WeakSet<object>();

/**
 * Checks several limits for one call, all or nothing: a call that any limit denies takes nothing from the
 * others. Where DynamoDB has transactions: one `TransactWriteItems` in the common case, one conditional update per
 * limit, and a denied call changes nothing; where it has not (dynalite, detected once per client), or when the
 * limiters use different clients: each limit in order, and on a denial what the earlier ones took is given back,
 * each into the window it was taken in. Limits answered locally (a lease, a block) need no request; when one limit
 * is left to ask, a plain conditional update is enough.
 *
 * Limiters' names must differ (they name the policies in headers); the same limiter and identifier twice is one
 * check of the summed cost. Bad input is a Validation error before any request.
 *
 * @example
 * ```ts
 * const result = await limitAll([
 *   { limiter: perSecond, identifier: userId },
 *   { limiter: perDay, identifier: userId },
 *   { limiter: global, identifier: "all" },
 * ]);
 * if (!result.success) return new Response("Too many requests", { status: 429, headers: rateLimitHeaders(result) });
 * ```
 */
export async function limitAll(checks: readonly LimitCheck[]): Promise<MultiRateLimitResult> {
  const calls = await prepare(checks);
  const client = calls[0]!.internals.client;
  const oneClient = calls.every((c) => c.internals.client === client);
  const answers = (oneClient && !NO_TRANSACTIONS.has(client) && (await atomically(client, calls))) || (await inOrder(calls));
  const results: LimitCheckResult[] = [];
  calls.forEach((call, i) => {
    for (const index of call.checks) {
      results[index] = { ...answers[i]!, name: call.internals.name, identifier: call.p.identifier, windowMs: call.internals.windowMs };
    }
  });
  return combine(results);
}

/** Validates the checks, merges repeats, and resolves each distinct one (its limit included), before any request. */
async function prepare(checks: readonly LimitCheck[]): Promise<Call[]> {
  if (!Array.isArray(checks) || checks.length === 0)
    throw validationError(`limitAll needs a non-empty array of { limiter, identifier, cost? }`);
  if (checks.length > MAX_CHECKS)
    throw validationError(`limitAll takes at most ${MAX_CHECKS} checks (one transaction), got ${checks.length}`);
  const distinct = new Map<
    string,
    { internals: LimiterInternals; limiter: RateLimiter; identifier: string; cost: number; checks: number[] }
  >();
  const byLimiter = new Map<RateLimiter, number>();
  const names = new Map<string, string>();
  checks.forEach((check, index) => {
    if (typeof check !== "object" || check === null)
      throw validationError(`limitAll check ${index} must be an object { limiter, identifier, cost? }`);
    checkNames(check, CHECK_NAMES, `limitAll check ${index}`);
    const internals = internalsOf(check.limiter);
    const { identifier, cost = 1 } = check;
    if (typeof identifier !== "string" || identifier.length === 0)
      throw validationError(`limitAll check ${index}: identifier must be a non-empty string`);
    if (!Number.isSafeInteger(cost) || cost < 1)
      throw validationError(`limitAll check ${index}: "cost" must be a positive integer, got ${String(cost)}`);
    // A number per limiter object: two limiters are two limits even with equal settings.
    const limiterId = byLimiter.get(check.limiter) ?? byLimiter.set(check.limiter, byLimiter.size).size - 1;
    const id = `${limiterId}\u0000${identifier}`;
    const seen = distinct.get(id);
    if (seen) {
      // The same limit twice: one check of the summed cost (a transaction cannot touch its item twice).
      seen.cost += cost;
      seen.checks.push(index);
      return;
    }
    const other = names.get(internals.name);
    if (other !== undefined) {
      throw validationError(
        `limitAll checks ${other} and ${index} are two limits named ${shown(internals.name)}: the name is the policy in headers, give each limiter its own`,
      );
    }
    names.set(internals.name, String(index));
    distinct.set(id, { internals, limiter: check.limiter, identifier, cost, checks: [index] });
  });
  const calls = await Promise.all(
    [...distinct.values()].map(
      async ({ internals, identifier, cost, checks }): Promise<Call> => ({
        internals,
        p: await internals.prepare(identifier, cost),
        checks,
      }),
    ),
  );
  // Two limits on one item share its counts, which one transaction cannot update twice: their keys must differ.
  const items = new Map<string, number>();
  for (const call of calls) {
    const id = `${call.internals.tableName}\u0000${JSON.stringify(call.p.key)}`;
    const other = items.get(id);
    if (other !== undefined) {
      throw validationError(
        `limitAll checks ${other} and ${call.checks[0]} count in one item (${shown(JSON.stringify(call.p.key))}): limiters whose "key" options name one item share one count; give each its own key`,
      );
    }
    items.set(id, call.checks[0]!);
  }
  return calls;
}

/**
 * The transactional path. Undefined when the server has no transactions (nothing was changed: the caller
 * falls back), else one answer per call.
 */
async function atomically(client: CounterClient<NumberMode>, calls: Call[]): Promise<RateLimitResult[] | undefined> {
  // A lease request of a concurrent call for one of these identifiers is awaited: it may answer this one locally.
  for (let busy = calls.find((c) => c.p.memory.taking); busy; busy = calls.find((c) => c.p.memory.taking)) await busy.p.memory.taking;
  const now = calls.map((c) => c.internals.now());
  // Blocked locally: denied with no request, nothing taken.
  const blocked = calls.map((c, i) => c.internals.blocked(c.p, now[i]!));
  if (blocked.some((b) => b !== undefined)) return calls.map((c, i) => blocked[i] ?? verdict(c, now[i]!));
  // Units already leased are taken locally, and given back below if the call is denied.
  const local = calls.map((c, i) => (c.p.policy.lease > 1 ? c.internals.fromLease(c.p, now[i]!) : undefined));
  const remote = calls.filter((_, i) => local[i] === undefined);
  let asked: RateLimitResult[] | undefined;
  try {
    if (remote.length === 0) asked = [];
    // One limit left to ask: a plain conditional update (1 WCU, not a transaction's 2), which returns the item.
    else if (remote.length === 1) asked = [await remote[0]!.internals.limit(remote[0]!.p)];
    else {
      asked = await transaction(client, remote);
      if (asked === undefined) NO_TRANSACTIONS.add(client);
    }
  } finally {
    if (asked === undefined || !asked.every((r) => r.success))
      calls.forEach((c, i) => local[i] && c.internals.returnLease(c.p, c.internals.now()));
  }
  if (asked === undefined) return undefined;
  const answers = asked;
  return calls.map((_, i) => local[i] ?? answers.shift()!);
}

/**
 * Rounds of one TransactWriteItems over `calls` (each on its own item). Applied: every call is charged. Cancelled:
 * nothing was; the items of failed conditions (from the cancellation, else read) say whether a limit denies (the
 * answer) or the plan assumed wrong (another round). Undefined when the server has no transactions.
 */
async function transaction(client: CounterClient<NumberMode>, calls: Call[]): Promise<RateLimitResult[] | undefined> {
  let now = calls.map((c) => c.internals.now());
  const want = calls.map((c, i) => c.internals.want(c.p, now[i]!));
  // Concurrent calls of these identifiers wait for this one's leases rather than each take their own.
  const leasing = calls.filter((c) => c.p.policy.lease > 1 && !c.p.memory.taking);
  let done!: () => void;
  const taking = new Promise<void>((resolve) => (done = resolve));
  for (const c of leasing) c.p.memory.taking = taking;
  const call = callId();
  let throttled = 0;
  try {
    // The items the plans assume: the instances' memory at first, then what this call's own requests returned
    // (concurrent calls may leave older items in the memory; planning from them would repeat a failed assumption).
    const seen = calls.map((c) => c.p.memory.seen);
    const learn = (i: number, item: Item | undefined) => {
      seen[i] = item;
      calls[i]!.p.memory.seen = item;
    };
    /** Per limit, when its last failed condition was sent (see Algorithm.take). */
    const lostAt: Array<number | undefined> = calls.map(() => undefined);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      now = calls.map((c) => c.internals.now());
      // State from a clock far ahead (or in another limit's scale) is written back first, as limit() does.
      const fixes = calls.map((c, i) => c.p.policy.algo.normalize(now[i]!, seen[i]));
      const fixing = fixes.findIndex((f) => f !== undefined);
      if (fixing >= 0) {
        const c = calls[fixing]!;
        try {
          learn(fixing, (await c.internals.update(c.p.key, fixes[fixing]!)) ?? seen[fixing]);
        } catch (error) {
          try {
            learn(fixing, await c.internals.failedItem(error, c.p.key));
          } catch (failure) {
            return calls.map((c, i) => c.internals.failure(c.p, failure, now[i]!));
          }
        }
        continue;
      }
      const plans = calls.map((c, i) => {
        const { algo } = c.p.policy;
        return (
          algo.take(now[i]!, want[i]!, seen[i], lostAt[i]) ??
          (want[i]! > c.p.cost ? algo.take(now[i]!, (want[i] = c.p.cost), seen[i], lostAt[i]) : undefined)
        );
      });
      const hopeless = plans.indexOf(undefined);
      if (hopeless >= 0) {
        // The item seen already shows that this limit cannot fit the call: denied without a request.
        const c = calls[hopeless]!;
        learn(hopeless, seen[hopeless]);
        const denied = {
          ...c.internals.denied(c.p, c.p.policy.algo.read(now[hopeless]!, c.p.cost, seen[hopeless] ?? {}), now[hopeless]!),
          reason: "cacheBlock" as const,
        };
        return calls.map((c, i) => (i === hopeless ? denied : verdict(c, now[i]!)));
      }
      const actions: Action[] = calls.map((c, i) => ({ tableName: c.internals.tableName, key: c.p.key, plan: plans[i]! }));
      let outcome: Outcome;
      try {
        outcome = await transact(client, actions, tokenFor(call, round));
      } catch (error) {
        return calls.map((c, i) => c.internals.failure(c.p, error, now[i]!));
      }
      if (outcome.kind === "unsupported") return undefined;
      if (outcome.kind === "applied") {
        // A transaction returns no attributes: the items are as the plans leave the items last seen (approximate
        // when others wrote meanwhile; the next request's condition checks whatever it assumes).
        return calls.map((c, i) => c.internals.taken(c.p, now[i]!, want[i]!, c.p.policy.algo.assume(now[i]!, want[i]!, seen[i])));
      }
      const { reasons } = outcome;
      const failed = reasons.flatMap((r, i) => (r.code === "ConditionalCheckFailed" ? [i] : []));
      if (failed.length === 0) {
        // Cancelled by others (a conflicting transaction or write) or by throttling, not by a condition: again,
        // after a short random pause; throttling that persists follows the limiters' failureMode.
        if (reasons.some((r) => /Throttl|ProvisionedThroughput|RequestLimit/.test(r.code)) && ++throttled >= THROTTLED_ROUNDS) {
          const error = new CounterError(
            "Throttled",
            `DynamoDB cancelled the transaction for capacity (${reasons.map((r) => r.code).join(", ")}); it was not applied`,
            { retryable: true },
          );
          return calls.map((c, i) => c.internals.failure(c.p, error, now[i]!));
        }
        await sleep(Math.random() * 10 * 2 ** Math.min(round, 4));
        continue;
      }
      let items: Item[];
      try {
        const unknown = failed.filter((i) => reasons[i]!.item === undefined);
        const read =
          unknown.length > 0
            ? await readItems(
                client,
                unknown.map((i) => actions[i]!),
              )
            : [];
        items = failed.map((i) => reasons[i]!.item ?? read[unknown.indexOf(i)]!);
      } catch (error) {
        return calls.map((c, i) => c.internals.failure(c.p, error, now[i]!));
      }
      const denials = new Map<number, RateLimitResult>();
      failed.forEach((i, k) => {
        const c = calls[i]!;
        const item = items[k]!;
        learn(i, item);
        const { algo } = c.p.policy;
        if (algo.normalize(now[i]!, item)) return;
        const reading = algo.read(now[i]!, c.p.cost, item);
        if (reading.available < c.p.cost) {
          const at = c.internals.now();
          denials.set(i, c.internals.denied(c.p, announced(algo, reading, c.p.cost, item, at), at));
        }
        // It fits: the condition failed on an assumption. Ask again, for no more than is there.
        else {
          want[i] = Math.max(c.p.cost, Math.min(want[i]!, reading.available));
          lostAt[i] = now[i];
        }
      });
      // The other limits answer as they stand now (the transaction's round trip, or its timeout, has passed).
      if (denials.size > 0) return calls.map((c, i) => denials.get(i) ?? verdict(c, c.internals.now()));
    }
    // Contention is not an outage: admitting would admit a call nobody counted.
    return calls.map((c, i) => c.internals.busy(c.p, now[i]!));
  } finally {
    for (const c of leasing) if (c.p.memory.taking === taking) c.p.memory.taking = undefined;
    done();
  }
}

/**
 * The fallback: each limit in order, as `limit()` takes it. On a denial, what the earlier limits took is given
 * back, each into the window of its take (a window that has passed gets nothing, so nothing is ever admitted
 * over a limit); a give-back that fails leaves its units taken (fewer admitted, never more), and so does a take
 * that failed ambiguously (answered by failureMode "open"), whose answer keeps its error.
 */
async function inOrder(calls: Call[]): Promise<RateLimitResult[]> {
  const now = calls.map((c) => c.internals.now());
  const blocked = calls.map((c, i) => c.internals.blocked(c.p, now[i]!));
  if (blocked.some((b) => b !== undefined)) return calls.map((c, i) => blocked[i] ?? verdict(c, now[i]!));
  const answers: RateLimitResult[] = [];
  for (const call of calls) {
    const answer = await call.internals.limit(call.p);
    answers.push(answer);
    if (!answer.success) {
      // A failed take (failOpen) is not given back: if its failure was ambiguous it may have counted, but giving
      // back units it may not have taken would credit other calls' units. Its answer stands, error included, so
      // the caller can tell that this limit may have been charged; a clean verdict would say it was not.
      const given = await Promise.all(
        answers.slice(0, -1).map((taken, i) =>
          taken.reason === "failOpen"
            ? false
            : calls[i]!.internals.giveBack(calls[i]!.p, taken).then(
                () => true,
                () => false,
              ),
        ),
      );
      // Limits given back answer as they now are (they had room, and hold nothing of this call). The denial was
      // reckoned before the give-backs' round trips: a reset that has passed meanwhile is now (never in the past).
      return calls.map((c, i) =>
        i === answers.length - 1
          ? { ...answer, reset: Math.max(answer.reset, c.internals.now()) }
          : i < answers.length - 1 && !given[i]
            ? answers[i]!
            : verdict(c, c.internals.now()),
      );
    }
  }
  return answers;
}

/** What a limit that was not asked would answer, from what this instance last saw: whether it has room. */
function verdict({ p }: Call, now: number): RateLimitResult {
  const reading = p.policy.algo.read(now, p.cost, p.memory.seen ?? {});
  const fits = reading.available >= p.cost || p.memory.leased >= p.cost;
  return {
    success: fits,
    limit: p.policy.limit,
    remaining: reading.available + p.memory.leased,
    reset: fits ? reading.reset : reading.freeAt,
    pending: DONE,
  };
}

/** The call's answer: allowed when every limit allowed, the top-level fields those of the most restrictive. */
function combine(results: LimitCheckResult[]): MultiRateLimitResult {
  const success = results.every((r) => r.success);
  const candidates = success ? results : results.filter((r) => !r.success);
  const decider = candidates.reduce((a, b) =>
    success ? (b.remaining < a.remaining || (b.remaining === a.remaining && b.reset > a.reset) ? b : a) : b.reset > a.reset ? b : a,
  );
  const multi: MultiRateLimitResult = {
    success,
    results,
    limit: decider.limit,
    remaining: decider.remaining,
    reset: decider.reset,
    pending: Promise.all(results.map((r) => r.pending)),
  };
  if (decider.reason) multi.reason = decider.reason;
  const error = decider.error ?? results.find((r) => r.error)?.error;
  if (error) multi.error = error;
  return multi;
}
