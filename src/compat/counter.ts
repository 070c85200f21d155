// The API of dynamodb-atomic-counter on dynacount's client: config.update, increment and getLastValue with callbacks.
import { BaseClient } from "../core/base-client.js";
import { CounterError, validationError } from "../core/errors.js";
import { checkNames } from "../core/options.js";
import { checkConfig, clientOptions, type CompatConfig } from "./config.js";
import { deferred, type CompatPromise } from "./deferred.js";

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
  /**
   * DynamoDB request parameters, as the old package merged them into its request. Only those that keep the
   * call's meaning are accepted: `ConsistentRead` (getLastValue; `false` reads eventually consistent) and
   * `ReturnConsumedCapacity`/`ReturnItemCollectionMetrics` (ignored: the old package never surfaced them).
   * Anything else (a `ConditionExpression`, another `Key`) is a Validation error rather than silently dropped.
   * @default {}
   */
  dynamodb?: { ConsistentRead?: boolean; ReturnConsumedCapacity?: string; ReturnItemCollectionMetrics?: string };
}

let settings: CompatConfig = {};
let client: BaseClient | undefined;

/** Global configuration, like `AWS.config` was for the old library (it *was* `AWS.config`).
 *
 * @example
 * ```ts
 * config.update({ region: "us-east-1", endpoint: "http://127.0.0.1:8000", maxRetries: 2 });
 * ```
 */
export const config: { update(options: CompatConfig, allowUnknownKeys?: boolean): void; reset(): void } = {
  /**
   * Merges `options` into the configuration; the next call uses them. Every `AWS.Config` field is accepted
   * (see {@link CompatConfig} for the ones applied); any other name is a Validation error unless
   * `allowUnknownKeys` (AWS.Config.update's own second argument) is true.
   */
  update(options: CompatConfig, allowUnknownKeys = false): void {
    checkConfig(options, allowUnknownKeys);
    const next = { ...settings, ...options };
    let built: BaseClient | undefined;
    try {
      built = new BaseClient(clientOptions(next));
    } catch (e) {
      // A bad value is reported here; anything else (no credentials yet, say) may still be fixed by a later
      // update or the environment, so it reaches the first call's `error`/`fail` instead.
      if ((e as CounterError).code === "Validation") throw e;
    }
    settings = next;
    client = built;
  },
  /** Back to the defaults (environment variables). */
  reset(): void {
    settings = {};
    client = undefined;
  },
};

const OPTIONS = /* @__PURE__ */ new Set([
  "tableName",
  "keyAttribute",
  "countAttribute",
  "increment",
  "success",
  "error",
  "complete",
  "context",
  "dynamodb",
]);
// Request parameters that only add to DynamoDB's answer; any other one would change what the call does.
const INCREMENT_PARAMS = /* @__PURE__ */ new Set(["ReturnConsumedCapacity", "ReturnItemCollectionMetrics"]);
const GET_PARAMS = /* @__PURE__ */ new Set(["ConsistentRead", "ReturnConsumedCapacity"]);

/** Checks the call's options, then runs `work`; callbacks and the returned promise see the outcome. */
function settle<T>(
  options: CompatOptions<T>,
  params: ReadonlySet<string>,
  work: (client: BaseClient) => Promise<number>,
): CompatPromise<T> {
  const run = async () => {
    checkNames(options, OPTIONS, "counter");
    for (const name of ["success", "error", "complete"] as const) {
      if (options[name] != null && typeof options[name] !== "function")
        throw validationError(`Invalid counter option "${name}": must be a function`);
    }
    if (options.dynamodb != null) checkNames(options.dynamodb, params, "dynamodb");
    client ??= new BaseClient(clientOptions(settings));
    return work(client);
  };
  const toError = (e: unknown) => (e instanceof CounterError ? e : new CounterError("Service", String(e), { cause: e }));
  const promise = deferred<T, number>(
    run().catch((e: unknown) => Promise.reject(toError(e))),
    options.context as T,
  );
  return promise.done(options.success).fail(options.error).always(options.complete);
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
export function increment<T = unknown>(counterId: string, given?: CompatOptions<T> | null): CompatPromise<T> {
  // dynamodb-atomic-counter took a missing or null options argument as none.
  const options = given ?? {};
  return settle(options, INCREMENT_PARAMS, (c) => c.increment(counterId, { ...tableOptions(options), by: options.increment ?? 1 }));
}

/**
 * Resolves to the counter's last value (0 when it was never incremented).
 *
 * @example
 * ```ts
 * getLastValue("orders").done((value) => console.log(value));
 * ```
 */
export function getLastValue<T = unknown>(counterId: string, given?: CompatOptions<T> | null): CompatPromise<T> {
  const options = given ?? {};
  return settle(options, GET_PARAMS, (c) => {
    const consistent = options.dynamodb?.ConsistentRead ?? true;
    if (typeof consistent !== "boolean") throw validationError(`Invalid dynamodb option "ConsistentRead": must be a boolean`);
    return c.get(counterId, { ...tableOptions(options), consistent });
  });
}
