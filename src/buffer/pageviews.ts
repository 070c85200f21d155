// The Durable Object page-view recorder: views coalesced per page and bucket in storage, flushed exactly-once by the alarm.
import { chunks } from "../core/chunks.js";
import type { CounterClient } from "../core/client.js";
import { CounterError, validationError } from "../core/errors.js";
import type { TableLayout } from "../core/keys.js";
import { addAmounts, type NumberMode } from "../core/numbers.js";
import { int, lazy, parseOptions, positiveInt, text, timerMs, typed, type Shape } from "../core/options.js";
import { dayAttribute, hourAttribute, hourOf, monthOf } from "../usecases/pageviews/buckets.js";
import {
  DAY_TOTAL,
  DEFAULT_DAILY_DAYS,
  DEFAULT_HOURLY_DAYS,
  DEFAULT_TTL_ATTRIBUTE,
  itemKey,
  itemSets,
  OTHER_PAGE,
  shortWriter,
  TOTAL,
  type Kind,
  type Retention,
} from "../usecases/pageviews/layout.js";
import { isOpen, pageTag, resolvePuts, SketchBook } from "../usecases/pageviews/sketches.js";
import { checkViews, type CheckedView, type PageView } from "../usecases/pageviews/views.js";
import { hashBits, hashVisitor, isHashed } from "../usecases/pageviews/visitor.js";
import type { Location, Slot } from "./coalescer.js";
import { DurableSlotStore, storageSuffix, type DurableStorage } from "./durable-store.js";
import type { DurableState } from "./durable.js";
import { FlushEngine } from "./engine.js";
import { flushOptionsShape, flushSettings, notify, type FlushOptions } from "./flush-options.js";
import type { DeadLetter, FlushResult } from "./results.js";

export type { PageView } from "../usecases/pageviews/views.js";

/** Options of {@link DurablePageViews}.
 *
 * @example
 * ```ts
 * new DurablePageViews(this.ctx, client, { secret: env.PAGEVIEWS_SECRET, flushIntervalMs: 10_000, hourlyRetentionDays: 60 });
 * ```
 */
export interface DurablePageViewsOptions extends FlushOptions {
  /**
   * The key visitors are hashed with (HMAC-SHA-256 of the day and the visitor), at least 16 characters, the same
   * in every object and tracker. Required while `uniques` is on. Keep it secret: with it, a guessed visitor (an IP
   * and user agent) can be tested against the sketches.
   */
  secret?: string;
  /** Count unique visitors per page and day (a sketch per object, merged on read). @default true */
  uniques?: boolean;
  /** The table's TTL attribute (epoch seconds), shared with the rate limiter's. @default "expiresAt" */
  ttlAttribute?: string;
  /** Days a day item (hourly counts, the day's total, `top` and uniques) lives after its day ends. @default 35 */
  hourlyRetentionDays?: number;
  /** Days a month item (daily counts) lives after its month ends. @default 400 */
  dailyRetentionDays?: number;
  /** Distinct pages this object counts per day; views of further pages count as the page "(other)". @default 1000 */
  maxPages?: number;
  /** Batch ids remembered for `record(views, batchId)` (the oldest are forgotten first). @default 10000 */
  maxBatchIds?: number;
  /** How long a batch id is remembered, at most. @default 86400000 (a day) */
  batchIdTtlMs?: number;
}

const shape = /* @__PURE__ */ lazy(
  (): Shape => ({
    ...flushOptionsShape(),
    secret: text(16, 4096),
    uniques: typed("boolean"),
    ttlAttribute: text(1, 255),
    hourlyRetentionDays: int(1, 36_500),
    dailyRetentionDays: int(1, 36_500),
    maxPages: positiveInt(),
    maxBatchIds: int(0, 1_000_000),
    batchIdTtlMs: timerMs(),
  }),
);

const BATCH = "pvb:";
const PAGES = "pvp:";
/** Durable Object storage's KV calls take at most 128 keys each. */
const MAX_KV_KEYS = 128;

