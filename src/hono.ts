// Entry point `dynacount/hono`: the rate-limit middleware for Hono (imports only Hono's types).
import type { Context, Env, MiddlewareHandler } from "hono";
import { isCounterError, validationError } from "./core/errors.js";
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
   * Who is limited. Whatever it returns is made safe to use rather than answered with a 500 (the headers it
   * reads are the client's to choose): an empty string (or `undefined`/`null` from untyped code) counts as
   * `"unknown"`, one shared budget; a value over 256 characters, or one DynamoDB cannot store (a lone UTF-16
   * surrogate), counts as its SHA-256 (`"sha256:<hex>"`), so long values still get a budget each; and should the
   * limiter still reject it as invalid (a `key` option that makes it too long), its SHA-256 is tried before the
   * error is thrown.
   * @default the client's IP: `cf-connecting-ip` (set by Cloudflare), else the first non-empty entry of
   * `x-forwarded-for` (trust it only behind a proxy that sets it), else `"unknown"` (one shared budget); an empty
   * header counts as absent.
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

/** The client's address as Workers and most proxies pass it: the first non-empty of these sources. */
function clientAddress(c: Context): string {
  for (const entry of [c.req.header("cf-connecting-ip"), ...(c.req.header("x-forwarded-for")?.split(",") ?? [])]) {
    const address = entry?.trim();
    if (address) return address;
  }
  return "unknown";
}

/** Longest identifier used as it is; a longer one is hashed (DynamoDB keys have a size limit). */
const MAX_IDENTIFIER = 256;

/**
 * An identifier the limiter accepts, whatever `id` is: empty counts as "unknown"; a long one, or one with a lone
 * surrogate (not UTF-8), as its SHA-256.
 */
function usable(id: unknown): string | Promise<string> {
  const text = typeof id === "string" ? id : id == null ? "" : String(id);
  return !text ? "unknown" : text.length > MAX_IDENTIFIER || /\p{Cs}/u.test(text) ? hashed(text) : text;
}

/** `"sha256:"` and the hex SHA-256 of `text` (a lone surrogate encodes as U+FFFD). */
async function hashed(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return `sha256:${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

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
