// rateLimitHeaders: a limiter's answer as the IETF RateLimit header fields, plus Retry-After when denied.
import { validationError } from "../../core/errors.js";
import { checkNames } from "../../core/options.js";

/** Options of {@link rateLimitHeaders}.
 *
 * @example
 * ```ts
 * rateLimitHeaders(result, { windowMs: 60_000, format: "draft-6" });
 * ```
 */
export interface RateLimitHeadersOptions {
  /**
   * Which draft of draft-ietf-httpapi-ratelimit-headers to follow: `"latest"` (draft 8 onwards:
   * `RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=42;t=30`), `"draft-7"`
   * (`RateLimit: limit=100, remaining=42, reset=30`) or `"draft-6"` (`RateLimit-Limit`, `RateLimit-Remaining`,
   * `RateLimit-Reset`). @default "latest"
   */
  format?: "latest" | "draft-7" | "draft-6";
  /** The policy's window, for the `w` parameter (omitted when unknown). Pass `limiter.windowMs`. */
  windowMs?: number;
  /** The policy's name in the latest draft's fields. @default "default" */
  policy?: string;
  /** The clock, in epoch milliseconds, to turn `reset` into seconds. @default Date.now() */
  now?: number;
}

const NAMES = /* @__PURE__ */ new Set(["format", "windowMs", "policy", "now"]);

/**
 * The header fields for a rate limit answer: the IETF RateLimit fields and, when denied, `Retry-After` in
 * whole seconds (at least 1). Seconds are rounded up, so a client that waits them is not denied again for time.
 *
 * @example
 * ```ts
 * const result = await limiter.limit(ip);
 * const headers = rateLimitHeaders(result, { windowMs: limiter.windowMs });
 * if (!result.success) return new Response("Too many requests", { status: 429, headers });
 * ```
 */
export function rateLimitHeaders(
  result: { success: boolean; limit: number; remaining: number; reset: number },
  options: RateLimitHeadersOptions = {},
): Record<string, string> {
  checkNames(options, NAMES, "rateLimitHeaders");
  const { format = "latest", windowMs, policy = "default", now = Date.now() } = options;
  if (!/^[!#-[\]-~ ]*$/.test(policy)) throw validationError(`"policy" must be printable ASCII without quotes or backslashes`);
  const seconds = Math.max(0, Math.ceil((result.reset - now) / 1000));
  const w = windowMs === undefined ? "" : `;w=${Math.max(1, Math.ceil(windowMs / 1000))}`;
  const headers: Record<string, string> = {};
  if (format === "latest") {
    headers["RateLimit-Policy"] = `"${policy}";q=${result.limit}${w}`;
    headers["RateLimit"] = `"${policy}";r=${result.remaining};t=${seconds}`;
  } else if (format === "draft-7") {
    headers["RateLimit-Policy"] = `${result.limit}${w}`;
    headers["RateLimit"] = `limit=${result.limit}, remaining=${result.remaining}, reset=${seconds}`;
  } else if (format === "draft-6") {
    headers["RateLimit-Policy"] = `${result.limit}${w}`;
    headers["RateLimit-Limit"] = String(result.limit);
    headers["RateLimit-Remaining"] = String(result.remaining);
    headers["RateLimit-Reset"] = String(seconds);
  } else {
    throw validationError(`"format" must be "latest", "draft-7" or "draft-6", got ${JSON.stringify(format)}`);
  }
  if (!result.success) headers["Retry-After"] = String(Math.max(1, seconds));
  return headers;
}
