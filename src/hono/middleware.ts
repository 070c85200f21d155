// The rate-limit middleware for Hono: limits a route, answers 429 when denied, adds the RateLimit header fields.
import type { Context, Env, MiddlewareHandler } from "hono";
import { isCounterError, validationError, type CounterError } from "../core/errors.js";
import { checkNames } from "../core/options.js";
import { limitAll, type LimitCheckResult, type MultiRateLimitResult } from "../usecases/ratelimit/all.js";
import { rateLimitHeaders, type RateLimitHeadersOptions } from "../usecases/ratelimit/headers.js";
import {
  internalsOf,
  type LimiterInternals,
  type Prepared,
  type RateLimiter,
  type RateLimitResult,
} from "../usecases/ratelimit/limiter.js";
import { ADDRESS_OPTION_NAMES, checkAddressOptions, locateClient, type ClientAddressOptions } from "./address.js";
import { holdSlot, slotOption, type ConcurrencyOption } from "./concurrency.js";
import { withFields, retryAfter } from "./fields.js";
import { hashed, isHashed, usable } from "./identifier.js";
import { waitUntil } from "./wait-until.js";

/** Options of {@link rateLimit}.
 *
 * @example
 * ```ts
 * rateLimit(limiter, { trustProxies: 1 }); // behind one load balancer that appends to X-Forwarded-For
 * rateLimit(limiter, { identifier: (c) => c.req.header("x-api-key") ?? "anonymous", cost: 1 });
 * ```
 */
export interface RateLimitMiddlewareOptions extends ClientAddressOptions {
  /**
   * Who is limited. Whatever it returns is made safe to use rather than answered with a 500 (the headers it
   * reads are the client's to choose): an empty string (or `undefined`/`null` from untyped code) counts as
   * `"unknown"`, one shared budget; a value over 256 characters, or one DynamoDB cannot store (a lone UTF-16
   * surrogate), counts as its SHA-256 (`"sha256:<hex>"`), so long values still get a budget each; and should the
   * limiter still reject it as invalid (a `key` option that makes it too long), its SHA-256 is tried before the
   * error is thrown.
   * @default the client's address as {@link clientAddress} finds it with `trustProxies`, `connInfo` and
   * `ipv6Subnet` (those three options are used by this default only); when there is none, `"unknown"` (one budget
   * shared by every such request), and a one-time `console.warn` per limiter that names the options to set.
   */
  identifier?: (c: Context) => string | Promise<string>;
  /** Units a request takes. @default 1 */
  cost?: number | ((c: Context) => number | Promise<number>);
  /** Header fields to send (see {@link rateLimitHeaders}), or `false` for none. @default "latest" */
  headers?: RateLimitHeadersOptions["format"] | false;
  /** The policy's name in the latest draft's fields. @default "default" */
  policy?: string;
  /** The answer when denied (the headers are added to it). @default a 429 "Too Many Requests" text answer */
  onDenied?: (c: Context, result: RateLimitResult) => Response | Promise<Response>;
  /** A concurrency limit held while the handler runs (see {@link ConcurrencyOption}); its identifier defaults to this one's. */
  concurrency?: ConcurrencyOption;
}

/** One limit of the several-limits form of {@link rateLimit}: a limiter and who it limits, per request.
 *
 * @example
 * ```ts
 * const check: RateLimitCheck = { limiter: perUser, identifier: (c) => c.req.header("x-api-key") ?? "anonymous" };
 * ```
 */
export interface RateLimitCheck {
  limiter: RateLimiter;
  /**
   * Who this limit limits, made safe like {@link RateLimitMiddlewareOptions.identifier}.
   * @default the client's address (see {@link clientAddress} and the middleware's address options)
   */
  identifier?: (c: Context) => string | Promise<string>;
  /** Units a request takes from this limit. @default 1 */
  cost?: number | ((c: Context) => number | Promise<number>);
}

/** Options of the several-limits form of {@link rateLimit}: each limit's identifier and cost are in its check.
 *
 * @example
 * ```ts
 * rateLimit([{ limiter: perIp }, { limiter: global, identifier: () => "all" }], { trustProxies: 1 });
 * ```
 */
