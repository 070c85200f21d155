// Option validation with zod/mini, field by field, with unknown names rejected.
import * as z from "zod/mini";
import { validationError } from "./errors.js";

// zod/mini checks options when an object is constructed, never per request. Each field has its own
// primitive schema and `parseOptions` walks the fields itself: zod's object schema would add ~1.6 KB gzip
// to every Worker, and an option that is absent needs no schema at all. Schemas are built on first use,
// never at module load, so a bundler drops the ones an app never needs.

/** One schema per option; a nested shape for an object-valued option (`retry`, `credentials`). */
export interface Shape {
  readonly [field: string]: z.ZodMiniType | Shape;
}

/** `build()` once, on first call. */
export function lazy<T>(build: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= build());
}

/**
 * Checks `value` against `shape` and returns it. Absent fields are skipped unless their dotted path is in
 * `required`; the first bad field becomes a Validation error that names it.
 */
export function parseOptions<T extends object>(shape: () => Shape, value: T | undefined, what: string, required: readonly string[] = []): T {
  const options = value ?? ({} as T);
  check(shape(), options, "");
  return options;

  function check(fields: Shape, object: unknown, path: string): void {
    if (typeof object !== "object" || object === null) fail(path, "must be an object");
    for (const field in fields) {
      const name = path ? `${path}.${field}` : field;
      const given = (object as Record<string, unknown>)[field];
      const schema = fields[field]!;
      if (given === undefined) {
        if (required.includes(name)) fail(name, "is required");
      } else if ("_zod" in schema) {
        const result = z.safeParse(schema as z.ZodMiniType, given);
        const issue = result.error?.issues[0];
        // zod/mini loads no message locale: its own type errors would only say "Invalid input".
        if (issue) fail(name, issue.code === "invalid_type" ? `must be a ${issue.expected}` : issue.message);
      } else {
        check(schema, given, name);
      }
    }
  }

  function fail(field: string, problem: string): never {
    throw validationError(field ? `Invalid ${what} option "${field}": ${problem}` : `Invalid ${what} options: ${problem}`);
  }
}

export const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.number().check(
    z.refine((v) => Number.isInteger(v) && v >= min && v <= max, max === Number.MAX_SAFE_INTEGER ? `must be an integer of at least ${min}` : `must be an integer from ${min} to ${max}`),
  );
export const positiveInt = () => int(1);
export const nonNegativeInt = () => int(0);
export const nonNegative = () => z.number().check(z.refine((v) => v >= 0, "must not be negative"));
export const fn = () => z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "must be a function");
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
export const tableOptionsShape = /* @__PURE__ */ lazy((): Shape => ({
  tableName: text(3, 255, /^[A-Za-z0-9_.-]+$/, "may contain only letters, digits, '_', '-' and '.'"),
  keyAttribute: text(1, 255),
  sortKeyAttribute: text(1, 255),
  countAttribute: text(1, 255),
}));
