// Entry point `dynacount/hono`: the rate-limit middleware for Hono (imports only Hono's types).
import type { Context, Env, MiddlewareHandler } from "hono";
import { validationError } from "./core/errors.js";
import { checkNames } from "./core/options.js";
import { rateLimitHeaders, type RateLimitHeadersOptions } from "./usecases/ratelimit/headers.js";
import type { RateLimiter, RateLimitResult } from "./usecases/ratelimit/limiter.js";

export type { RateLimitResult } from "./usecases/ratelimit/limiter.js";

/** Options of {@link rateLimit}.
 *
 * @example
 * ```ts
 * rateLimit(limiter, { identifier: (c) => c.req.header("x-api-key") ?? "anonymous", cost: 1 });
 * ```
 */
export interface RateLimitMiddlewareOptions {
  /**
   * Who is limited. @default the client's IP: `cf-connecting-ip` (set by Cloudflare), else the first address of
   * `x-forwarded-for` (trust it only behind a proxy that sets it), else `"unknown"` (one shared budget).
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
 * The context variable holding the result. Declare it in the app's type to read it typed:
 * `new Hono<{ Variables: RateLimitVariables }>()`, then `c.get("rateLimit")`.
 */
export type RateLimitVariables = { rateLimit: RateLimitResult };


const NAMES = /* @__PURE__ */ new Set(["identifier", "cost", "headers", "policy", "onDenied"]);

/** The client's address as Workers and most proxies pass it. */
const clientAddress = (c: Context): string =>
  c.req.header("cf-connecting-ip") ?? c.req.header("x-forwarded-for")?.split(",")[0]?.trim() ?? "unknown";

/**
 * Rate limits the routes it is mounted on: a denied request gets 429 with the RateLimit header fields and
 * `Retry-After`, and the handler does not run; an allowed one runs and its answer carries the header fields.
 * The result is left on the context (`c.get("rateLimit")`); background work goes to `executionCtx.waitUntil`.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { rateLimit } from "dynacount/hono";
 *
 * const app = new Hono();
 * app.use("/api/*", rateLimit(new RateLimiter(client, { limit: 100, windowMs: 60_000 })));
 * ```
 */
// E is the app's environment, so the middleware fits any app (its Bindings included).
export function rateLimit<E extends Env = any>(limiter: RateLimiter, options: RateLimitMiddlewareOptions = {}): MiddlewareHandler<E> {
  checkNames(options, NAMES, "rateLimit");
  const { identifier = clientAddress, cost = 1, headers: format = "latest", policy, onDenied } = options;
  if (typeof limiter?.limit !== "function") throw validationError("rateLimit(limiter): the first argument must be a RateLimiter");
  return async (c, next) => {
    const id = await identifier(c);
    const result = await limiter.limit(id, { cost: typeof cost === "function" ? await cost(c) : cost });
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
      if (!res.headers.has("Retry-After")) res.headers.set("Retry-After", String(Math.max(1, Math.ceil((result.reset - Date.now()) / 1000))));
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