export interface MultiRateLimitMiddlewareOptions extends ClientAddressOptions {
  /** Header fields to send (one policy per limit, named by each limiter's `name`), or `false`. @default "latest" */
  headers?: RateLimitHeadersOptions["format"] | false;
  /** The answer when denied (the headers are added to it). @default a 429 "Too Many Requests" text answer */
  onDenied?: (c: Context, result: MultiRateLimitResult) => Response | Promise<Response>;
  /** A concurrency limit held while the handler runs; its identifier defaults to the first check's. */
  concurrency?: ConcurrencyOption;
}

/**
 * The context variable holding the result. Declare it in the app's type to read it typed.
 *
 * @example
 * ```ts
 * const app = new Hono<{ Variables: RateLimitVariables }>();
 * app.get("/api/orders", (c) => c.json({ remaining: c.get("rateLimit").remaining }));
 * ```
 */
export type RateLimitVariables = { rateLimit: RateLimitResult };

/**
 * The context variable of the several-limits form: a {@link MultiRateLimitResult}, one result per limit.
 *
 * @example
 * ```ts
 * const app = new Hono<{ Variables: MultiRateLimitVariables }>();
 * app.get("/api", (c) => c.json(c.get("rateLimit").results.map((r) => [r.name, r.remaining])));
 * ```
 */
export type MultiRateLimitVariables = { rateLimit: MultiRateLimitResult };

const NAMES = /* @__PURE__ */ new Set<string>([
  "identifier",
  "cost",
  "headers",
  "policy",
  "onDenied",
  "concurrency",
  ...ADDRESS_OPTION_NAMES,
]);
const MULTI_NAMES = /* @__PURE__ */ new Set<string>(["headers", "onDenied", "concurrency", ...ADDRESS_OPTION_NAMES]);
const CHECK_NAMES = /* @__PURE__ */ new Set<string>(["limiter", "identifier", "cost"]);

/** Warnings already given, per limiter: the README's pattern builds the middleware per request, the limiter once. */
const warned = /* @__PURE__ */ new WeakMap<object, Set<string>>();

function warnOnce(limiter: RateLimiter, kind: string, message: string): void {
  const given = warned.get(limiter) ?? new Set<string>();
  if (given.has(kind)) return;
  warned.set(limiter, given.add(kind));
  console.warn(`dynacount/hono (limiter "${limiter.name}"): ${message}.`);
}

/** The default identifier: the client's address, and a warning when it is missing or probably a proxy's. */
function addressIdentifier(limiter: RateLimiter, options: ClientAddressOptions): (c: Context) => string {
  return (c) => {
    const { address, proxyHint } = locateClient(c, options);
    if (address === undefined) {
      warnOnce(
        limiter,
        "unknown",
        `no client address: one "unknown" budget shared by such requests; set "trustProxies", "connInfo" or "identifier"`,
      );
    } else if (typeof DYNACOUNT_WEB_BUILD === "undefined" && proxyHint) {
      warnOnce(
        limiter,
        "proxy",
        `requests from a private address carry X-Forwarded-For: if a proxy of yours is in front, set "trustProxies", or every client shares its budget`,
      );
    }
    return address ?? "unknown";
  };
}

/**
 * Rate limits the routes it is mounted on: a denied request gets 429 with the RateLimit header fields and
 * `Retry-After`, and the handler does not run; an allowed one runs and its answer carries the header fields.
 * The result is left on the context (`c.get("rateLimit")`); background work goes to `executionCtx.waitUntil`.
 * Who is limited: see {@link RateLimitMiddlewareOptions.identifier} and {@link clientAddress}.
 *
 * Several limits: pass an array of checks `{ limiter, identifier?, cost? }`, checked together by `limitAll` (a
 * request one limit denies takes nothing from the others), with one policy per limit in the headers and a
 * {@link MultiRateLimitResult} on the context. With `concurrency`, the request also holds a slot of a
 * {@link ConcurrencyLimiter} while the handler runs (taken before the rate limits, so a request it turns away
 * spends no quota).
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { rateLimit } from "dynacount/hono";
 *
 * const app = new Hono();
 * app.use("/api/*", rateLimit(new RateLimiter(client, { limit: 100, windowMs: 60_000 }), { trustProxies: 1 }));
 * app.use("/export/*", rateLimit([
 *   { limiter: perUser, identifier: (c) => c.req.header("x-user") ?? "anonymous" },
 *   { limiter: global, identifier: () => "all" },
 * ], { concurrency: exportSlots }));
 * ```
 */
