// The middleware's `concurrency` option: a ConcurrencyLimiter slot held, and renewed, while the handler runs.
import type { Context } from "hono";
import { isCounterError, validationError } from "../core/errors.js";
import { checkNames } from "../core/options.js";
import type { ConcurrencyLimiter, ConcurrencySlot } from "../usecases/ratelimit/concurrency.js";
import { retryAfter, withFields } from "./fields.js";
import { hashed, isHashed, usable } from "./identifier.js";
import { waitUntil } from "./wait-until.js";

/**
 * A concurrency limit for {@link rateLimit}: at most `limit` requests per identifier in their handlers at once.
 * The slot is taken before the rate limits (a request it turns away spends no quota), renewed every third of
 * `leaseMs` while the handler runs, and released when `next()` resolves: when the handler has returned its
 * `Response`, which for a streamed body is before the body has been sent. To cover a stream, acquire in the
 * handler and release when the stream ends.
 *
 * @example
 * ```ts
 * rateLimit(perUser, { concurrency: new ConcurrencyLimiter(client, { limit: 2, name: "exports" }) });
 * rateLimit(perUser, { concurrency: { limiter: exportSlots, identifier: (c) => c.req.header("x-team") ?? "none" } });
 * ```
 */
export type ConcurrencyOption =
  | ConcurrencyLimiter
  | {
      limiter: ConcurrencyLimiter;
      /** Who holds the slot, made safe like the rate limit's identifier. @default the (first) rate limit's identifier */
      identifier?: (c: Context) => string | Promise<string>;
      /** The answer when no slot is free. @default a 429 "Too Many Requests" text answer; `Retry-After` is added */
      onDenied?: (c: Context, slot: ConcurrencySlot) => Response | Promise<Response>;
    };

type Resolved = Exclude<ConcurrencyOption, ConcurrencyLimiter>;
/** A slot for the request, or the answer that turns it away. */
type Held = { success: true; release(): void } | { success: false; denied: Response };

const NAMES = /* @__PURE__ */ new Set(["limiter", "identifier", "onDenied"]);

/** The option in its object form, checked before any request. */
export function slotOption(option: ConcurrencyOption | undefined): Resolved | undefined {
  if (option === undefined) return undefined;
  const resolved =
    typeof (option as ConcurrencyLimiter)?.acquire === "function" ? { limiter: option as ConcurrencyLimiter } : (option as Resolved);
  if (typeof resolved !== "object" || resolved === null)
    throw validationError(`rateLimit option "concurrency": must be a ConcurrencyLimiter or { limiter, identifier?, onDenied? }`);
  checkNames(resolved, NAMES, `rateLimit option "concurrency"`);
  if (typeof resolved.limiter?.acquire !== "function")
    throw validationError(`rateLimit option "concurrency": "limiter" must be a ConcurrencyLimiter`);
  return resolved;
}

/** Takes a slot for the request (for `fallback` unless the option names its own identifier). */
export async function holdSlot(c: Context, option: Resolved, fallback: string): Promise<Held> {
  const id = option.identifier ? await usable(await option.identifier(c)) : fallback;
  let slot: ConcurrencySlot;
  try {
    slot = await option.limiter.acquire(id);
  } catch (error) {
    // Invalid as an item key (a `key` option may lengthen it): its hash fits.
    if (!isCounterError(error, "Validation") || isHashed(id)) throw error;
    slot = await option.limiter.acquire(await hashed(id));
  }
  if (!slot.success) {
    const res = option.onDenied ? await option.onDenied(c, slot) : c.text("Too Many Requests", 429);
    return { success: false, denied: withFields(res, retryAfter(res, slot.reset)) };
  }
  // A third of the lease leaves two renewals' worth of time for one to get through; failures are retried by the next.
  const timer = slot.reason
    ? undefined
    : setInterval(() => void slot.renew().catch(() => false), Math.max(1, Math.floor(option.limiter.leaseMs / 3)));
  return {
    success: true,
    release() {
      if (timer !== undefined) clearInterval(timer);
      // Not awaited: the answer is not held back; a release that fails frees the slot after leaseMs anyway.
      waitUntil(
        c,
        slot.release().catch(() => undefined),
      );
    },
  };
}
