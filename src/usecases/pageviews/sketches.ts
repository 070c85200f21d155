// One object's visitor sketches per page and day: kept in its storage, written to DynamoDB when changed, pruned when closed.
import type { DurableStorage } from "../../buffer/durable-store.js";
import type { SideWrites } from "../../buffer/engine.js";
import type { Sender } from "../../buffer/writer.js";
import { CounterError } from "../../core/errors.js";
import { keyParts, dynamoKey, type TableLayout } from "../../core/keys.js";
import { DAY_MS, dayEnd } from "./buckets.js";
import { Sketch } from "./hll.js";
import { dayExpiry, fnv1a, itemKey, SKETCH, SKETCH_VERSION, type Retention } from "./layout.js";

/** Views of a day count as visitors until a day after it ended; later, a closed day's sketch is written and dropped. */
export const LATE_MS = DAY_MS;

/** Whether a sketch of `day` may still change at `now`. */
export const isOpen = (day: string, now: number): boolean => dayEnd(day) + LATE_MS > now;

const PREFIX = "pvs:";

/** A 64-bit FNV name of a page, for storage keys (pages can be long). */
export const pageTag = (page: string): string =>
  fnv1a(page).toString(16).padStart(8, "0") + fnv1a(page, 0x2c1b3c6d).toString(16).padStart(8, "0");

interface Entry {
  page: string;
  day: string;
  sketch: Sketch;
  /** Bumped with every change (persisted with it): the sketch item's version, so an older write never wins. */
  version: number;
  /** The version DynamoDB has. */
  written: number;
}

interface Stored {
  p: string;
  d: string;
  s: string;
  v: number;
  w: number;
}

/**
 * The sketches of one writer. `add` changes them in memory and returns the storage records to put in the same
 * atomic batch as the views' counts; `write` (the flush engine's side writes) sends each changed sketch as one
 * conditional `UpdateItem` of its sketch item (`pv#u#<day>#<writer>#<page>`), skipping unchanged ones.
 *
 * @example
 * ```ts
 * const book = new SketchBook(storage, client, table, "a1b2c3d4e5f60718", retention, 16, onError);
 * const puts = book.add("/home", "2026-11-21", hi, lo); // { "pvs:…": … } when the sketch changed
 * ```
 */
export class SketchBook implements SideWrites {
  readonly #entries = new Map<string, Entry>();

  constructor(
    readonly storage: DurableStorage,
    readonly client: Sender,
    readonly table: TableLayout,
    /** The writer's short name in sketch item keys. */
    readonly writer: string,
    readonly retention: Retention,
    readonly concurrency: number,
    readonly onError: (error: CounterError) => void,
  ) {}

  /** Reads the stored sketches back (after a restart). */
  async load(): Promise<void> {
    for (const [, s] of await this.storage.list<Stored>({ prefix: PREFIX })) {
      this.#entries.set(`${s.d}\n${s.p}`, { page: s.p, day: s.d, sketch: Sketch.decode(s.s), version: s.v, written: s.w });
    }
  }

  /** Sketches held (open days, and closed ones not yet written). */
  get size(): number {
    return this.#entries.size;
  }

  get pending(): boolean {
    for (const e of this.#entries.values()) if (e.version > e.written) return true;
    return false;
  }

  /** Adds a visitor hash to the sketch of (`page`, `day`); the records to store when it changed (none otherwise). */
  add(page: string, day: string, hi: number, lo: number, puts: Record<string, unknown>): void {
    const id = `${day}\n${page}`;
    let e = this.#entries.get(id);
    if (e === undefined) this.#entries.set(id, (e = { page, day, sketch: new Sketch(), version: 0, written: 0 }));
    if (!e.sketch.add(hi, lo)) return;
    // Several views of one batch change a sketch once: the version is bumped once per stored record.
    const key = this.#key(e);
    if (puts[key] === undefined) e.version++;
    puts[key] = () => this.#stored(e);
  }

  /** The merged estimate of this object's sketch for (`page`, `day`) (tests and debugging). */
  estimate(page: string, day: string): number {
    return this.#entries.get(`${day}\n${page}`)?.sketch.estimate() ?? 0;
  }

  #key(e: Entry): string {
    return `${PREFIX}${e.day}:${pageTag(e.page)}`;
  }

  #stored(e: Entry): Stored {
    return { p: e.page, d: e.day, s: e.sketch.encode(), v: e.version, w: e.written };
  }

  async write(): Promise<{ requests: number; failed: CounterError[] }> {
    const dirty = [...this.#entries.values()].filter((e) => e.version > e.written);
    const failed: CounterError[] = [];
    let requests = 0;
    let next = 0;
    const worker = async () => {
      while (next < dirty.length) {
        const e = dirty[next++]!;
        const version = e.version;
        const text = e.sketch.encode();
        const key = itemKey(this.table, "u", e.page, `${e.day}#${this.writer}`);
        keyParts(this.table, key);
        requests++;
        try {
          await this.client.send(
            "UpdateItem",
            {
              TableName: this.table.tableName,
              Key: dynamoKey(this.table, key),
              UpdateExpression: "SET #h = :h, #v = :v, #t = :t",
              // Versions only grow: a write overtaken by a later one (a resend on a slow network) changes nothing.
              ConditionExpression: "attribute_not_exists(#v) OR #v < :v",
              ExpressionAttributeNames: { "#h": SKETCH, "#v": SKETCH_VERSION, "#t": this.retention.ttlAttribute },
              ExpressionAttributeValues: {
                ":h": { S: text },
                ":v": { N: String(version) },
                ":t": { N: String(Math.ceil(dayExpiry(e.day, this.retention) / 1000)) },
              },
            },
            { idempotent: true, tableName: this.table.tableName },
          );
        } catch (error) {
          const err = error instanceof CounterError ? error : new CounterError("Service", String(error), { cause: error, retryable: true });
          if (err.awsType !== "ConditionalCheckFailedException") {
            // Retryable: the flush fails and is retried with backoff. Otherwise (a missing table): reported, and
            // written again with the next change or flush, never holding the counts back.
            if (err.retryable) failed.push(err);
            else this.onError(err);
            continue;
          }
        }
        e.written = Math.max(e.written, version);
        await this.storage.put({ [this.#key(e)]: this.#stored(e) });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, dirty.length) }, worker));
    await this.prune(Date.now());
    return { requests, failed };
  }

  /** Drops sketches of closed days that DynamoDB has (memory and storage). */
  async prune(now: number): Promise<void> {
    const gone: string[] = [];
    for (const [id, e] of this.#entries) {
      if (!isOpen(e.day, now) && e.version === e.written) {
        this.#entries.delete(id);
        gone.push(this.#key(e));
      }
    }
    if (gone.length > 0) await this.storage.delete(gone);
  }
}

/** Resolves the lazily built records of {@link SketchBook.add} (a sketch is encoded once per batch, however many views changed it). */
export function resolvePuts(puts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key in puts) {
    const v = puts[key];
    out[key] = typeof v === "function" ? (v as () => unknown)() : v;
  }
  return out;
}