// E is the app's environment, so the middleware fits any app (its Bindings included).
export function rateLimit<E extends Env = any>(limiter: RateLimiter, options?: RateLimitMiddlewareOptions): MiddlewareHandler<E>;
export function rateLimit<E extends Env = any>(
  checks: readonly RateLimitCheck[],
  options?: MultiRateLimitMiddlewareOptions,
): MiddlewareHandler<E>;
export function rateLimit<E extends Env = any>(
  limits: RateLimiter | readonly RateLimitCheck[],
  options: RateLimitMiddlewareOptions | MultiRateLimitMiddlewareOptions = {},
): MiddlewareHandler<E> {
  const multi = Array.isArray(limits);
  checkNames(options, multi ? MULTI_NAMES : NAMES, "rateLimit");
  checkAddressOptions(options, "rateLimit");
  const checks: readonly RateLimitCheck[] = multi
    ? limits
    : [{ limiter: limits as RateLimiter, ...pick(options as RateLimitMiddlewareOptions) }];
  if (checks.length === 0) throw validationError("rateLimit([...]): give at least one { limiter, identifier?, cost? }");
  const resolved = checks.map((check, i) => {
    if (multi) checkNames(check, CHECK_NAMES, `rateLimit check ${i}`);
    if (typeof check?.limiter?.limit !== "function") {
      throw validationError(
        multi ? `rateLimit check ${i}: "limiter" must be a RateLimiter` : "rateLimit(limiter): the first argument must be a RateLimiter",
      );
    }
    const { cost = 1 } = check;
    const identifier = check.identifier ?? addressIdentifier(check.limiter, options);
    return { limiter: check.limiter, identifier, cost };
  });
  // Two limiters of one name would be one policy in the headers (limitAll refuses them): say so now, not per request.
  resolved.forEach((r, i) => {
    const other = resolved.findIndex((o) => o.limiter !== r.limiter && o.limiter.name === r.limiter.name);
    if (other >= 0 && other < i)
      throw validationError(`rateLimit checks ${other} and ${i} are two limiters named "${r.limiter.name}": give each its own name`);
  });
  const { headers: format = "latest", onDenied } = options;
  const policy = multi ? undefined : (options as RateLimitMiddlewareOptions).policy;
  const concurrency = slotOption(options.concurrency);
  // Seconds in the headers are reckoned on the limiters' clock (their `now` option), as their resets are.
  const headersOf = (result: RateLimitResult | MultiRateLimitResult, now: number) =>
    format === false
      ? {}
      : multi
        ? rateLimitHeaders(result, { format, now })
        : rateLimitHeaders(result, { format, now, windowMs: resolved[0]!.limiter.windowMs, ...(policy ? { policy } : {}) });
  return async (c, next) => {
    const costs = await Promise.all(resolved.map((r) => (typeof r.cost === "function" ? r.cost(c) : r.cost)));
    const calls = await Promise.all(resolved.map(async (r, i) => storable(r.limiter, await usable(await r.identifier(c)), costs[i]!)));
    const now = () => calls[0]!.internals.now();
    /** The denial: `onDenied`'s answer (else 429) with the headers. */
    const deny = async (result: RateLimitResult | MultiRateLimitResult) => {
      const at = now();
      const res = onDenied
        ? await (onDenied as (c: Context, r: RateLimitResult | MultiRateLimitResult) => Response | Promise<Response>)(c, result)
        : c.text("Too Many Requests", 429);
      return withFields(res, { ...headersOf(result, at), ...retryAfter(res, result.reset, at) });
    };
    const set = (result: RateLimitResult | MultiRateLimitResult) =>
      (c as unknown as Context<{ Variables: { rateLimit: RateLimitResult | MultiRateLimitResult } }>).set("rateLimit", result);
    const refused = refusedCosts(calls, multi, now());
    if (refused) {
      set(refused);
      return deny(refused);
    }
    const ready = calls as Array<Storable & { p: Prepared }>;
    // A caller this instance already knows to be over a limit is answered from memory, without taking a slot
    // it would hold only to be denied (which, with a shared concurrency identifier, would turn others away).
    const blocked = ready.some(({ internals, p }) => internals.blocked(p, internals.now()) !== undefined);
    let held = concurrency && !blocked ? await holdSlot(c, concurrency, ready[0]!.p.identifier) : undefined;
    if (held && !held.success) return held.denied;
    try {
      const result = multi
        ? await limitAll(ready.map(({ p }) => ({ limiter: p.limiter, identifier: p.identifier, cost: p.cost }))).catch((error: unknown) => {
            // Checks of one limiter and identifier are one call with their costs summed (identifiers and costs
            // may come from the request): a sum the limit cannot take is a denial like any other such cost.
            if (!isCounterError(error, "Validation")) throw error;
            return refusedCosts(
              calls.map((call) => ({ ...call, refused: error })),
              true,
              now(),
            )!;
          })
        : await ready[0]!.internals.limit(ready[0]!.p);
      set(result);
      waitUntil(c, result.pending);
      if (!result.success) return await deny(result);
      const fields = headersOf(result, now());
      // A block that ran out between the check above and the call: the slot is taken now (rare; then a request
      // the concurrency limit turns away has spent its rate units).
      if (concurrency && !held) {
        held = await holdSlot(c, concurrency, ready[0]!.p.identifier);
        if (!held.success) return held.denied;
      }
      await next();
      c.res = withFields(c.res, fields);
    } finally {
      if (held?.success) held.release();
    }
  };
}

