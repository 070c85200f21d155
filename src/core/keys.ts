// Counter keys and table layouts: validation and DynamoDB Key objects.
import { shown, validationError } from "./errors.js";
import { parseOptions, TABLE_OPTION_NAMES, tableOptionsShape } from "./options.js";

/**
 * A counter's key: the partition key value, or `{ id, sort }` when the table has a sort key.
 *
 * @example
 * ```ts
 * await client.increment("page:/home");
 * await client.increment({ id: "page:/home", sort: "2026-11-21" }, { sortKeyAttribute: "day" });
 * ```
 */
export type CounterKey = string | { id: string; sort?: string };

/** Where counters live. Every client method accepts these per call, overriding the client's defaults.
 *
 * @example
 * ```ts
 * await client.get("k", { tableName: "Stats", keyAttribute: "pk", countAttribute: "count" });
 * ```
 */
export interface TableOptions {
  /** Table name. @default "AtomicCounters" */
  tableName?: string;
  /** Partition key attribute (type S). @default "id" */
  keyAttribute?: string;
  /** Sort key attribute (type S), when the table has one. @default undefined */
  sortKeyAttribute?: string;
  /** Attribute that holds the count. @default "lastValue" */
  countAttribute?: string;
}

/** A fully resolved table layout.
 *
 * @example
 * ```ts
 * client.table; // { tableName: "AtomicCounters", keyAttribute: "id", sortKeyAttribute: undefined, countAttribute: "lastValue" }
 * ```
 */
export interface TableLayout {
  readonly tableName: string;
  readonly keyAttribute: string;
  readonly sortKeyAttribute: string | undefined;
  readonly countAttribute: string;
}

export const DEFAULT_LAYOUT: TableLayout = {
  tableName: "AtomicCounters",
  keyAttribute: "id",
  sortKeyAttribute: undefined,
  countAttribute: "lastValue",
};

/** `base` with `options` applied; validates the options. Returns `base` itself when nothing changes. */
export function resolveLayout(base: TableLayout, options?: { [K in keyof TableOptions]?: TableOptions[K] | undefined }): TableLayout {
  if (options === undefined || TABLE_OPTION_NAMES.every((name) => options[name] === undefined)) return base;
  // Only the layout's own fields: the object may carry other options, checked by their owner.
  const fields = (pick: (name: keyof TableOptions) => string | undefined) =>
    Object.fromEntries(TABLE_OPTION_NAMES.map((name) => [name, pick(name)]));
  parseOptions(
    tableOptionsShape,
    fields((name) => options[name]),
    "table",
  );
  return fields((name) => options[name] ?? base[name]) as unknown as TableLayout;
}

/** The per-call options that select `layout`. */
export function layoutOptions(layout: TableLayout): TableOptions {
  const { tableName, keyAttribute, sortKeyAttribute, countAttribute } = layout;
  return sortKeyAttribute === undefined
    ? { tableName, keyAttribute, countAttribute }
    : { tableName, keyAttribute, sortKeyAttribute, countAttribute };
}

/** UTF-8 length of `s`, or -1 when it holds a lone surrogate (which DynamoDB cannot store). */
function utf8Length(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return -1;
      bytes += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1;
    else bytes += 3;
  }
  return bytes;
}

function checkKeyPart(value: unknown, field: string, maxBytes: number): string {
  if (typeof value !== "string") throw validationError(`${field} must be a string, got ${value === null ? "null" : typeof value}`);
  if (value.length === 0) throw validationError(`${field} must not be empty`);
  const bytes = utf8Length(value);
  if (bytes < 0) throw validationError(`${field} contains a lone UTF-16 surrogate, which is not valid UTF-8`);
  if (bytes > maxBytes) throw validationError(`${field} is ${bytes} bytes of UTF-8; DynamoDB allows at most ${maxBytes}`);
  return value;
}

/** Validated partition and sort values of `key` for `layout`. */
export function keyParts(layout: TableLayout, key: CounterKey): { id: string; sort: string | undefined } {
  const whole = typeof key === "string";
  if (!whole && (key === null || typeof key !== "object"))
    throw validationError(`key must be a string or { id, sort }, got ${key === null ? "null" : typeof key}`);
  const { id, sort } = whole ? { id: key, sort: undefined } : key;
  checkKeyPart(id, whole ? "key" : "key.id", 2048);
  if (layout.sortKeyAttribute === undefined) {
    if (sort !== undefined) {
      throw validationError(`key.sort was given but no sortKeyAttribute is configured for table "${layout.tableName}"`);
    }
    return { id, sort: undefined };
  }
  if (sort === undefined) {
    throw validationError(
      `key.sort is required (a key must be { id, sort }): table "${layout.tableName}" has the sort key ${shown(layout.sortKeyAttribute)}`,
    );
  }
  return { id, sort: checkKeyPart(sort, "key.sort", 1024) };
}

/** DynamoDB's `Key` object for validated parts. */
export function keyAttributes(layout: TableLayout, id: string, sort: string | undefined): Record<string, { S: string }> {
  const item: Record<string, { S: string }> = { [layout.keyAttribute]: { S: id } };
  if (layout.sortKeyAttribute !== undefined && sort !== undefined) item[layout.sortKeyAttribute] = { S: sort };
  return item;
}

/** Validates `key` and returns DynamoDB's `Key` object for it. */
export function dynamoKey(layout: TableLayout, key: CounterKey): Record<string, { S: string }> {
  const { id, sort } = keyParts(layout, key);
  return keyAttributes(layout, id, sort);
}
