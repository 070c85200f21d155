// The rate-limit middleware for Hono: limits a route, answers 429 when denied, adds the RateLimit header fields.
import type { Context, Env, MiddlewareHandler } from "hono";
import { isCounterError, validationError } from "../core/errors.js";
import { checkNames } from "../core/options.js";
import { rateLimitHeaders, type RateLimitHeadersOptions } from "../usecases/ratelimit/headers.js";
import type { RateLimiter, RateLimitResult } from "../usecases/ratelimit/limiter.js";
import { ADDRESS_OPTION_NAMES, checkAddressOptions, locateClient, type ClientAddressOptions } from "./address.js";
import { hashed, usable } from "./identifier.js";

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

const NAMES = /* @__PURE__ */ new Set<string>(["identifier", "cost", "headers", "policy", "onDenied", ...ADDRESS_OPTION_NAMES]);

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
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { rateLimit } from "dynacount/hono";
 *
 * const app = new Hono();
 * app.use("/api/*", rateLimit(new RateLimiter(client, { limit: 100, windowMs: 60_000 }), { trustProxies: 1 }));
 * ```
 */
// E is the app's environment, so the middleware fits any app (its Bindings included).
export function rateLimit<E extends Env = any>(limiter: RateLimiter, options: RateLimitMiddlewareOptions = {}): MiddlewareHandler<E> {
  checkNames(options, NAMES, "rateLimit");
  checkAddressOptions(options, "rateLimit");
  if (typeof limiter?.limit !== "function") throw validationError("rateLimit(limiter): the first argument must be a RateLimiter");
  const { cost = 1, headers: format = "latest", policy, onDenied } = options;
  const identifier = options.identifier ?? addressIdentifier(limiter, options);
  return async (c, next) => {
    const id = await usable(await identifier(c));
    const call = { cost: typeof cost === "function" ? await cost(c) : cost };
    let result: RateLimitResult;
    try {
      result = await limiter.limit(id, call);
    } catch (error) {
      // Invalid as an item key (a `key` option may lengthen it): its hash fits. Any other error, or a Validation
      // error that is not the identifier's (a bad cost), is thrown by the retry as it was.
      if (!isCounterError(error, "Validation") || id.startsWith("sha256:")) throw error;
      result = await limiter.limit(await hashed(id), call);
    }
    (c as unknown as Context<{ Variables: RateLimitVariables }>).set("rateLimit", result);
    try {
      c.executionCtx.waitUntil(result.pending);
    } catch {
      // No execution context (Node, Bun, tests): nothing is deferred, so nothing to wait for.
    }
    const fields = format === false ? {} : rateLimitHeaders(result, { format, windowMs: limiter.windowMs, ...(policy ? { policy } : {}) });
    if (!result.success) {
      const res = onDenied ? await onDenied(c, result) : c.text("Too Many Requests", 429);
      for (const [name, value] of Object.entries(fields)) res.headers.set(name, value);
      if (!res.headers.has("Retry-After"))
        res.headers.set("Retry-After", String(Math.max(1, Math.ceil((result.reset - Date.now()) / 1000))));
      return res;
    }
    await next();
    setHeaders(c, fields);
  };
}

/** Adds header fields to the handler's answer; one with immutable headers (e.g. straight from `fetch`) is copied first. */
function setHeaders(c: Context, fields: Record<string, string>): void {
  try {
    for (const [name, value] of Object.entries(fields)) c.res.headers.set(name, value);
  } catch {
    c.res = new Response(c.res.body, c.res);
    for (const [name, value] of Object.entries(fields)) c.res.headers.set(name, value);
  }
}

declare const DYNACOUNT_WEB_BUILD: true | undefined;