/** The single form's identifier and cost as a check's. */
function pick(options: RateLimitMiddlewareOptions): Omit<RateLimitCheck, "limiter"> {
  const out: Omit<RateLimitCheck, "limiter"> = {};
  if (options.identifier) out.identifier = options.identifier;
  if (options.cost !== undefined) out.cost = options.cost;
  return out;
}

/** A check ready to be asked (`p`), or one whose cost this call cannot take (`refused`, with the limit it met). */
interface Storable {
  internals: LimiterInternals;
  limiter: RateLimiter;
  identifier: string;
  p?: Prepared;
  refused?: CounterError;
  limit?: number;
}

/**
 * A call of `limiter` for `id`, validated before any request. An identifier whose item key this limiter rejects
 * (a `key` option may lengthen it) is used as its hash, this limiter's only. A cost the call cannot take (not a
 * whole number of units, or more than the identifier's limit: a request may set it) is `refused`, never retried
 * under the hash, whose budget it would then spend (a plan's limit found for the hash is another identifier's).
 */
async function storable(limiter: RateLimiter, id: string, cost: number): Promise<Storable> {
  const internals = internalsOf(limiter);
  const validation = (error: unknown): CounterError => {
    if (isCounterError(error, "Validation")) return error;
    throw error;
  };
  try {
    return { internals, limiter, identifier: id, p: await internals.prepare(id, cost) };
  } catch (error) {
    validation(error);
  }
  // Refused: the identifier or the cost? One unit tells (it fits every limit); an identifier refused is hashed.
  let identifier = id;
  let limit: number;
  try {
    limit = (await internals.prepare(id, 1)).policy.limit;
  } catch (error) {
    if (isHashed(id)) throw validation(error);
    validation(error);
    identifier = await hashed(id);
    limit = (await internals.prepare(identifier, 1)).policy.limit;
  }
  try {
    return { internals, limiter, identifier, p: await internals.prepare(identifier, cost) };
  } catch (error) {
    return { internals, limiter, identifier, refused: validation(error), limit };
  }
}

/**
 * The denial of a call with a cost some check cannot take: no request, nothing taken anywhere (`failClosed`, with
 * the Validation error), the caller told to come back after the window (the same cost will not fit sooner).
 * Checks not asked are reported with room, as a denied limitAll reports limits that were not charged.
 */
function refusedCosts(calls: Storable[], multi: boolean, now: number): RateLimitResult | MultiRateLimitResult | undefined {
  const first = calls.find((call) => call.refused);
  if (first === undefined) return undefined;
  const results: LimitCheckResult[] = calls.map((call) => {
    const limit = call.p?.policy.limit ?? call.limit ?? 0;
    const common = {
      limit,
      pending: Promise.resolve(),
      name: call.limiter.name,
      identifier: call.identifier,
      windowMs: call.limiter.windowMs,
    };
    return call.refused
      ? { ...common, success: false, remaining: 0, reset: now + call.limiter.windowMs, reason: "failClosed", error: call.refused }
      : { ...common, success: true, remaining: limit, reset: now };
  });
  const denied = results[calls.indexOf(first)]!;
  if (!multi) {
    const { name, identifier, windowMs, ...result } = denied;
    return result;
  }
  return { ...denied, success: false, results };
}

declare const DYNACOUNT_WEB_BUILD: true | undefined;