/** Where one view's counts go: the day item's hour and total, the month item's day and total, the lifetime total. */
const countsOf = (v: CheckedView): Array<[Kind, string | undefined, string]> => [
  ["d", v.day, hourAttribute(hourOf(v.at))],
  ["d", v.day, DAY_TOTAL],
  ["m", monthOf(v.at), dayAttribute(Number(v.day.slice(8)))],
  ["m", monthOf(v.at), TOTAL],
  ["t", undefined, TOTAL],
];

/**
 * Page views inside a Durable Object. `record` stores the views' counts (coalesced per page and bucket) and
 * visitor sketches in the object's storage before it resolves; the alarm writes them to DynamoDB exactly-once
 * (the writer is the object's id): per page and flush, one `UpdateItem` of the day item (24 hourly counts and
 * the day's total), one of the month item (daily counts), one of the lifetime item, and the sketch when it
 * changed. `PageViews` reads them anywhere. Visitors are hashed with `secret` before anything is stored.
 *
 * @example
 * ```ts
 * import { DurableObject } from "cloudflare:workers";
 * import { CounterClient } from "dynacount";
 * import { DurablePageViews, type PageView } from "dynacount/durable-object";
 *
 * export class PageViewsObject extends DurableObject<Env> {
 *   views = new DurablePageViews(this.ctx, new CounterClient({ env: this.env }), { secret: this.env.PAGEVIEWS_SECRET });
 *   async record(views: PageView[], batchId?: string) { await this.views.record(views, batchId); }
 *   async flush() { return this.views.flush(); }
 *   async alarm(info?: AlarmInvocationInfo) { await this.views.alarm(info); }
 * }
 * ```
 */
export class DurablePageViews {
  readonly #storage: DurableStorage;
  readonly #table: TableLayout;
  readonly #store: DurableSlotStore;
  readonly #engine: FlushEngine;
  readonly #sketches: SketchBook | undefined;
  readonly #secret: string | undefined;
  readonly #ready: Promise<void>;
  readonly #maxPages: number;
  readonly #maxBatchIds: number;
  readonly #batchTtl: number;
  /** Batch ids recorded, oldest first, with when and the promise of their storage write. */
  readonly #batches = new Map<string, { at: number; done: Promise<void> }>();
  /** Pages counted per day (for the cap), as stored. */
  readonly #pages = new Map<string, Set<string>>();
  /** Locations and storage suffixes of count slots, validated once (bounded). */
  readonly #locations = new Map<string, { at: Location; suffix: string }>();

