// Coalescing of increments per item: the map every buffer keeps its pending deltas in.
import { keyParts, resolveLayout, type CounterKey, type TableLayout, type TableOptions } from "../core/keys.js";
import { amountToWire, type Amount } from "../core/numbers.js";

/** One coalesced counter update: everything added to one item's count attribute since the last flush. */
export interface PendingEntry {
  readonly table: TableLayout;
  /** The table's coalescing key (tableName, key attributes, count attribute). */
  readonly tableKey: string;
  readonly id: string;
  readonly sort: string | undefined;
  /** The item's coalescing key within its table. */
  readonly itemKey: string;
  delta: Amount;
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

/** An item's coalescing key within its table: the partition key, or both keys, unambiguously joined. */
const itemKeyOf = (t: TableLayout, id: string, sort: string | undefined): string =>
  t.sortKeyAttribute === undefined ? id : `${id.length}:${id}\u0000${sort}`;

export const tableKeyOf = (t: TableLayout): string =>
  JSON.stringify([t.tableName, t.keyAttribute, t.sortKeyAttribute ?? null, t.countAttribute]);

/**
 * Coalesces increments per (table, partition key, sort key, count attribute) in nested Maps, so `add` is
 * O(1) and validates a key only the first time it is seen in a batch.
 */
export class Coalescer {
  readonly #base: { table: TableLayout; tableKey: string };
  #tables = new Map<string, Map<string, PendingEntry>>();
  // Per-call options objects are usually reused constants: resolve (and validate) each one once.
  #layouts = new WeakMap<object, { table: TableLayout; tableKey: string }>();
  #size = 0;

  constructor(base: TableLayout) {
    this.#base = { table: base, tableKey: tableKeyOf(base) };
  }

  /** Distinct items waiting. */
  get size(): number {
    return this.#size;
  }

  /** Adds `by` to `key`'s entry, validating input; returns the entry. Throws Validation before changing anything. */
  add(key: CounterKey, by: Amount, options?: TableOptions): PendingEntry {
    if (typeof by !== "number" || !Number.isSafeInteger(by)) amountToWire(by, "by");
    const layout = options === undefined ? this.#base : this.#layout(options);
    // The hot case: a string key already waiting in this table was validated when it was first added.
    const seen = typeof key === "string" && layout.table.sortKeyAttribute === undefined ? this.#tables.get(layout.tableKey)?.get(key) : undefined;
    if (seen === undefined) return this.merge(this.#at(layout, key), by);
    seen.delta = addAmounts(seen.delta, by);
    return seen;
  }

  /** Validates `key` and `by` and says where they would go, without changing anything. */
  locate(key: CounterKey, by: Amount, options?: TableOptions): Omit<PendingEntry, "delta"> {
    amountToWire(by, "by");
    return this.#at(options === undefined ? this.#base : this.#layout(options), key);
  }

  #at({ table, tableKey }: { table: TableLayout; tableKey: string }, key: CounterKey): Omit<PendingEntry, "delta"> {
    const { id, sort } = keyParts(table, key);
    return { table, tableKey, id, sort, itemKey: itemKeyOf(table, id, sort) };
  }

  /** Adds `delta` to the entry at an already validated location, creating it if needed; returns the entry. */
  merge(at: Omit<PendingEntry, "delta">, delta: Amount): PendingEntry {
    let items = this.#tables.get(at.tableKey);
    if (items === undefined) this.#tables.set(at.tableKey, (items = new Map()));
    let entry = items.get(at.itemKey);
    if (entry === undefined) {
      entry = { table: at.table, tableKey: at.tableKey, id: at.id, sort: at.sort, itemKey: at.itemKey, delta: 0 };
      items.set(at.itemKey, entry);
      this.#size++;
    }
    entry.delta = addAmounts(entry.delta, delta);
    return entry;
  }

  /** The entry for `key`, if one is waiting. */
  find(at: Omit<PendingEntry, "delta">): PendingEntry | undefined {
    return this.#tables.get(at.tableKey)?.get(at.itemKey);
  }

  /** Removes and returns every entry. */
  drain(): PendingEntry[] {
    const out: PendingEntry[] = [];
    for (const items of this.#tables.values()) for (const entry of items.values()) out.push(entry);
    this.#tables = new Map();
    this.#size = 0;
    return out;
  }

  /** Removes one entry. */
  delete(entry: PendingEntry): void {
    const items = this.#tables.get(entry.tableKey);
    if (items?.delete(entry.itemKey)) this.#size--;
  }

  #layout(options: TableOptions): { table: TableLayout; tableKey: string } {
    let resolved = this.#layouts.get(options);
    if (resolved === undefined) {
      const table = resolveLayout(this.#base.table, options);
      resolved = table === this.#base.table ? this.#base : { table, tableKey: tableKeyOf(table) };
      this.#layouts.set(options, resolved);
    }
    return resolved;
  }
}
