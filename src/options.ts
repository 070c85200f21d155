import * as z from "zod/mini";
import { validationError } from "./errors.js";

// zod/mini keeps option checking to a few KB; it runs when an object is constructed, never per request.

/** Parses `value` with `schema`, turning the first issue into a Validation error that names the field. */
export function parseOptions<T extends z.ZodMiniType>(schema: T, value: unknown, what: string): z.output<T> {
  const result = z.safeParse(schema, value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : what;
  throw validationError(`Invalid ${what} option "${field}": ${issue?.message ?? "invalid value"}`);
}

export const positiveInt = z.number().check(z.int(), z.positive());
export const nonNegativeInt = z.number().check(z.int(), z.nonnegative());
export const optionalFunction = z.optional(z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "must be a function"));

// DynamoDB's own limits: table names 3–255 of [A-Za-z0-9_.-]; key attribute names up to 255 bytes.
export const tableNameSchema = z.string().check(
  z.minLength(3, "must be 3 to 255 characters"),
  z.maxLength(255, "must be 3 to 255 characters"),
  z.regex(/^[A-Za-z0-9_.-]+$/, "may contain only letters, digits, '_', '-' and '.'"),
);
export const attributeNameSchema = z.string().check(
  z.minLength(1, "must not be empty"),
  z.maxLength(255, "must be at most 255 characters"),
);

export const tableOptionsShape = {
  tableName: z.optional(tableNameSchema),
  keyAttribute: z.optional(attributeNameSchema),
  sortKeyAttribute: z.optional(attributeNameSchema),
  countAttribute: z.optional(attributeNameSchema),
};
export const tableOptionsSchema = z.object(tableOptionsShape);
