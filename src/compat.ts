// Entry point `dynacount/compat`: a drop-in for the npm package dynamodb-atomic-counter.
import { config, getLastValue, increment } from "./compat/counter.js";

export { config, getLastValue, increment } from "./compat/counter.js";
export type { CompatOptions } from "./compat/counter.js";
export type { CompatConfig, IgnoredConfig, V2Credentials } from "./compat/config.js";
export type { CompatPromise, DeferredState } from "./compat/deferred.js";

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
 * _.when(atomicCounter.increment("a"), atomicCounter.increment("b")).done((a, b) => console.log(a, b));
 * ```
 * @module
 */

/** The module as the old package's `require` returned it: `{ config, increment, getLastValue }`. */
const compat: { config: typeof config; increment: typeof increment; getLastValue: typeof getLastValue } = {
  config,
  increment,
  getLastValue,
};
export default compat;
