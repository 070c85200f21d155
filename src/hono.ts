// Entry point `dynacount/hono`: the rate-limit middleware for Hono (imports only Hono's types).
export { rateLimit } from "./hono/middleware.js";
export type {
  MultiRateLimitMiddlewareOptions,
  MultiRateLimitVariables,
  RateLimitCheck,
  RateLimitMiddlewareOptions,
  RateLimitVariables,
} from "./hono/middleware.js";
export type { ConcurrencyOption } from "./hono/concurrency.js";
export { clientAddress } from "./hono/address.js";
export type { ClientAddressOptions, ConnInfoResult } from "./hono/address.js";
export type { RateLimitResult } from "./usecases/ratelimit/limiter.js";
export type { MultiRateLimitResult } from "./usecases/ratelimit/all.js";
export type { ConcurrencySlot } from "./usecases/ratelimit/concurrency.js";
