// Coalescing of increments per item: the map every buffer keeps its pending deltas in.
import { CounterError } from "../core/errors.js";
import { keyParts, resolveLayout, type CounterKey, type TableLayout, type TableOptions } from "../core/keys.js";
import { addChecked, amountToWire, type Amount } from "../core/numbers.js";
import { checkNames, TABLE_OPTION_NAMES } from "../core/options.js";

/** Where a slot's item lives: its validated table layout and key parts, and the coalescing references. */
export interface Location {
  readonly table: TableLayout;
  /** The table's coalescing reference (tableName, key attributes, count attribute). */
  readonly tableRef: string;
  readonly id: string;
  readonly sort: string | undefined;
  /** The item's coalescing reference within its table. */
  readonly itemRef: string;
}

/**
 * Everything waiting for one item: `delta`, added since the last write began, and `inFlight`, the write in
 * progress (or failed and waiting to be retried as it is, with its sequence number). A key has at most one
 * write in progress, so its writes stay in order while other keys move on.
 */
export interface Slot extends Location {
  delta: Amount;
  inFlight?: { seq: number; delta: Amount } | undefined;
}

/**
 * What a slot takes in memory, estimated: its strings (UTF-16) and ~200 bytes of objects and map entries.
 * Keys are often caller input (a path, a user name): the bound in bytes is what keeps a flood of long ones from
 * taking a Worker's or a Durable Object's 128 MB while DynamoDB is failing.
 */
export const slotBytes = (at: Pick<Location, "id" | "sort" | "itemRef">): number =>
  200 + 2 * (at.id.length + (at.sort?.length ?? 0) + (at.itemRef === at.id ? 0 : at.itemRef.length));

/** An item's coalescing reference within its table: the partition key, or both keys, unambiguously joined. */
const itemRefOf = (t: TableLayout, id: string, sort: string | undefined): string =>
  t.sortKeyAttribute === undefined ? id : `${id.length}:${id}\u0000${sort}`;

/**
 * An item's identity whatever its count attribute: slots of one item (one per count attribute) share it, and
 * with it one exactly-once marker, so they are written together.
 */
export const itemIdOf = (at: Location): string =>
  `${JSON.stringify([at.table.tableName, at.table.keyAttribute, at.table.sortKeyAttribute ?? null])}\n${at.itemRef}`;

export const tableRefOf = (t: TableLayout): string =>
  JSON.stringify([t.tableName, t.keyAttribute, t.sortKeyAttribute ?? null, t.countAttribute]);

const ADD_OPTIONS = /* @__PURE__ */ new Set(TABLE_OPTION_NAMES);

/**
 * Coalesces increments per (table, partition key, sort key, count attribute) in nested Maps, so `add` is
 * O(1) and validates a key only the first time it is seen. New keys beyond `maxSize` are refused with a
 * `BufferFull` error; adding to a key already waiting costs no memory and is always accepted.
 */
export class Coalescer {
  readonly #base: { table: TableLayout; tableRef: string };
  #tables = new Map<string, Map<string, Slot>>();
  // Layouts by their values (not by the options object, which a caller may mutate and reuse).
  readonly #layouts = new Map<string, { table: TableLayout; tableRef: string }>();
  #size = 0;
  #bytes = 0;
  maxSize = Infinity;
  /** Most bytes of memory (estimated) the slots and `heldBytes` may take. */
  maxBytes = Infinity;
  /** Bytes held elsewhere that count against `maxBytes` (the engine's dead letters). */
  heldBytes = 0;

  constructor(base: TableLayout) {
    this.#base = { table: base, tableRef: tableRefOf(base) };
  }

  /** Distinct items waiting (a write in progress included). */
  get size(): number {
    return this.#size;
  }

