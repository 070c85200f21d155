// The Durable Object buffer: the flush engine over the object's storage and alarm.
import type { CounterClient } from "../core/client.js";
import { CounterError, shown, type CounterErrorCode } from "../core/errors.js";
import { chunks } from "../core/chunks.js";
import { layoutOptions, type CounterKey, type TableOptions } from "../core/keys.js";
import { addAmounts, wireToValue, type Amount, type CounterValue, type NumberMode } from "../core/numbers.js";
import { lazy, parseOptions } from "../core/options.js";
import type { Location, Slot } from "./coalescer.js";
import { markerAttribute, readMarker } from "./writer.js";
import {
  FlushEngine,
  flushOptionsShape,
  flushSettings,
  type DeadLetter,
  type EngineMeta,
  type EngineStore,
  type FlushOptions,
  type FlushResult,
  type HeldLetter,
} from "./engine.js";

export type { DeadLetter, FlushOptions, FlushResult } from "./engine.js";

/** The part of Durable Object storage the buffer uses (the KV API, on SQLite- or KV-backed objects).
 *
 * @example
 * ```ts
 * const storage: DurableStorage = this.ctx.storage;
 * ```
 */
export interface DurableStorage {
  get<T = unknown>(key: string): Promise<T | undefined>;
  put(entries: Record<string, unknown>): Promise<void>;
  delete(keys: string[]): Promise<number>;
  list<T = unknown>(options: { prefix: string }): Promise<Map<string, T>>;
  getAlarm(): Promise<number | null>;
  setAlarm(scheduledTime: number): Promise<void>;
}

/** The part of `DurableObjectState` (`this.ctx`, or `state` in the older constructor style) the buffer uses.
 *
 * @example
 * ```ts
 * constructor(state: DurableObjectState, env: Env) { this.buffer = new DurableCounterBuffer(state, new CounterClient({ env })); }
 * ```
 */
export interface DurableState {
  readonly id: { toString(): string };
  readonly storage: DurableStorage;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
}

/** Options of {@link DurableCounterBuffer}.
 *
 * @example
 * ```ts
 * new DurableCounterBuffer(this.ctx, client, { maxKeys: 100, flushIntervalMs: 5000, maxRetryDelayMs: 10_000 });
 * ```
 */
export interface DurableBufferOptions extends FlushOptions {
  /** Flush this long after the first unflushed add (the alarm's delay). At most 2^31 − 1. @default 5000 */
  flushIntervalMs?: number;
}

const optionsShape = /* @__PURE__ */ lazy(flushOptionsShape);

// Storage layout, one record per item and state: "p:<hash>" the pending delta, "b:<hash>" the write in
// progress with its sequence number, "x:<id>" a dead letter, and META the engine's sequence and backoff.
const PENDING = "p:";
const SENT = "b:";
const DEAD = "x:";
const META = "dynacount:meta";
/** Durable Object storage's KV calls take at most 128 keys each. */
const MAX_KV_KEYS = 128;

interface StoredEntry {
  /** [tableName, keyAttribute, sortKeyAttribute | null, countAttribute] */
  t: [string, string, string | null, string];
  id: string;
  sort?: string;
  /** The delta as a decimal string (exact for bigints too). */
  d: string;
  /** "b:" only: the write's sequence number (absent in records of version 0.1, which kept it in META.batchSeq). */
  s?: number;
  /** "x:" only: why the entry is dead. */
  e?: { code: CounterErrorCode; message: string; ambiguous: boolean; awsType?: string };
}

/** META as stored; `batchSeq` is what version 0.1 stored for its single batch. */
type StoredMeta = EngineMeta & { batchSeq?: number };

const encoder = new TextEncoder();

/** A storage key for an item: item keys can be 2 KB and more, storage keys must stay under 2 KiB. */
async function storageSuffix(tableKey: string, itemKey: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(`${tableKey}\n${itemKey}`)));
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

const toStored = (at: Location, d: Amount): StoredEntry => ({
  t: [at.table.tableName, at.table.keyAttribute, at.table.sortKeyAttribute ?? null, at.table.countAttribute],
  id: at.id,
  ...(at.sort !== undefined ? { sort: at.sort } : {}),
  d: String(d),
});

const parseDelta = (d: string): Amount => {
  const n = Number(d);
  return Number.isSafeInteger(n) ? n : BigInt(d);
};

