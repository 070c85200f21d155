// The Durable Object buffer: the flush engine over the object's storage and alarm.
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import { chunks } from "../core/chunks.js";
import { flushRetryDelay, nextSeq, notify, tally, warnFlushFailure, writeBatch, type Batch, type FlushResult } from "./engine.js";
import { layoutOptions, type CounterKey, type TableOptions } from "../core/keys.js";
import { wireToValue, type Amount, type CounterValue, type NumberMode } from "../core/numbers.js";
import { fn, lazy, nonNegativeInt, parseOptions, positiveInt, type Shape } from "../core/options.js";
import { addAmounts, Coalescer, type PendingEntry } from "./coalescer.js";

export type { FlushResult } from "./engine.js";

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
export interface DurableBufferOptions {
  /** Bring the alarm forward to now once this many distinct keys are waiting. @default 100 */
  maxKeys?: number;
  /** Flush this long after the first unflushed add. @default 5000 */
  flushIntervalMs?: number;
  /** Cap of the backoff between retries of a failed flush. @default 30000 */
  maxRetryDelayMs?: number;
  /** `UpdateItem` requests in flight at once during a flush. @default 16 */
  concurrency?: number;
  /** Called for every failed flush; the batch stays stored and the alarm retries it. @default console.warn of the message */
  onError?: (error: CounterError, info: { keys: number; failures: number; retryInMs: number }) => void;
  /** Called after every successful flush with what it wrote. @default undefined */
  onFlush?: (result: FlushResult) => void;
}

const optionsShape = /* @__PURE__ */ lazy((): Shape => ({
  maxKeys: positiveInt(),
  flushIntervalMs: nonNegativeInt(),
  maxRetryDelayMs: positiveInt(),
  concurrency: positiveInt(),
  onError: fn(),
  onFlush: fn(),
}));

// Storage layout: pending deltas under "p:<hash>", the batch in flight under "b:<hash>", and META.
const PENDING = "p:";
const BATCH = "b:";
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
}

interface Meta {
  /** The last flush sequence number used. */
  seq: number;
  /** The sequence number of the batch stored under "b:", if any. */
  batchSeq?: number;
  failures: number;
}

const encoder = new TextEncoder();

/** A storage key for an item: item keys can be 2 KB and more, storage keys must stay under 2 KiB. */
async function storageSuffix(tableKey: string, itemKey: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(`${tableKey}\n${itemKey}`)));
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

const toStored = (e: PendingEntry): StoredEntry => ({
  t: [e.table.tableName, e.table.keyAttribute, e.table.sortKeyAttribute ?? null, e.table.countAttribute],
  id: e.id,
  ...(e.sort !== undefined ? { sort: e.sort } : {}),
  d: String(e.delta),
});

const parseDelta = (d: string): Amount => {
  const n = Number(d);
  return Number.isSafeInteger(n) ? n : BigInt(d);
};

