// Entry point `dynacount/hono`: the rate-limit middleware for Hono (imports only Hono's types).
export { rateLimit } from "./hono/middleware.js";
export type { RateLimitMiddlewareOptions, RateLimitVariables } from "./hono/middleware.js";
export { clientAddress } from "./hono/address.js";
export type { ClientAddressOptions, ConnInfoResult } from "./hono/address.js";
export type { RateLimitResult } from "./usecases/ratelimit/limiter.js";