/**
 * A counter buffer inside a Durable Object: `add` persists the delta in the object's storage before it
 * resolves, and the object's alarm flushes exactly-once (the writer is the object's id). A failed flush
 * reschedules the alarm with backoff, forever, so nothing acknowledged is lost across evictions, restarts
 * and outages; entries that can never be written (a missing table, say) are kept as dead letters in storage
 * and never hold the others back. It needs no `close()`: what `add` acknowledged is already durable.
 *
 * @example
 * ```ts
 * import { DurableObject } from "cloudflare:workers";
 * import { CounterClient } from "dynacount";
 * import { DurableCounterBuffer } from "dynacount/durable-object";
 *
 * export class PageCounter extends DurableObject<Env> {
 *   buffer = new DurableCounterBuffer(this.ctx, new CounterClient({ env: this.env }), { maxKeys: 100, flushIntervalMs: 5000 });
 *   async add(key: string, by = 1) { await this.buffer.add(key, by); }
 *   async total(key: string) { return this.buffer.total(key); }
 *   async alarm() { await this.buffer.alarm(); }
 * }
 * ```
 */
export class DurableCounterBuffer<M extends NumberMode = "number"> {
  readonly #storage: DurableStorage;
  readonly #client: CounterClient<M>;
  readonly #engine: FlushEngine;
  readonly #ready: Promise<void>;
  /** Storage key suffix of each slot. */
  readonly #suffixes = new WeakMap<Slot, string>();
  /** This object's exactly-once marker attribute. */
  readonly #marker: string;