/**
 * A counter buffer inside a Durable Object: `add` persists the delta in the object's storage before it
 * resolves, and the object's alarm flushes exactly-once (the writer is the object's id). A failed flush
 * reschedules the alarm with backoff, so nothing acknowledged is lost across evictions, restarts and outages.
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
  readonly #writerId: string;
  readonly #maxKeys: number;
  readonly #intervalMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #concurrency: number;
  readonly #onError: NonNullable<DurableBufferOptions["onError"]>;
  readonly #onFlush: DurableBufferOptions["onFlush"];
  readonly #pending: Coalescer;
  readonly #ready: Promise<void>;
  /** Storage key suffix of each entry, pending or in flight. */
  readonly #suffixes = new WeakMap<PendingEntry, string>();
  #batch: Batch | undefined;
  #meta: Meta = { seq: 0, failures: 0 };
  #alarmAt: number | null = null;
  /** Flushes (and totals, which must not see a batch half-applied) run one at a time. */
  #lock: Promise<unknown> = Promise.resolve();

  constructor(state: DurableState, client: CounterClient<M>, options: DurableBufferOptions = {}) {
    const o = parseOptions(optionsShape, options, "durable buffer");
    this.#storage = state.storage;
    this.#client = client;
    this.#writerId = `do-${state.id.toString()}`;
    this.#maxKeys = o.maxKeys ?? 100;
    this.#intervalMs = o.flushIntervalMs ?? 5000;
    this.#maxRetryDelayMs = o.maxRetryDelayMs ?? 30_000;
    this.#concurrency = o.concurrency ?? 16;
    this.#onError = (o.onError as DurableBufferOptions["onError"]) ?? warnFlushFailure;
    this.#onFlush = o.onFlush as DurableBufferOptions["onFlush"];
    this.#pending = new Coalescer(client.table);
    this.#ready = state.blockConcurrencyWhile(() => this.#load());
  }

  /** Distinct keys waiting here (the batch in flight included). */
  get pending(): number {
    return this.#pending.size + (this.#batch?.entries.length ?? 0);
  }

  /**
   * Adds `by` to `key`. Resolves once the delta is in the object's storage and an alarm is set; reaching
   * `maxKeys` brings the alarm forward to now.
   */
  async add(key: CounterKey, by: Amount = 1, options?: TableOptions): Promise<void> {
    await this.#ready;
    const at = this.#pending.locate(key, by, options);
    const suffix = await storageSuffix(at.tableKey, at.itemKey);
    // From here to the put nothing awaits, so a flush cannot drain the entry between the two.
    const entry = this.#pending.merge(at, by);
    this.#suffixes.set(entry, suffix);
    await Promise.all([this.#storage.put({ [PENDING + suffix]: toStored(entry) }), this.#schedule(this.#due(), false)]);
  }

  /** DynamoDB's value of `key` plus what is still pending here. */
  async total(key: CounterKey, options?: TableOptions): Promise<CounterValue<M>> {
    await this.#ready;
    const at = this.#pending.locate(key, 0, options);
    return this.#locked(async () => {
      const stored = await this.#client.get(key, options ?? {});
      let extra: Amount = this.#pending.find(at)?.delta ?? 0;
      for (const e of this.#batch?.entries ?? []) if (e.tableKey === at.tableKey && e.itemKey === at.itemKey) extra = addAmounts(extra, e.delta);
      const sum = addAmounts(stored as Amount, extra);
      return wireToValue(String(sum), this.#client.numbers, `total of "${at.id}"`);
    });
  }

  /**
   * The object's alarm handler: flushes exactly-once. It never throws; a failure reschedules the alarm with
   * backoff (capped by `maxRetryDelayMs`) instead of relying on the platform's limited retries.
   */
  async alarm(_info?: { retryCount: number; isRetry: boolean }): Promise<void> {
    await this.#ready;
    this.#alarmAt = null; // the platform cleared the alarm that is running
    try {
      await this.flush();
    } catch {
      // reported through onError; the next alarm is already set
    }
  }

  /** Writes the batch in flight, then everything pending. Rejects (and reschedules the alarm) on failure. */
  async flush(): Promise<FlushResult> {
    await this.#ready;
    return this.#locked(() => this.#flushNow());
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async #flushNow(): Promise<FlushResult> {
    const result: FlushResult = { keys: 0, requests: 0, total: 0 };
    try {
      if (this.#batch) await this.#write(this.#batch, result);
      if (this.#pending.size > 0) await this.#write(await this.#startBatch(), result);
    } catch (error) {
      const counterError = error instanceof CounterError ? error : new CounterError("Service", `flush failed: ${String(error)}`, { cause: error });
      this.#meta.failures++;
      const retryInMs = flushRetryDelay(this.#meta.failures, this.#maxRetryDelayMs);
      await this.#schedule(Date.now() + retryInMs, true);
      await this.#storage.put({ [META]: this.#meta });
      notify(this.#onError, counterError, { keys: this.pending, failures: this.#meta.failures, retryInMs });
      throw counterError;
    }
    if (this.#meta.failures !== 0) {
      this.#meta.failures = 0;
      await this.#storage.put({ [META]: this.#meta });
    }
    // Adds that arrived during the flush wait for their own interval.
    if (this.#pending.size > 0) await this.#schedule(this.#due(), false);
    notify(this.#onFlush, result);
    return result;
  }

  /**
   * Moves every pending entry into a new stored batch. The writes are issued without an await between them,
   * which Durable Object storage commits as one atomic batch.
   */
  async #startBatch(): Promise<Batch> {
    const entries = this.#pending.drain();
    this.#meta.seq = nextSeq(this.#meta.seq);
    this.#meta.batchSeq = this.#meta.seq;
    const batch: Batch = { seq: this.#meta.seq, entries };
    this.#batch = batch;
    const puts: [string, unknown][] = [[META, this.#meta]];
    const deletes: string[] = [];
    for (const entry of entries) {
      const suffix = this.#suffixes.get(entry)!;
      puts.push([BATCH + suffix, toStored(entry)]);
      deletes.push(PENDING + suffix);
    }
    await Promise.all([
      ...chunks(puts, MAX_KV_KEYS).map((c) => this.#storage.put(Object.fromEntries(c))),
      ...chunks(deletes, MAX_KV_KEYS).map((c) => this.#storage.delete(c)),
    ]);
    return batch;
  }

  async #write(batch: Batch, result: FlushResult): Promise<void> {
    const outcome = await writeBatch(this.#client, batch, { writerId: this.#writerId, concurrency: this.#concurrency });
    tally(result, outcome);
    batch.entries = outcome.failed;
    const done = outcome.done.map((e) => BATCH + this.#suffixes.get(e)!);
    const deletes = chunks(done, MAX_KV_KEYS).map((keys) => this.#storage.delete(keys));
    if (outcome.failed.length === 0) {
      this.#batch = undefined;
      delete this.#meta.batchSeq;
      await Promise.all([...deletes, this.#storage.put({ [META]: this.#meta })]);
      return;
    }
    await Promise.all(deletes);
    throw outcome.errors[0]!;
  }

  /** When pending adds should be flushed: now once `maxKeys` are waiting, else one interval from now. */
  #due(): number {
    return Date.now() + (this.#pending.size >= this.#maxKeys ? 0 : this.#intervalMs);
  }

  async #schedule(at: number, force: boolean): Promise<void> {
    if (!force && this.#alarmAt !== null && this.#alarmAt <= at) return;
    this.#alarmAt = at;
    await this.#storage.setAlarm(at);
  }

  async #load(): Promise<void> {
    const [pending, batch, meta, alarm] = await Promise.all([
      this.#storage.list<StoredEntry>({ prefix: PENDING }),
      this.#storage.list<StoredEntry>({ prefix: BATCH }),
      this.#storage.get<Meta>(META),
      this.#storage.getAlarm(),
    ]);
    if (meta) this.#meta = { ...meta };
    this.#alarmAt = alarm;
    // One options object per stored table, so the coalescer resolves and validates each layout once.
    const tables = new Map<string, TableOptions>();
    const restore = (stored: StoredEntry) => {
      const tableKey = JSON.stringify(stored.t);
      let options = tables.get(tableKey);
      if (!options) {
        const [tableName, keyAttribute, sortKeyAttribute, countAttribute] = stored.t;
        options = layoutOptions({ tableName, keyAttribute, sortKeyAttribute: sortKeyAttribute ?? undefined, countAttribute });
        tables.set(tableKey, options);
      }
      return this.#pending.locate(stored.sort === undefined ? stored.id : { id: stored.id, sort: stored.sort }, 0, options);
    };
    for (const [key, stored] of pending) {
      this.#suffixes.set(this.#pending.merge(restore(stored), parseDelta(stored.d)), key.slice(PENDING.length));
    }
    if (batch.size > 0) {
      const entries = [...batch].map(([key, stored]) => {
        const entry: PendingEntry = { ...restore(stored), delta: parseDelta(stored.d) };
        this.#suffixes.set(entry, key.slice(BATCH.length));
        return entry;
      });
      this.#batch = { seq: this.#meta.batchSeq ?? this.#meta.seq, entries };
    }
    // Work left by an earlier incarnation gets an alarm even if the old one was lost.
    if ((pending.size > 0 || batch.size > 0) && alarm === null) await this.#schedule(Date.now(), true);
  }
}