  constructor(state: DurableState, client: CounterClient<NumberMode>, options: DurablePageViewsOptions = {}) {
    const o = parseOptions(shape, options, "page views");
    const uniques = o.uniques ?? true;
    if (uniques && o.secret === undefined) {
      throw new CounterError(
        "Config",
        `DurablePageViews counts unique visitors (uniques: true, the default) and needs a "secret" to hash them with: ` +
          `pass { secret: env.PAGEVIEWS_SECRET } (e.g. from \`openssl rand -base64 32\`, the same in every object and tracker), or { uniques: false }`,
      );
    }
    this.#secret = o.secret;
    this.#storage = state.storage;
    this.#table = client.table;
    this.#store = new DurableSlotStore(state.storage);
    this.#maxPages = o.maxPages ?? 1000;
    this.#maxBatchIds = o.maxBatchIds ?? 10_000;
    this.#batchTtl = o.batchIdTtlMs ?? 86_400_000;
    const retention: Retention = {
      ttlAttribute: o.ttlAttribute ?? DEFAULT_TTL_ATTRIBUTE,
      hourlyDays: o.hourlyRetentionDays ?? DEFAULT_HOURLY_DAYS,
      dailyDays: o.dailyRetentionDays ?? DEFAULT_DAILY_DAYS,
    };
    const writerId = `do-${state.id.toString()}`;
    const settings = flushSettings(o, 5000);
    this.#sketches = uniques
      ? new SketchBook(state.storage, client, client.table, shortWriter(writerId), retention, settings.concurrency, (e) =>
          notify(settings.onError, e, { keys: 1, ambiguous: false, failures: 0, retryInMs: 0 }),
        )
      : undefined;
    this.#engine = new FlushEngine({
      client,
      writerId,
      ...settings,
      scheduler: { set: (at) => state.storage.setAlarm(at), clear: () => undefined },
      store: this.#store,
      sets: (at) => itemSets(at.id, at.sort, retention),
      side: this.#sketches,
    });
    this.#ready = state.blockConcurrencyWhile(async () => {
      const [{ meta, letters, alarm }, batches, pages] = await Promise.all([
        this.#store.load(this.#engine.slots),
        this.#storage.list<number>({ prefix: BATCH }),
        this.#storage.list<string>({ prefix: PAGES }),
        this.#sketches?.load(),
      ]);
      // Oldest first, as they are forgotten.
      for (const [key, at] of [...batches].sort((a, b) => a[1] - b[1]))
        this.#batches.set(key.slice(BATCH.length), { at, done: Promise.resolve() });
      for (const [key, page] of pages) this.#pagesOf(key.slice(PAGES.length, PAGES.length + 10)).add(page);
      this.#engine.restore(meta, letters, alarm);
      // Work left by an earlier incarnation (counts or sketches) gets an alarm even if the old one was lost.
      await this.#engine.resume();
    });
  }

  /** Items waiting here for the next flush (each once; dead letters not). */
  get pending(): number {
    return this.#engine.pending;
  }

  /** Writes set aside after a non-retryable failure (kept in storage until `retryDeadLetters()` or `takeDeadLetters()`). */
  get deadLetters(): readonly DeadLetter[] {
    return this.#engine.deadLetters;
  }

  /**
   * Records `views`: their counts and visitors are in the object's storage when it resolves, and the alarm
   * writes them. With a `batchId` (a random id per batch, the same when resending one whose RPC failed) a batch
   * is recorded once however often it is sent, within the last `maxBatchIds` ids and `batchIdTtlMs`.
   *
   * @example
   * ```ts
   * await this.views.record([{ page: "/home", visitor: "203.0.113.9\nMozilla/5.0 …" }], crypto.randomUUID());
   * ```
   */
  async record(views: readonly PageView[], batchId?: string): Promise<void> {
    await this.#ready;
    const now = Date.now();
    if (batchId !== undefined && (typeof batchId !== "string" || batchId.length === 0 || batchId.length > 256)) {
      throw validationError(
        `batchId must be a string of 1 to 256 characters, got ${typeof batchId === "string" ? `${batchId.length} characters` : typeof batchId}`,
      );
    }
    const checked = checkViews(views, now);
    const known = batchId === undefined ? undefined : this.#batches.get(batchId);
    if (known) return known.done;
    // Visitors are hashed before anything is stored (a tracker with the secret sends them hashed already).
    const secret = this.#secret;
    const hashes = this.#sketches
      ? await Promise.all(
          checked.map((v) =>
            v.visitor === undefined || !isOpen(v.day, now)
              ? undefined
              : isHashed(v.visitor)
                ? v.visitor
                : hashVisitor(secret!, v.day, v.visitor),
          ),
        )
      : [];
    // Every slot a view may take, for its page and for "(other)" (the cap is decided below, without an await).
    const wanted = new Map<string, [Kind, string | undefined, string, string]>();
    for (const v of checked) {
      for (const page of [v.page, OTHER_PAGE])
        for (const [kind, period, attribute] of countsOf(v))
          wanted.set(slotId(kind, period, page, attribute), [kind, period, page, attribute]);
    }
    const found = new Map<string, { at: Location; suffix: string }>();
    await Promise.all(
      [...wanted].map(async ([id, [kind, period, page, attribute]]) =>
        found.set(id, await this.#locate(id, kind, period, page, attribute)),
      ),
    );

    // From here to the storage writes nothing awaits: a flush cannot move a delta between merge and put.
    const again = batchId === undefined ? undefined : this.#batches.get(batchId);
    if (again) return again.done;
    const puts: Record<string, unknown> = {};
    const deletes: string[] = [];
    const merged: Array<[Slot, string]> = [];
    const pages = checked.map((v) => this.#admit(v.page, v.day, puts, deletes));
    try {
      checked.forEach((v, i) => {
        for (const [kind, period, attribute] of countsOf(v)) {
          const { at, suffix } = found.get(slotId(kind, period, pages[i]!, attribute))!;
          merged.push([this.#engine.slots.merge(at, 1), suffix]);
        }
      });
    } catch (error) {
      // BufferFull part-way: undo what this call merged, so nothing unstored is ever flushed.
      for (const [slot] of merged) slot.delta = addAmounts(slot.delta, -1);
      throw error;
    }
    checked.forEach((v, i) => {
      const hash = hashes[i];
      if (hash !== undefined) this.#sketches!.add(pages[i]!, v.day, ...hashBits(hash), puts);
    });
    if (batchId !== undefined) {
      puts[BATCH + batchId] = now;
      this.#forgetBatches(now, deletes);
    }
    const slots = new Map(merged);
    const writes: Array<Promise<unknown>> = [...slots].map(([slot, suffix]) => this.#store.putPending(slot, suffix));
    for (const c of chunks(Object.entries(resolvePuts(puts)), MAX_KV_KEYS)) writes.push(this.#storage.put(Object.fromEntries(c)));
    for (const c of chunks(deletes, MAX_KV_KEYS)) writes.push(this.#storage.delete(c));
    writes.push(Promise.resolve(this.#engine.scheduleFlush()));
    const done = Promise.all(writes).then(() => undefined);
    if (batchId !== undefined) this.#batches.set(batchId, { at: now, done });
    await done;
  }

  /** The object's alarm handler: flushes exactly-once; never throws (a failure reschedules the alarm with backoff). */
  async alarm(_info?: { retryCount: number; isRetry: boolean }): Promise<void> {
    await this.#ready;
    await this.#engine.wake();
  }

  /** Writes everything recorded here now. Rejects (and reschedules the alarm) when some write failed. */
  async flush(): Promise<FlushResult> {
    await this.#ready;
    return this.#engine.flush();
  }

  /** Puts every dead letter back to be written again, once the cause is fixed; returns how many. */
  async retryDeadLetters(): Promise<number> {
    await this.#ready;
    return this.#engine.retryDeadLetters();
  }

  /** Removes and returns every dead letter (from storage too): the caller takes them over. */
  async takeDeadLetters(): Promise<DeadLetter[]> {
    await this.#ready;
    return this.#engine.takeDeadLetters();
  }

  /** The page a view of `page` on `day` counts as: itself, or "(other)" past `maxPages` new pages that day. */
  #admit(page: string, day: string, puts: Record<string, unknown>, deletes: string[]): string {
    const pages = this.#pagesOf(day);
    if (pages.has(page)) return page;
    if (pages.size >= this.#maxPages && page !== OTHER_PAGE) return OTHER_PAGE;
    pages.add(page);
    puts[`${PAGES}${day}:${pageTag(page)}`] = page;
    if (this.#pages.size > 3) this.#prunePages(day, deletes);
    return page;
  }

  #pagesOf(day: string): Set<string> {
    let pages = this.#pages.get(day);
    if (pages === undefined) this.#pages.set(day, (pages = new Set()));
    return pages;
  }

  /** Keeps the page lists of the three latest days (a view for an older day starts its list afresh). */
  #prunePages(current: string, deletes: string[]): void {
    const days = [...this.#pages.keys()].sort().reverse();
    for (const day of days.slice(3)) {
      if (day === current) continue;
      for (const page of this.#pages.get(day)!) deletes.push(`${PAGES}${day}:${pageTag(page)}`);
      this.#pages.delete(day);
    }
  }

  #forgetBatches(now: number, deletes: string[]): void {
    for (const [id, b] of this.#batches) {
      if (this.#batches.size < this.#maxBatchIds && b.at > now - this.#batchTtl) break;
      this.#batches.delete(id);
      deletes.push(BATCH + id);
    }
  }

  async #locate(
    id: string,
    kind: Kind,
    period: string | undefined,
    page: string,
    attribute: string,
  ): Promise<{ at: Location; suffix: string }> {
    const known = this.#locations.get(id);
    if (known) return known;
    const at = this.#engine.slots.locate(itemKey(this.#table, kind, page, period), 0, { countAttribute: attribute });
    const entry = { at, suffix: await storageSuffix(at) };
    if (this.#locations.size >= 50_000) this.#locations.clear();
    this.#locations.set(id, entry);
    return entry;
  }
}

const slotId = (kind: Kind, period: string | undefined, page: string, attribute: string) =>
  `${kind}\n${period ?? ""}\n${attribute}\n${page}`;
