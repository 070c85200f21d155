export { CounterClient } from "./client.js";
export type { ClientOptions, IncrementOptions, GetOptions, ReserveOptions, CreateTableOptions, Reservation } from "./client.js";
export { CounterError, isCounterError } from "./errors.js";
export type { CounterErrorCode, CounterErrorDetails } from "./errors.js";
export type { CounterKey, TableOptions, TableLayout } from "./keys.js";
export type { Amount, CounterValue, NumberMode } from "./numbers.js";
export type { Credentials, RetryOptions, SendOptions } from "./transport.js";
export type { EnvSource } from "./env.js";