  /** Adds `by` to `key`'s slot, validating input; returns the slot. Throws before changing anything. */
  add(key: CounterKey, by: Amount, options?: TableOptions): Slot {
    if (typeof by !== "number" || !Number.isSafeInteger(by)) amountToWire(by, "by");
    const layout = options === undefined ? this.#base : this.#layout(options);
    // The hot case: a string key already waiting in this table was validated when it was first added.
    const seen =
      typeof key === "string" && layout.table.sortKeyAttribute === undefined ? this.#tables.get(layout.tableRef)?.get(key) : undefined;
    if (seen === undefined) return this.merge(this.#at(layout, key), by);
    seen.delta = addChecked(seen.delta, by, "by");
    return seen;
  }

  /** Validates `key` and `by` and says where they would go, without changing anything. */
  locate(key: CounterKey, by: Amount, options?: TableOptions): Location {
    amountToWire(by, "by");
    return this.#at(options === undefined ? this.#base : this.#layout(options), key);
  }

  #at({ table, tableRef }: { table: TableLayout; tableRef: string }, key: CounterKey): Location {
    const { id, sort } = keyParts(table, key);
    return { table, tableRef, id, sort, itemRef: itemRefOf(table, id, sort) };
  }

  /**
   * Adds `delta` to the slot at an already validated location, creating it if needed; returns the slot.
   * `restoring` skips the size bound (what storage already holds is never refused).
   */
  merge(at: Location, delta: Amount, restoring = false): Slot {
    let items = this.#tables.get(at.tableRef);
    let slot = items?.get(at.itemRef);
    if (slot === undefined) {
      const bytes = slotBytes(at);
      if (!restoring && (this.#size >= this.maxSize || this.#bytes + this.heldBytes + bytes > this.maxBytes)) {
        const [what, option] =
          this.#size >= this.maxSize
            ? [`${this.#size} distinct keys`, "maxPendingKeys"]
            : [`~${this.#bytes + this.heldBytes} bytes of keys`, "maxPendingBytes"];
        throw new CounterError(
          "BufferFull",
          `The buffer holds ${what} (${option}) and cannot take a new one; DynamoDB is ` +
            `probably failing (see onError). Adds to keys already waiting are still accepted.`,
          { retryable: true },
        );
      }
      this.#bytes += bytes;
      const sum = addChecked(0, delta, "by");
      if (items === undefined) this.#tables.set(at.tableRef, (items = new Map()));
      slot = { table: at.table, tableRef: at.tableRef, id: at.id, sort: at.sort, itemRef: at.itemRef, delta: sum };
      items.set(at.itemRef, slot);
      this.#size++;
      return slot;
    }
    slot.delta = addChecked(slot.delta, delta, "by");
    return slot;
  }

  /** The slot for a location, if one is waiting. */
  find(at: Location): Slot | undefined {
    return this.#tables.get(at.tableRef)?.get(at.itemRef);
  }

  /** Every slot, in insertion order per table. */
  *slots(): IterableIterator<Slot> {
    for (const items of this.#tables.values()) yield* items.values();
  }

  /** Removes one slot. */
  delete(slot: Slot): void {
    const items = this.#tables.get(slot.tableRef);
    if (items?.delete(slot.itemRef)) {
      this.#size--;
      this.#bytes -= slotBytes(slot);
      if (items.size === 0) this.#tables.delete(slot.tableRef);
    }
  }

  #layout(options: TableOptions): { table: TableLayout; tableRef: string } {
    checkNames(options, ADD_OPTIONS, "add");
    const { tableName, keyAttribute, sortKeyAttribute, countAttribute } = options;
    if (tableName === undefined && keyAttribute === undefined && sortKeyAttribute === undefined && countAttribute === undefined)
      return this.#base;
    // A non-string value is never looked up (its text could match a valid name's): resolveLayout rejects it.
    for (const v of [tableName, keyAttribute, sortKeyAttribute, countAttribute])
      if (v !== undefined && typeof v !== "string") resolveLayout(this.#base.table, options);
    // JSON keeps every value apart: an option left out (null) from one named "undefined", names holding NUL.
    const id = JSON.stringify([tableName ?? null, keyAttribute ?? null, sortKeyAttribute ?? null, countAttribute ?? null]);
    let resolved = this.#layouts.get(id);
    if (resolved === undefined) {
      const table = resolveLayout(this.#base.table, options);
      resolved = { table, tableRef: tableRefOf(table) };
      // Bounded: a caller cycling through endless layouts must not grow this cache without limit.
      if (this.#layouts.size >= 1000) this.#layouts.clear();
      this.#layouts.set(id, resolved);
    }
    return resolved;
  }
}