  constructor(state: DurableState, client: CounterClient<M>, options: DurableBufferOptions = {}) {
    const o = parseOptions(optionsShape, options, "durable buffer");
    this.#storage = state.storage;
    this.#client = client;
    const storage = state.storage;
    const writerId = `do-${state.id.toString()}`;
    this.#marker = markerAttribute(writerId);
    this.#engine = new FlushEngine({
      client: client as CounterClient<NumberMode>,
      writerId,
      ...flushSettings(o, 5000),
      scheduler: { set: (at) => storage.setAlarm(at), clear: () => undefined },
      store: this.#store(),
    });
    this.#ready = state.blockConcurrencyWhile(() => this.#load());
  }

  /** Distinct keys waiting here (each once, a write in progress included; dead letters not). */
  get pending(): number {
    return this.#engine.pending;
  }

  /** Entries set aside after a non-retryable failure, kept in storage until `retryDeadLetters()` or `takeDeadLetters()`. */
  get deadLetters(): readonly DeadLetter[] {
    return this.#engine.deadLetters;
  }

  /**
   * Adds `by` to `key`. Resolves once the delta is in the object's storage and an alarm is set; reaching
   * `maxKeys` brings the alarm forward to now, unless a failed flush is backing off.
   */
  async add(key: CounterKey, by: Amount = 1, options?: TableOptions): Promise<void> {
    await this.#ready;
    const at = this.#engine.slots.locate(key, by, options);
    const suffix = await storageSuffix(at.tableKey, at.itemKey);
    // From here to the put nothing awaits, so a flush cannot move the delta between the two.
    const slot = this.#engine.slots.merge(at, by);
    this.#suffixes.set(slot, suffix);
    await Promise.all([this.#storage.put({ [PENDING + suffix]: toStored(slot, slot.delta) }), this.#engine.added()]);
  }

  /**
   * DynamoDB's value of `key` plus what is still pending here. A write that DynamoDB applied but this object
   * has not seen confirmed (its answer was lost) is counted once: the item's marker tells whether it is in.
   */
  async total(key: CounterKey, options?: TableOptions): Promise<CounterValue<M>> {
    await this.#ready;
    const at = this.#engine.slots.locate(key, 0, options);
    // Between flushes, so no write is half-confirmed.
    return this.#engine.exclusive(async () => {
      const item = await readMarker(this.#client, at, this.#marker, at.table.countAttribute);
      const stored: Amount = wireToValue(item[at.table.countAttribute]?.N, "bigint", `counter ${shown(at.table.countAttribute)}`);
      const slot = this.#engine.slots.find(at);
      // Applied when the marker reached the write's seq (the marker is per item: any attribute's write tells).
      const applied = slot?.sent !== undefined && Number(item[this.#marker]?.N ?? -1) >= slot.sent.seq;
      const sum = addAmounts(addAmounts(stored, slot?.delta ?? 0), applied ? 0 : (slot?.sent?.delta ?? 0));
      return wireToValue(String(sum), this.#client.numbers, `total of ${shown(at.id)}`);
    });
  }

  /**
   * The object's alarm handler: flushes exactly-once. It never throws; a failure reschedules the alarm with
   * backoff (capped by `maxRetryDelayMs`) instead of relying on the platform's limited retries.
   */
  async alarm(_info?: { retryCount: number; isRetry: boolean }): Promise<void> {
    await this.#ready;
    await this.#engine.wake();
  }

  /** Writes everything pending now. Rejects (and reschedules the alarm) when some key's write failed. */
  async flush(): Promise<FlushResult> {
    await this.#ready;
    return this.#engine.flush();
  }

  /** Puts every dead letter back as a pending add, once the cause is fixed; returns how many. */
  async retryDeadLetters(): Promise<number> {
    await this.#ready;
    return this.#engine.retryDeadLetters();
  }

  /** Removes and returns every dead letter (from storage too): the caller takes them over. */
  async takeDeadLetters(): Promise<DeadLetter[]> {
    await this.#ready;
    return this.#engine.takeDeadLetters();
  }

  #store(): EngineStore {
    const storage = () => this.#storage;
    const suffix = (slot: Slot) => this.#suffixes.get(slot)!;
    // Writes issued without an await between them are committed by Durable Object storage as one atomic batch.
    const write = (puts: [string, unknown][], deletes: string[]) =>
      Promise.all([
        ...chunks(puts, MAX_KV_KEYS).map((c) => storage().put(Object.fromEntries(c))),
        ...chunks(deletes, MAX_KV_KEYS).map((c) => storage().delete(c)),
      ]).then(() => undefined);
    return {
      assign: (slots, meta) =>
        write(
          [[META, meta], ...slots.map((s): [string, unknown] => [SENT + suffix(s), { ...toStored(s, s.sent!.delta), s: s.sent!.seq }])],
          slots.map((s) => PENDING + suffix(s)),
        ),
      settle: (done, dead) =>
        write(
          dead.map((h): [string, unknown] => [DEAD + h.id, this.#storedLetter(h)]),
          [...done, ...dead.map((h) => h.at as Slot)].map((s) => SENT + suffix(s)),
        ),
      saveMeta: (meta) => storage().put({ [META]: meta }),
      release: (letters, slots) =>
        write(
          (slots ?? []).map((s, i): [string, unknown] => {
            // A letter's location is the slot it came from, or one restored with its suffix.
            if (!this.#suffixes.has(s)) this.#suffixes.set(s, this.#suffixes.get(letters[i]!.at as Slot)!);
            return [PENDING + suffix(s), toStored(s, s.delta)];
          }),
          letters.flatMap((h) => [h.id, ...(h.merged ?? [])].map((id) => DEAD + id)),
        ),
    };
  }

  #storedLetter(h: HeldLetter): StoredEntry {
    const { error } = h.letter;
    return {
      ...toStored(h.at, h.letter.amount),
      e: { code: error.code, message: error.message, ambiguous: error.ambiguous, ...(error.awsType ? { awsType: error.awsType } : {}) },
    };
  }

  async #load(): Promise<void> {
    const [pending, sent, dead, meta, alarm] = await Promise.all([
      this.#storage.list<StoredEntry>({ prefix: PENDING }),
      this.#storage.list<StoredEntry>({ prefix: SENT }),
      this.#storage.list<StoredEntry>({ prefix: DEAD }),
      this.#storage.get<StoredMeta>(META),
      this.#storage.getAlarm(),
    ]);
    // One options object per stored table, so each layout is resolved and validated once.
    const tables = new Map<string, TableOptions>();
    const locate = (stored: StoredEntry): Location => {
      const tableKey = JSON.stringify(stored.t);
      let options = tables.get(tableKey);
      if (!options) {
        const [tableName, keyAttribute, sortKeyAttribute, countAttribute] = stored.t;
        options = layoutOptions({ tableName, keyAttribute, sortKeyAttribute: sortKeyAttribute ?? undefined, countAttribute });
        tables.set(tableKey, options);
      }
      return this.#engine.slots.locate(stored.sort === undefined ? stored.id : { id: stored.id, sort: stored.sort }, 0, options);
    };
    const slots = this.#engine.slots;
    for (const [key, stored] of pending) this.#suffixes.set(slots.merge(locate(stored), parseDelta(stored.d), true), key.slice(PENDING.length));
    for (const [key, stored] of sent) {
      const at = locate(stored);
      const slot = slots.find(at) ?? slots.merge(at, 0, true);
      slot.sent = { seq: stored.s ?? meta?.batchSeq ?? meta?.seq ?? 0, delta: parseDelta(stored.d) };
      this.#suffixes.set(slot, key.slice(SENT.length));
    }
    const letters: HeldLetter[] = [...dead].map(([key, stored]) => {
      const at = locate(stored);
      const e = stored.e ?? { code: "Service" as const, message: "dead letter", ambiguous: false };
      const error = new CounterError(e.code, e.message, { ambiguous: e.ambiguous, awsType: e.awsType });
      return {
        at,
        id: key.slice(DEAD.length),
        letter: { key: at.sort === undefined ? at.id : { id: at.id, sort: at.sort }, tableName: at.table.tableName, countAttribute: at.table.countAttribute, amount: parseDelta(stored.d), error },
      };
    });
    for (const h of letters) this.#suffixes.set(h.at as Slot, await storageSuffix(h.at.tableKey, h.at.itemKey));
    const restored: EngineMeta | undefined = meta ? { seq: meta.seq, failures: meta.failures, retryAt: meta.retryAt } : undefined;
    this.#engine.restore(restored, letters, alarm ?? undefined);
    // Work left by an earlier incarnation gets an alarm even if the old one was lost.
    await this.#engine.resume();
  }
}
