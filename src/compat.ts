// Entry point `dynacount/compat`: a drop-in for the npm package dynamodb-atomic-counter.
import { CounterClient, type ClientOptions } from "./core/client.js";
import { CounterError } from "./core/errors.js";
import type { Credentials, RetryOptions } from "./core/transport.js";

/**
 * A drop-in for the npm package `dynamodb-atomic-counter`: the same `config.update`, `increment` and
 * `getLastValue`, the same table defaults (`AtomicCounters`, key `id`, attribute `lastValue`), without
 * the AWS SDK and without its bugs (`getLastValue` errors reach `error`/`fail`; `increment: 0` means 0).
 *
 * @example
 * ```ts
 * // before: const atomicCounter = require("dynamodb-atomic-counter");
 * const atomicCounter = require("dynacount/compat");
 * atomicCounter.config.update({ region: "us-east-1" });
 * atomicCounter.increment("users").done((value) => console.log("new user id", value));
 * ```
 * @module
 */

/** AWS SDK v2-style settings accepted by `config.update`. Each defaults to the environment, as dynacount's client does.
 *
 * @example
 * ```ts
 * config.update({ region: "eu-west-1", maxRetries: 5, httpOptions: { timeout: 2000 } });
 * ```
 */
export interface CompatConfig {
  region?: string;
  endpoint?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  credentials?: Credentials;
  /** AWS SDK v2's retry count (retries after the first attempt). */
  maxRetries?: number;
  /** AWS SDK v2's HTTP options; `timeout` is the per-attempt timeout in ms. */
  httpOptions?: { timeout?: number };
  /** dynacount's own client options, for anything not above. */
  client?: ClientOptions;
}

/** Options of {@link increment} and {@link getLastValue}, as in `dynamodb-atomic-counter`.
 *
 * @example
 * ```ts
 * increment("users", { tableName: "MyCounters", keyAttribute: "name", increment: 12, success: (v) => console.log(v) });
 * ```
 */
export interface CompatOptions<T = unknown> {
  /** @default "AtomicCounters" */
  tableName?: string;
  /** @default "id" */
  keyAttribute?: string;
  /** @default "lastValue" */
  countAttribute?: string;
  /** Amount to add (increment only); 0 really is 0. @default 1 */
  increment?: number;
  /** Called with the value. @default undefined */
  success?: (this: T, value: number) => void;
  /** Called with the error. @default undefined */
  error?: (this: T, error: CounterError) => void;
  /** Called after either, with the value or the error. @default undefined */
  complete?: (this: T, valueOrError: number | CounterError) => void;
  /** `this` inside the callbacks. @default undefined */
  context?: T;
}

/** A promise that also has the old library's deferred methods. Each returns the same promise, for chaining.
 *
 * @example
 * ```ts
 * increment("users").done((v) => use(v)).fail((e) => log(e)).always(() => done());
 * ```
 */
export interface CompatPromise<T = unknown> extends Promise<number> {
  done(callback: (this: T, value: number) => void): CompatPromise<T>;
  fail(callback: (this: T, error: CounterError) => void): CompatPromise<T>;
  always(callback: (this: T, valueOrError: number | CounterError) => void): CompatPromise<T>;
}

let settings: CompatConfig = {};
let client: CounterClient | undefined;

/** Global configuration, like `AWS.config` was for the old library.
 *
 * @example
 * ```ts
 * config.update({ region: "us-east-1", endpoint: "http://127.0.0.1:8000" });
 * ```
 */
export const config: { update(options: CompatConfig): void; reset(): void } = {
  /** Merges `options` into the configuration; the next call uses them. */
  update(options: CompatConfig): void {
    settings = { ...settings, ...options };
    client = undefined;
  },
  /** Back to the defaults (environment variables). */
  reset(): void {
    settings = {};
    client = undefined;
  },
};

function getClient(): CounterClient {
  if (client) return client;
  const { region, endpoint, accessKeyId, secretAccessKey, sessionToken, credentials, maxRetries, httpOptions } = settings;
  const options: ClientOptions = { ...settings.client };
  if (region !== undefined) options.region = region;
  if (endpoint !== undefined) options.endpoint = endpoint;
  if (credentials) options.credentials = credentials;
  else if (accessKeyId !== undefined && secretAccessKey !== undefined) {
    options.credentials = sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey };
  }
  if (maxRetries !== undefined) options.retry = { ...options.retry, attempts: maxRetries + 1 } as RetryOptions;
  if (httpOptions?.timeout !== undefined) options.timeoutMs = httpOptions.timeout;
  client = new CounterClient(options);
  return client;
}

function settle<T>(work: () => Promise<number>, options: CompatOptions<T>): CompatPromise<T> {
  const context = options.context as T;
  const promise = Promise.resolve().then(work) as CompatPromise<T>;
  // Callback-style callers never attach a rejection handler; that must not crash the process.
  promise.catch(() => undefined);
  const toError = (e: unknown) => (e instanceof CounterError ? e : new CounterError("Service", String(e), { cause: e }));
  promise.done = (callback) => {
    promise.then((value) => callback.call(context, value), () => undefined);
    return promise;
  };
  promise.fail = (callback) => {
    promise.then(undefined, (error: unknown) => callback.call(context, toError(error)));
    return promise;
  };
  promise.always = (callback) => {
    promise.then((value) => callback.call(context, value), (error: unknown) => callback.call(context, toError(error)));
    return promise;
  };
  if (options.success) promise.done(options.success);
  if (options.error) promise.fail(options.error);
  if (options.complete) promise.always(options.complete);
  return promise;
}

const tableOptions = (o: Pick<CompatOptions, "tableName" | "keyAttribute" | "countAttribute">) => {
  const t: { tableName?: string; keyAttribute?: string; countAttribute?: string } = {};
  if (o.tableName !== undefined) t.tableName = o.tableName;
  if (o.keyAttribute !== undefined) t.keyAttribute = o.keyAttribute;
  if (o.countAttribute !== undefined) t.countAttribute = o.countAttribute;
  return t;
};

/**
 * Increments the counter `counterId` by `options.increment` (default 1) and resolves to its new value.
 *
 * @example
 * ```ts
 * increment("orders", { increment: 12, context: this, success(value) { this.id = value; } });
 * ```
 */
export function increment<T = unknown>(counterId: string, options: CompatOptions<T> = {}): CompatPromise<T> {
  return settle(() => getClient().increment(counterId, { ...tableOptions(options), by: options.increment ?? 1 }), options);
}

/**
 * Resolves to the counter's last value (0 when it was never incremented).
 *
 * @example
 * ```ts
 * getLastValue("orders").done((value) => console.log(value));
 * ```
 */
export function getLastValue<T = unknown>(counterId: string, options: CompatOptions<T> = {}): CompatPromise<T> {
  return settle(() => getClient().get(counterId, tableOptions(options)), options);
}

const compat: { config: typeof config; increment: typeof increment; getLastValue: typeof getLastValue } = { config, increment, getLastValue };
export default compat;
