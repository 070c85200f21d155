// The Durable Object buffer's storage: one record per item and state, written before anything is sent, and read back (0.1's too).
import { chunks } from "../core/chunks.js";
import { CounterError, type CounterErrorCode } from "../core/errors.js";
import { layoutOptions, type TableOptions } from "../core/keys.js";
import type { Amount } from "../core/numbers.js";
import type { Coalescer, Location, Slot } from "./coalescer.js";
import type { EngineMeta, EngineStore, HeldLetter } from "./engine.js";

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
  /**
   * "b:": the write's sequence number (absent in records of version 0.1, which kept it in META.batchSeq); "x:": the
   * dead write's, when it is to be retried as it was ({@link HeldLetter.seq}).
   */
  s?: number;
  /** "x:" only: why the entry is dead. */
  e?: { code: CounterErrorCode; message: string; ambiguous: boolean; awsType?: string };
}

/** META as stored; `batchSeq` is what version 0.1 stored for its single batch. */
type StoredMeta = EngineMeta & { batchSeq?: number };

const encoder = new TextEncoder();

/** The storage key suffix of an item's records: item keys can be 2 KB and more, storage keys must stay under 2 KiB. */
export async function storageSuffix(at: Pick<Location, "tableRef" | "itemRef">): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(`${at.tableRef}\n${at.itemRef}`)));
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

/** What storage held for the engine: its meta, held dead letters and the alarm. */
export interface Loaded {
  meta: EngineMeta | undefined;
  letters: HeldLetter[];
  alarm: number | undefined;
}

/**
 * The engine's store on Durable Object storage: the records of each slot ("p:" pending, "b:" in flight with
 * its sequence number), dead letters ("x:", one per key) and the engine's meta, each write atomic.
 */
export class DurableSlotStore implements EngineStore {
  readonly #storage: DurableStorage;
  /** Storage key suffix of each slot (and of each held letter's location). */
  readonly #suffixes = new WeakMap<Location, string>();

  constructor(storage: DurableStorage) {
    this.#storage = storage;
  }

  /** Persists `slot`'s pending delta under `suffix` (its {@link storageSuffix}). */
  putPending(slot: Slot, suffix: string): Promise<void> {
    this.#suffixes.set(slot, suffix);
    return this.#storage.put({ [PENDING + suffix]: toStored(slot, slot.delta) });
  }

  #suffix(at: Location): string {
    return this.#suffixes.get(at)!;
  }

  // Writes issued without an await between them are committed by Durable Object storage as one atomic batch.
  #write(puts: [string, unknown][], deletes: string[]): Promise<void> {
    return Promise.all([
      ...chunks(puts, MAX_KV_KEYS).map((c) => this.#storage.put(Object.fromEntries(c))),
      ...chunks(deletes, MAX_KV_KEYS).map((c) => this.#storage.delete(c)),
    ]).then(() => undefined);
  }

  assign(slots: readonly Slot[], meta: EngineMeta): Promise<void> {
    return this.#write(
      [
        [META, meta],
        ...slots.map((s): [string, unknown] => [SENT + this.#suffix(s), { ...toStored(s, s.inFlight!.delta), s: s.inFlight!.seq }]),
      ],
      slots.map((s) => PENDING + this.#suffix(s)),
    );
  }

  settle(done: readonly Slot[], dead: readonly HeldLetter[]): Promise<void> {
    return this.#write(
      dead.map((h): [string, unknown] => [DEAD + h.id, storedLetter(h)]),
      [...done, ...dead.map((h) => h.at)].map((s) => SENT + this.#suffix(s)),
    );
  }

  saveMeta(meta: EngineMeta): Promise<void> {
    return this.#storage.put({ [META]: meta });
  }

  release(letters: readonly HeldLetter[], slots: readonly Slot[] | undefined): Promise<void> {
    return this.#write(
      (slots ?? []).map((s, i): [string, unknown] => {
        // A letter's location is the slot it came from, or one restored with its suffix.
        if (!this.#suffixes.has(s)) this.#suffixes.set(s, this.#suffix(letters[i]!.at));
        // A letter with a sequence number is back as the write it was: in flight, with that number.
        if (letters[i]!.seq !== undefined) return [SENT + this.#suffix(s), { ...toStored(s, s.inFlight!.delta), s: s.inFlight!.seq }];
        return [PENDING + this.#suffix(s), toStored(s, s.delta)];
      }),
      letters.flatMap((h) => [h.id, ...(h.merged ?? [])].map((id) => DEAD + id)),
    );
  }

  /** Reads every record back into `slots` (version 0.1's records included) and returns the rest. */
  async load(slots: Coalescer): Promise<Loaded> {
    const [pending, inFlight, dead, meta, alarm] = await Promise.all([
      this.#storage.list<StoredEntry>({ prefix: PENDING }),
      this.#storage.list<StoredEntry>({ prefix: SENT }),
      this.#storage.list<StoredEntry>({ prefix: DEAD }),
      this.#storage.get<StoredMeta>(META),
      this.#storage.getAlarm(),
    ]);
    // One options object per stored table, so each layout is resolved and validated once.
    const tables = new Map<string, TableOptions>();
    const locate = (stored: StoredEntry): Location => {
      const tableRef = JSON.stringify(stored.t);
      let options = tables.get(tableRef);
      if (!options) {
        const [tableName, keyAttribute, sortKeyAttribute, countAttribute] = stored.t;
        options = layoutOptions({ tableName, keyAttribute, sortKeyAttribute: sortKeyAttribute ?? undefined, countAttribute });
        tables.set(tableRef, options);
      }
      return slots.locate(stored.sort === undefined ? stored.id : { id: stored.id, sort: stored.sort }, 0, options);
    };
    for (const [key, stored] of pending)
      this.#suffixes.set(slots.merge(locate(stored), parseDelta(stored.d), true), key.slice(PENDING.length));
    for (const [key, stored] of inFlight) {
      const at = locate(stored);
      const slot = slots.find(at) ?? slots.merge(at, 0, true);
      // 0.1 kept one batch's sequence number in META.batchSeq instead of on each record.
      slot.inFlight = { seq: stored.s ?? meta?.batchSeq ?? meta?.seq ?? 0, delta: parseDelta(stored.d) };
      this.#suffixes.set(slot, key.slice(SENT.length));
    }
    const letters: HeldLetter[] = [...dead].map(([key, stored]) => {
      const at = locate(stored);
      const e = stored.e ?? { code: "Service" as const, message: "dead letter", ambiguous: false };
      const error = new CounterError(e.code, e.message, { ambiguous: e.ambiguous, awsType: e.awsType });
      return {
        at,
        id: key.slice(DEAD.length),
        seq: stored.s,
        letter: {
          key: at.sort === undefined ? at.id : { id: at.id, sort: at.sort },
          tableName: at.table.tableName,
          countAttribute: at.table.countAttribute,
          amount: parseDelta(stored.d),
          error,
        },
      };
    });
    for (const h of letters) this.#suffixes.set(h.at, await storageSuffix(h.at));
    return {
      meta: meta ? { seq: meta.seq, failures: meta.failures, retryAt: meta.retryAt } : undefined,
      letters,
      alarm: alarm ?? undefined,
    };
  }
}

function storedLetter(h: HeldLetter): StoredEntry {
  const { error } = h.letter;
  return {
    ...toStored(h.at, h.letter.amount),
    ...(h.seq !== undefined ? { s: h.seq } : {}),
    e: { code: error.code, message: error.message, ambiguous: error.ambiguous, ...(error.awsType ? { awsType: error.awsType } : {}) },
  };
}
