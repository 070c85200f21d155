// Numbers on the wire: amounts to DynamoDB N strings and back, never losing precision.
import { CounterError, validationError } from "./errors.js";

/** How counter values are returned: JavaScript numbers (exact up to 2^53 − 1) or bigints.
 *
 * @example
 * ```ts
 * const big = new CounterClient({ numbers: "bigint" }); // increment() then resolves to a bigint
 * ```
 */
export type NumberMode = "number" | "bigint";

/** The value type for a {@link NumberMode}.
 *
 * @example
 * ```ts
 * const v: CounterValue<"bigint"> = 1n;
 * ```
 */
export type CounterValue<M extends NumberMode> = M extends "bigint" ? bigint : number;

/** An amount to add: a safe integer, or a bigint for anything larger.
 *
 * @example
 * ```ts
 * await client.increment("k", { by: 10n ** 20n });
 * ```
 */
export type Amount = number | bigint;

// DynamoDB numbers carry up to 38 significant digits.
const MAX_DIGITS = 38;

/** Validates an amount and renders it the way DynamoDB's `N` wants it. */
export function amountToWire(value: unknown, field: string, min?: bigint): string {
  let text: string;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw validationError(
        `"${field}" must be an integer between -(2^53 - 1) and 2^53 - 1, got ${String(value)}; pass a bigint for larger values`,
      );
    }
    text = String(value);
  } else if (typeof value === "bigint") {
    text = value.toString();
  } else {
    throw validationError(`"${field}" must be an integer number or a bigint, got ${typeof value}`);
  }
  if (text.length - (text.startsWith("-") ? 1 : 0) > MAX_DIGITS) {
    throw validationError(`"${field}" has more than ${MAX_DIGITS} digits, DynamoDB's limit for numbers`);
  }
  if (min !== undefined && BigInt(text) < min) {
    throw validationError(`"${field}" must be at least ${min}, got ${text}`);
  }
  return text;
}

const INTEGER = /^-?\d+$/;

/** Converts DynamoDB's `N` string into the client's number mode, never silently rounding. */
export function wireToValue<M extends NumberMode>(text: string | undefined, mode: M, what: string): CounterValue<M> {
  const raw = text ?? "0";
  if (mode === "bigint") {
    if (!INTEGER.test(raw)) {
      throw new CounterError("PrecisionLoss", `${what} is ${raw}, which is not an integer and cannot be a bigint`);
    }
    return BigInt(raw) as CounterValue<M>;
  }
  const value = Number(raw);
  const exact = INTEGER.test(raw) ? Number.isSafeInteger(value) : Number.isFinite(value) && sameDecimal(value, raw);
  if (!exact) {
    throw new CounterError(
      "PrecisionLoss",
      `${what} is ${raw}, beyond what a JavaScript number holds exactly (2^53 - 1); ` +
        `create the client with { numbers: "bigint" } to read it`,
    );
  }
  return value as CounterValue<M>;
}

function sameDecimal(value: number, raw: string): boolean {
  const strip = (s: string) =>
    s
      .replace(/^(-?)0+(?=\d)/, "$1")
      .replace(/(\.\d*?)0+$/, "$1")
      .replace(/\.$/, "");
  return strip(String(value)) === strip(raw);
}

/** `value - (count - 1)`, in the value's own type. */
export function firstOfRange<M extends NumberMode>(last: CounterValue<M>, count: string): CounterValue<M> {
  if (typeof last === "bigint") return (last - BigInt(count) + 1n) as CounterValue<M>;
  const first = (last as number) - Number(count) + 1;
  if (!Number.isSafeInteger(first)) {
    throw new CounterError("PrecisionLoss", `reserved range starts at ${first}, beyond 2^53 - 1; use { numbers: "bigint" }`);
  }
  return first as CounterValue<M>;
}

/** a + b, staying a number while that is exact and becoming a bigint past 2^53. */
export function addAmounts(a: Amount, b: Amount): Amount {
  if (typeof a === "number" && typeof b === "number") {
    const sum = a + b;
    if (Number.isSafeInteger(sum)) return sum;
  }
  const sum = BigInt(a) + BigInt(b);
  return sum >= BigInt(Number.MIN_SAFE_INTEGER) && sum <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(sum) : sum;
}

const LIMIT = /* @__PURE__ */ (() => 10n ** BigInt(MAX_DIGITS))();

/** `addAmounts`, refusing a sum DynamoDB could not store (more than 38 digits) with a Validation error. */
export function addChecked(a: Amount, b: Amount, field: string): Amount {
  const sum = addAmounts(a, b);
  if (typeof sum === "bigint" && (sum >= LIMIT || sum <= -LIMIT)) {
    throw validationError(`"${field}" would make a pending delta of more than ${MAX_DIGITS} digits, DynamoDB's limit for numbers`);
  }
  return sum;
}
