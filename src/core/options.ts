// Option validation with zod/mini, field by field, with unknown names rejected.
import * as z from "zod/mini";
import { shown, validationError } from "./errors.js";

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
 * `required`; a field the shape does not know is an error (a typo such as `writerID` would otherwise be
 * silently ignored); the first bad field becomes a Validation error that names it.
 */
export function parseOptions<T extends object>(
  shape: () => Shape,
  value: T | undefined,
  what: string,
  required: readonly string[] = [],
  /** Nested objects that may carry fields of their own (credentials from the AWS SDK have `expiration`, `$source`, …). */
  open: readonly string[] = [],
): T {
  // `undefined` is no options; `null` is an error like any other non-object.
  const options = value === undefined ? ({} as T) : value;
  check(shape(), options, "");
  return options;

  function check(fields: Shape, object: unknown, path: string): void {
    if (typeof object !== "object" || object === null) fail(path, "must be an object");
    if (!open.includes(path))
      for (const field in object as object) {
        if (!Object.hasOwn(fields, field) && (object as Record<string, unknown>)[field] !== undefined) {
          fail(path ? `${path}.${field}` : field, unknownName(field, Object.keys(fields)));
        }
      }
    for (const field in fields) {
      const name = path ? `${path}.${field}` : field;
      const given = (object as Record<string, unknown>)[field];
      const schema = fields[field]!;
      if (given === undefined) {
        if (required.includes(name)) fail(name, "is required");
      } else if ("_zod" in schema) {
        const result = z.safeParse(schema as z.ZodMiniType, given);
        const issue = result.error?.issues[0];
        if (issue) fail(name, issue.message);
      } else {
        check(schema, given, name);
      }
    }
  }

  function fail(field: string, problem: string): never {
    throw validationError(field ? `Invalid ${what} option ${shown(field)}: ${problem}` : `Invalid ${what} options: ${problem}`);
  }
}

/**
 * Throws a Validation error naming each option of `options` that is not in `known` (per-call options,
 * checked on every call: a plain loop, no schema).
 */
export function checkNames(options: object, known: ReadonlySet<string>, what: string): void {
  // `null` (or a string from untyped code) would otherwise crash the caller's next read as a TypeError.
  if (typeof options !== "object" || options === null) throw validationError(`Invalid ${what} options: must be an object`);
  for (const field in options) {
    if (!known.has(field) && (options as Record<string, unknown>)[field] !== undefined) {
      throw validationError(`Invalid ${what} option ${shown(field)}: ${unknownName(field, [...known])}`);
    }
  }
}

/** "is not an option", with the closest known name when one is near enough to be a typo. */
function unknownName(field: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(field.length / 3)) + 1;
  for (const name of known) {
    const d = distance(field.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return `is not an option${best ? `; did you mean "${best}"?` : ` (known: ${known.join(", ")})`}`;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** Node, browsers and workerd store timer delays in a signed 32-bit int: a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration that becomes a timer: an integer from `min` to {@link MAX_TIMER_MS}. */
export const timerMs = (min = 0) => int(min, MAX_TIMER_MS);

/**
 * A schema from one function that names the problem with a value (undefined: none). zod/mini's own
 * `z.number()`, `z.string()`, `z.boolean()` and `.check(z.refine(...))` each bring more of zod into every
 * bundle (~0.35 KB gzip in all, measured); `z.custom` with the message computed from the input says the same.
 */
export const schema = <T>(problem: (v: unknown) => string | undefined) =>
  z.custom<T>((v) => problem(v) === undefined, { error: (issue) => problem(issue.input) });

const kind = (v: unknown, expected: string) => (typeof v === expected ? undefined : `must be a ${expected}`);

/** A value of one `typeof` kind. */
export const typed = <K extends "number" | "string" | "boolean">(expected: K) =>
  schema<{ number: number; string: string; boolean: boolean }[K]>((v) => kind(v, expected));

export const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  schema<number>(
    (v) =>
      kind(v, "number") ??
      (Number.isInteger(v) && (v as number) >= min && (v as number) <= max
        ? undefined
        : max === Number.MAX_SAFE_INTEGER
          ? `must be an integer of at least ${min}`
          : `must be an integer from ${min} to ${max}`),
  );
export const positiveInt = () => int(1);
export const nonNegativeInt = () => int(0);
export const fn = () => schema<(...args: never[]) => unknown>((v) => kind(v, "function"));
/** One of a few string literals. */
export const oneOf = <const T extends readonly string[]>(values: T) =>
  schema<T[number]>((v) => (values.includes(v as string) ? undefined : `must be one of ${values.map((v) => `"${v}"`).join(", ")}`));
/** A string of `min`…`max` characters, matching `pattern` when given. */
export const text = (min: number, max: number, pattern?: RegExp, patternMessage = "has characters that are not allowed") => {
  const range = min === 1 ? `must be at most ${max} characters` : `must be ${min} to ${max} characters`;
  return schema<string>((v) => {
    const s = v as string;
    return (
      kind(v, "string") ??
      (s.length < min
        ? min === 1
          ? "must not be empty"
          : range
        : s.length > max
          ? range
          : pattern && !pattern.test(s)
            ? patternMessage
            : undefined)
    );
  });
};

export const TABLE_OPTION_NAMES = ["tableName", "keyAttribute", "sortKeyAttribute", "countAttribute"] as const;

// DynamoDB's own limits: table names 3–255 of [A-Za-z0-9_.-]; key attribute names up to 255 bytes.
export const tableOptionsShape = /* @__PURE__ */ lazy(
  (): Shape => ({
    tableName: text(3, 255, /^[A-Za-z0-9_.-]+$/, "may contain only letters, digits, '_', '-' and '.'"),
    keyAttribute: text(1, 255),
    sortKeyAttribute: text(1, 255),
    countAttribute: text(1, 255),
  }),
);

/** `shape` plus the table options every use case accepts next to its own. */
export const withTable = (shape: Shape): Shape => ({ ...tableOptionsShape(), ...shape });

/** The names a per-call options object may use: the table options plus `own`. */
export const callOptionNames = (...own: string[]): ReadonlySet<string> => new Set([...TABLE_OPTION_NAMES, ...own]);
