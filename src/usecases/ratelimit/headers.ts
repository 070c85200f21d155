// rateLimitHeaders: a limiter's answer as the IETF RateLimit header fields, plus Retry-After when denied.
import { shown, validationError } from "../../core/errors.js";
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

/** One limit's answer, as the header fields need it. */
interface Answer {
  success: boolean;
  limit: number;
  remaining: number;
  reset: number;
}

/** A {@link limitAll} answer, as the header fields need it: one policy per result, named by its limiter. */
interface MultiAnswer extends Answer {
  results: ReadonlyArray<Answer & { name: string; windowMs: number; identifier?: string }>;
}

/**
 * The header fields for a rate limit answer: the IETF RateLimit fields and, when denied, `Retry-After` in
 * whole seconds (at least 1). Seconds are rounded up, so a client that waits them is not denied again for time.
 *
 * Given a {@link limitAll} answer, every limit is a policy of its own, named by its limiter's `name` (two
 * different limits with one name are a Validation error; `policy` and `windowMs` come from the limiters, so
 * passing them is one too). The latest draft lists each policy in both fields; the older drafts list each in
 * `RateLimit-Policy` and give the most restrictive one's numbers in the others. `Retry-After` is the call's:
 * when every limit that denied has room again.
 *
 * @example
 * ```ts
 * const result = await limiter.limit(ip);
 * const headers = rateLimitHeaders(result, { windowMs: limiter.windowMs });
 * if (!result.success) return new Response("Too many requests", { status: 429, headers });
 * // Several limits: RateLimit-Policy: "second";q=10;w=1, "day";q=5000;w=86400
 * const all = await limitAll([{ limiter: perSecond, identifier: ip }, { limiter: perDay, identifier: ip }]);
 * const fields = rateLimitHeaders(all);
 * ```
 */
export function rateLimitHeaders(result: Answer | MultiAnswer, options: RateLimitHeadersOptions = {}): Record<string, string> {
  checkNames(options, NAMES, "rateLimitHeaders");
  const { format = "latest", windowMs, policy = "default", now = Date.now() } = options;
  const seconds = (reset: number) => Math.max(0, Math.ceil((reset - now) / 1000));
  const w = (ms: number | undefined) => (ms === undefined ? "" : `;w=${Math.max(1, Math.ceil(ms / 1000))}`);
  const policies =
    "results" in result && Array.isArray(result.results) ? policiesOf(result.results, options) : [{ ...result, name: policy, windowMs }];
  for (const p of policies) {
    if (!/^[!#-[\]-~ ]*$/.test(p.name)) throw validationError(`"policy" must be printable ASCII without quotes or backslashes`);
  }
  const headers: Record<string, string> = {};
  if (format === "latest") {
    headers["RateLimit-Policy"] = policies.map((p) => `"${p.name}";q=${p.limit}${w(p.windowMs)}`).join(", ");
    headers.RateLimit = policies.map((p) => `"${p.name}";r=${p.remaining};t=${seconds(p.reset)}`).join(", ");
  } else if (format === "draft-7") {
    headers["RateLimit-Policy"] = policies.map((p) => `${p.limit}${w(p.windowMs)}`).join(", ");
    headers.RateLimit = `limit=${result.limit}, remaining=${result.remaining}, reset=${seconds(result.reset)}`;
  } else if (format === "draft-6") {
    headers["RateLimit-Policy"] = policies.map((p) => `${p.limit}${w(p.windowMs)}`).join(", ");
    headers["RateLimit-Limit"] = String(result.limit);
    headers["RateLimit-Remaining"] = String(result.remaining);
    headers["RateLimit-Reset"] = String(seconds(result.reset));
  } else {
    throw validationError(`"format" must be "latest", "draft-7" or "draft-6", got ${JSON.stringify(format)}`);
  }
  if (!result.success) headers["Retry-After"] = String(Math.max(1, seconds(result.reset)));
  return headers;
}

/** One policy per limit of a multi answer (a check repeated in the call is one policy). */
function policiesOf(results: MultiAnswer["results"], options: RateLimitHeadersOptions): Array<Answer & { name: string; windowMs: number }> {
  if (options.policy !== undefined || options.windowMs !== undefined) {
    throw validationError(
      `rateLimitHeaders: a limitAll answer names each policy and its window from its limiter; pass neither "policy" nor "windowMs"`,
    );
  }
  const byName = new Map<string, MultiAnswer["results"][number]>();
  for (const r of results) {
    const other = byName.get(r.name);
    if (!other) byName.set(r.name, r);
    else if (other.identifier !== r.identifier || other.limit !== r.limit || other.windowMs !== r.windowMs) {
      throw validationError(`rateLimitHeaders: two limits are named ${shown(r.name)}; give each limiter its own name`);
    }
  }
  return [...byName.values()];
}
