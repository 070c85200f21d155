import * as z from "zod/mini";
import { validationError } from "./errors.js";

// zod/mini checks options when an object is constructed, never per request. Schemas are built on first
// use, never at module load, so a bundler drops the ones an app never needs; and they use only zod's
// cheapest pieces (object, optional, primitives, refine, custom), which keeps its share of a Worker small.

/** `build()` once, on first call. */
export function lazy<T>(build: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= build());
}

/** Parses `value` with `schema`, turning the first issue into a Validation error that names the field. */
export function parseOptions<T extends z.ZodMiniType>(schema: () => T, value: unknown, what: string): z.output<T> {
  const result = z.safeParse(schema(), value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : what;
  throw validationError(`Invalid ${what} option "${field}": ${issue?.message ?? "invalid value"}`);
}

export const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.number().check(
    z.refine((v) => Number.isInteger(v) && v >= min && v <= max, max === Number.MAX_SAFE_INTEGER ? `must be an integer of at least ${min}` : `must be an integer from ${min} to ${max}`),
  );
export const positiveInt = () => int(1);
export const nonNegativeInt = () => int(0);
export const nonNegative = () => z.number().check(z.refine((v) => v >= 0, "must not be negative"));
export const optionalFunction = () => z.optional(z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "must be a function"));
/** One of a few string literals. */
export const oneOf = <const T extends readonly string[]>(values: T) =>
  z.custom<T[number]>((v) => values.includes(v as string), `must be one of ${values.map((v) => `"${v}"`).join(", ")}`);
/** A string of `min`…`max` characters, matching `pattern` when given. */
export const text = (min: number, max: number, pattern?: RegExp, patternMessage = "has characters that are not allowed") => {
  const range = min === 1 ? `must be at most ${max} characters` : `must be ${min} to ${max} characters`;
  return z.string().check(
    z.refine<string>((v) => v.length >= min, min === 1 ? "must not be empty" : range),
    z.refine<string>((v) => v.length <= max, range),
    ...(pattern ? [z.refine<string>((v) => pattern.test(v), patternMessage)] : []),
  );
};

// DynamoDB's own limits: table names 3–255 of [A-Za-z0-9_.-]; key attribute names up to 255 bytes.
export const tableOptionsShape = () => ({
  tableName: z.optional(text(3, 255, /^[A-Za-z0-9_.-]+$/, "may contain only letters, digits, '_', '-' and '.'")),
  keyAttribute: z.optional(text(1, 255)),
  sortKeyAttribute: z.optional(text(1, 255)),
  countAttribute: z.optional(text(1, 255)),
});
export const tableOptionsSchema = /* @__PURE__ */ lazy(() => z.object(tableOptionsShape()));
