// Entry point `dynacount`: everything portable (client, buffer, use cases, errors).
export { CounterClient } from "./core/client.js";
export type { ClientOptions, IncrementOptions, GetOptions, ReserveOptions, CreateTableOptions, Reservation } from "./core/client.js";
export { CounterError, isCounterError } from "./core/errors.js";
export type { CounterErrorCode, CounterErrorDetails } from "./core/errors.js";
export type { CounterKey, TableOptions, TableLayout } from "./core/keys.js";
export type { Amount, CounterValue, NumberMode } from "./core/numbers.js";
export type { Credentials, RetryOptions, SendOptions, ThrottleRetryOptions } from "./core/transport.js";
export type { EnvSource } from "./core/env.js";
export { CounterBuffer } from "./buffer/memory.js";
export type { BufferOptions, CrowdedItem, DeadLetter, FlushErrorInfo, FlushResult } from "./buffer/memory.js";
export { RateLimiter } from "./usecases/ratelimit/limiter.js";
export type { LimitOptions, RateLimiterOptions, RateLimitResult } from "./usecases/ratelimit/limiter.js";
export { rateLimitHeaders } from "./usecases/ratelimit/headers.js";
export type { RateLimitHeadersOptions } from "./usecases/ratelimit/headers.js";
export { IdAllocator } from "./usecases/ids.js";
export type { IdAllocatorOptions } from "./usecases/ids.js";
export { ShardedCounter } from "./usecases/sharded.js";
export type { ShardedCounterOptions } from "./usecases/sharded.js";
