// The flush engine both buffers share: sequence numbers, per-key retries, backoff, dead letters and close.
import { CounterError, shown } from "../core/errors.js";
import type { CounterKey, TableLayout } from "../core/keys.js";
import { addAmounts, type Amount } from "../core/numbers.js";
import { backoffDelay } from "../core/transport.js";
import { notify } from "./flush-options.js";
import type { CrowdedItem, DeadLetter, FlushErrorInfo, FlushResult } from "./results.js";
import { Coalescer, itemIdOf, slotBytes, type Location, type Slot } from "./coalescer.js";
import { writeSlots, type ItemSets, type Sender } from "./writer.js";

/** A held dead letter with where it goes, for storage and `retryDeadLetters`: at most one per key. */
export interface HeldLetter {
  letter: DeadLetter;
  at: Location;
  /** Unique per letter (storage key suffix). */
  id: string;
  /** Ids of letters for the same key merged into this one (storage written before letters were merged). */
  merged?: string[];
  /**
   * With a writer id: the sequence number of the write that died, which an earlier attempt may have applied
   * (a 500 and then AccessDenied on the resend). It is retried as it was, with this number, so that the marker
   * tells whether it is in the count already; until then its item writes nothing newer. Absent for a Conflict
   * (the marker is past it: that write can never be confirmed), for a missing table (no count to add to twice)
   * and without a writer id.
   */
  seq?: number | undefined;
}

/** What a buffer persists besides its slots. */
export interface EngineMeta {
  /** The last flush sequence number used. */
  seq: number;
  /** Consecutive failed flushes. */
  failures: number;
  /** While backing off: when the retry is due (epoch ms). */
  retryAt?: number | undefined;
}

/** Where an engine keeps its state: nothing to do in memory; Durable Object storage for the DO buffer. */
export interface EngineStore {
  /** `slots` now carry `inFlight` (moved from their pending delta). Must be durable before anything is sent. */
  assign(slots: readonly Slot[], meta: EngineMeta): Promise<void> | void;
  /** `done` slots' writes are confirmed; `dead` were set aside. */
  settle(done: readonly Slot[], dead: readonly HeldLetter[], meta: EngineMeta): Promise<void> | void;
  /** The failure count and retry time changed. */
  saveMeta(meta: EngineMeta): Promise<void> | void;
  /** `letters` were put back into their slots (`slots`), or dropped by the user when `slots` is undefined. */
  release(letters: readonly HeldLetter[], slots: readonly Slot[] | undefined): Promise<void> | void;
}

/** When the engine wants to flush next: an unref'd timer in memory, the object's alarm in a Durable Object. */
export interface Scheduler {
  set(at: number): Promise<void> | void;
  clear(): Promise<void> | void;
}

/** The clock and the timers `close()` waits with (a fake clock in the fast tests). */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Writes a buffer makes beside its counts, each flush, after them (page views: unique-visitor sketches). Their
 * failures fail the flush like a count's (backoff, the alarm rescheduled); what they hold stays theirs.
 */
export interface SideWrites {
  /** Whether something waits to be written: a restored engine schedules a flush for it. */
  readonly pending: boolean;
  /** Writes what waits. `failed` are retryable failures (the flush fails and is retried); `requests` counts every request sent. */
  write(): Promise<{ requests: number; failed: CounterError[] }>;
}

/** All the engine needs of a client: its request path and default table layout. */
export interface EngineClient extends Sender {
  readonly table: TableLayout;
}

export interface EngineConfig {
  client: EngineClient;
  writerId: string | undefined;
  concurrency: number;
  maxKeys: number;
  intervalMs: number;
  maxRetryDelayMs: number;
  maxPendingKeys: number;
  maxPendingBytes: number;
  markerWarnAt: number;
  onError: (error: CounterError, info: FlushErrorInfo) => void;
  onFlush: ((result: FlushResult) => void) | undefined;
  onDeadLetter: (letter: DeadLetter) => void;
  timers: Timers;
  scheduler: Scheduler;
  store: EngineStore | undefined;
  /** Attributes SET with every write of an item (see {@link ItemSets}). */
  sets?: ItemSets | undefined;
  /** Writes made after the counts in every flush (see {@link SideWrites}). */
  side?: SideWrites | undefined;
}

/** How long a buffer waits before retrying a failed flush: full-jitter backoff from 200 ms, at least 50 ms. */
export const flushRetryDelay = (failures: number, maxRetryDelayMs: number): number =>
  Math.min(maxRetryDelayMs, Math.max(50, backoffDelay(failures, 200, maxRetryDelayMs)));

/**
 * A flush sequence number that exceeds every earlier one of the same writer, even across restarts:
 * microseconds since the epoch (below 2^53 until the year 2255), and always past `last`. The microseconds are
 * random: two writers that wrongly share a writerId and flush in the same millisecond would otherwise always
 * take the same number, and the second write would pass for the first one's confirmation and be lost. Now that
 * takes a 1-in-1000 tie; otherwise one of them is a Conflict or both apply in turn, each once.
 */
export const nextSeq = (last: number, nowMs: number): number => Math.max(last + 1, nowMs * 1000 + Math.floor(Math.random() * 1000));

const isZero = (a: Amount) => a === 0 || a === 0n;

/**
 * The slots to write now: those with a write in progress, and of an item, only its oldest sequence number.
 * Storage written before items were written whole can hold one item's writes under two numbers; sent together,
 * the newer could land first and make the older look like a Conflict. The newer waits for the next round.
 */
function oldestWrites(round: readonly Slot[]): Slot[] {
  const oldest = new Map<string, number>();
  for (const s of round)
    if (s.inFlight !== undefined) oldest.set(itemIdOf(s), Math.min(oldest.get(itemIdOf(s)) ?? Infinity, s.inFlight.seq));
  return round.filter((s) => s.inFlight !== undefined && s.inFlight.seq === oldest.get(itemIdOf(s)));
}
const keyOf = (at: Location): CounterKey => (at.sort === undefined ? at.id : { id: at.id, sort: at.sort });

/**
 * The one implementation of the flush protocol behind `CounterBuffer` and `DurableCounterBuffer`.
 *
 * - Ordering is per key: a key has at most one write in progress (`slot.inFlight`, retried as it is, with its
 *   sequence number) and its newer adds wait for it; every other key moves on.
 * - A write that fails with a non-retryable error becomes a dead letter: reported, held, never retried by
 *   itself, never blocking the rest. With a writer id it keeps its sequence number and its item writes nothing
 *   newer until the letter is retried (as it was) or taken: an earlier attempt may have applied it, and only
 *   the same number lets the marker say so.
 * - While failing, the next attempt is due at the backoff time and nothing pulls it forward.
 * - Flushes run one at a time.
 */
export class FlushEngine {
  readonly slots: Coalescer;
  readonly #config: EngineConfig;
  #meta: EngineMeta = { seq: 0, failures: 0 };
  /** Dead letters by key (table and item coalescing references): one per key, amounts summed. */
  readonly #held = new Map<string, HeldLetter>();
  /** Letters new in this flush (or failing with a new code): the ones reported. */
  readonly #reported = new WeakSet<HeldLetter>();
  readonly #warned = new Set<string>();
  #scheduledAt: number | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  /** The flush waiting behind the running one (not started yet), which later flush() calls join. */
  #queued: Promise<FlushResult> | undefined;
  #closed = false;
  /** While close() runs: what every flush wrote, failed ones included. */
  #closing: FlushResult | undefined;

  constructor(config: EngineConfig) {
    this.#config = config;
    this.slots = new Coalescer(config.client.table);
    this.slots.maxSize = config.maxPendingKeys;
    this.slots.maxBytes = config.maxPendingBytes;
  }

  /** Distinct keys waiting (a write in progress included; dead letters not). */
  get pending(): number {
    return this.slots.size;
  }

  /** Items whose newer adds wait for a dead letter's write to be retried or taken (see {@link HeldLetter.seq}). */
  #blocked(): Set<string> {
    const items = new Set<string>();
    for (const h of this.#held.values()) if (h.seq !== undefined) items.add(itemIdOf(h.at));
    return items;
  }

  /** Keys a flush can write now: those not waiting behind a dead letter. */
  #writable(): number {
    const blocked = this.#blocked();
    if (blocked.size === 0) return this.slots.size;
    let n = 0;
    for (const s of this.slots.slots()) if (!blocked.has(itemIdOf(s))) n++;
    return n;
  }

  /** The sum of everything waiting. */
  get unwritten(): Amount {
    let total: Amount = 0;
    for (const s of this.slots.slots()) total = addAmounts(addAmounts(total, s.delta), s.inFlight?.delta ?? 0);
    return total;
  }

  /** The held letters of one slot (its table, item and count attribute). */
  heldAt(at: Pick<Location, "tableRef" | "itemRef">): HeldLetter[] {
    return [...this.#held.values()].filter((h) => h.at.tableRef === at.tableRef && h.at.itemRef === at.itemRef);
  }

  /** Held dead letters, oldest first. */
  get deadLetters(): readonly DeadLetter[] {
    return [...this.#held.values()].map((h) => h.letter);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Restores what storage held (Durable Object restart). */
  restore(meta: EngineMeta | undefined, letters: readonly HeldLetter[], scheduledAt: number | undefined): void {
    if (meta) this.#meta = { ...meta };
    for (const h of letters) this.#hold(h, true);
    this.#scheduledAt = scheduledAt;
  }

  /** After a restore: work found in storage gets a flush even if its alarm was lost (at the backoff time, if one was running). */
  resume(): Promise<void> | void {
    if ((this.slots.size === 0 && !this.#config.side?.pending) || this.#scheduledAt !== undefined) return;
    return this.#schedule(Math.max(this.#config.timers.now(), this.#meta.retryAt ?? 0), true);
  }

  /** After an add: make sure a flush is scheduled; never pulls a backoff forward. */
  scheduleFlush(): Promise<void> | void {
    if (this.#closed || this.#meta.retryAt !== undefined) return;
    const now = this.#config.timers.now();
    // A flush that has not started yet takes this add, so maxKeys pulls nothing forward then (else every add at
    // maxKeys during a flush queued one more flush: thousands a second under load). The add still gets a
    // wake-up of its own, once: a Durable Object evicted before that flush ran keeps only its storage and alarm.
    const at = this.#queued === undefined && this.slots.size >= this.#config.maxKeys ? now : now + this.#config.intervalMs;
    // The common case, checked here so that an add costs no promise: a flush is already due by then.
    if (this.#scheduledAt !== undefined && this.#scheduledAt <= at) return;
    return this.#schedule(at, false);
  }

  /** The scheduled time came (timer or alarm): flush, reporting failures through onError only. */
  async wake(): Promise<void> {
    this.#scheduledAt = undefined;
    await this.flush().catch(() => undefined);
  }

  /**
   * Writes every slot (retries first-class with new adds) and resolves to what was written. At most one flush
   * runs and one waits: a call while one waits joins it (it has not started, so it takes every add made before
   * the call), so a call waits for at most two flushes whatever the add rate.
   */
  flush(): Promise<FlushResult> {
    if (this.#queued) return this.#queued;
    const run = this.exclusive(() => {
      this.#queued = undefined;
      return this.#flushNow();
    });
    this.#queued = run;
    return run;
  }

  /** Runs `fn` when no flush is running, and keeps flushes out until it settles. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Stops automatic flushing (timers and alarms); `flush()` still works. */
  async stop(): Promise<void> {
    this.#closed = true;
    this.#scheduledAt = undefined;
    await this.#config.scheduler.clear();
  }

  /**
   * Stops automatic flushing, then flushes with backoff until nothing is pending or `timeoutMs` passes.
   * Rejects with what is still unwritten (which stays here for a later `flush()`), or when dead letters
   * are held.
   */
  async close(timeoutMs: number): Promise<FlushResult> {
    await this.stop();
    const { timers } = this.#config;
    const deadline = timers.now() + timeoutMs;
    const total: FlushResult = (this.#closing = { keys: 0, requests: 0, total: 0 });
    let lastError: unknown;
    let run: Promise<unknown> = Promise.resolve();
    while (this.#writable() > 0) {
      const left = deadline - timers.now();
      if (left <= 0) break;
      try {
        await this.#within((run = this.flush()), left);
      } catch (error) {
        lastError = error;
      }
      if (this.#writable() === 0) break;
      const wait = Math.min(flushRetryDelay(Math.max(1, this.#meta.failures), this.#config.maxRetryDelayMs), deadline - timers.now());
      if (wait > 0) await new Promise<void>((resolve) => timers.setTimeout(resolve, wait));
    }
    // A write still on the wire at the deadline is let finish (its own timeout bounds it), so that nothing runs
    // in the background once close() has answered, and so that the answer is decided on what it did: a close()
    // that rejected although everything was written would make a caller who replays on rejection count twice.
    await run.catch(() => undefined);
    if (this.#writable() > 0) {
      const last = lastError instanceof CounterError ? ` Last error: ${lastError.code}: ${lastError.message}` : "";
      throw new CounterError(
        "Timeout",
        `close() gave up after ${timeoutMs} ms (timeoutMs): ${this.pending} keys with a total of ${String(this.unwritten)} are still ` +
          `unwritten. They stay in the buffer: a later flush() writes them${this.#config.writerId ? " (exactly once)" : ""}.${last}`,
        { retryable: true, cause: lastError },
      );
    }
    if (this.#held.size > 0) {
      const held = [...this.#held.values()];
      const first = held[0]!.letter.error;
      throw new CounterError(
        first.code,
        `close(): everything else is written, but ${held.length} dead letters are held (see deadLetters; ` +
          `retryDeadLetters() puts them back)${this.pending > 0 ? ` and ${this.pending} keys wait behind them` : ""}. First: ${first.message}`,
        { cause: first, ambiguous: held.some((h) => h.letter.error.ambiguous) },
      );
    }
    return total;
  }

  /** Puts every dead letter back as a pending add (after fixing what failed) and schedules a flush. */
  async retryDeadLetters(): Promise<number> {
    return this.exclusive(async () => {
      const letters = this.#release();
      const slots = letters.map((h) => {
        if (h.seq === undefined) return this.slots.merge(h.at, h.letter.amount, true);
        // The write as it was: its marker says whether an earlier attempt applied it (then it counts once).
        const slot = this.slots.find(h.at) ?? this.slots.merge(h.at, 0, true);
        slot.inFlight = { seq: h.seq, delta: h.letter.amount };
        return slot;
      });
      await this.#config.store?.release(letters, slots);
      if (letters.length > 0) await this.scheduleFlush();
      return letters.length;
    });
  }

  /**
   * Removes and returns every dead letter: the caller takes them over. A letter whose write carried a marker
   * may have been applied by an earlier attempt: its error is then ambiguous (only retryDeadLetters can tell).
   */
  async takeDeadLetters(): Promise<DeadLetter[]> {
    return this.exclusive(async () => {
      const letters = this.#release();
      await this.#config.store?.release(letters, undefined);
      if (letters.length > 0 && this.slots.size > 0) await this.scheduleFlush(); // what waited behind them
      return letters.map(({ letter, seq }) => {
        const { error } = letter;
        if (seq === undefined || error.ambiguous) return letter;
        const ambiguous = new CounterError(error.code, `${error.message}; an earlier attempt of this write may have been applied`, {
          ...error,
          ambiguous: true,
          cause: error,
        });
        return { ...letter, error: ambiguous };
      });
    });
  }

  #within<T>(promise: Promise<T>, ms: number): Promise<T> {
    const { timers } = this.#config;
    let handle: unknown;
    const deadline = new Promise<never>((_, reject) => {
      handle = timers.setTimeout(() => reject(new CounterError("Timeout", "close() deadline passed during a flush")), ms);
    });
    return Promise.race([promise, deadline]).finally(() => timers.clearTimeout(handle));
  }

  async #flushNow(): Promise<FlushResult> {
    const { client, store, timers } = this.#config;
    const result: FlushResult = { keys: 0, requests: 0, total: 0 };
    const errors: CounterError[] = [];
    const dead: HeldLetter[] = [];
    const written = new Set<string>();
    let failedKeys = 0;
    let ambiguous = false;
    let round = [...this.slots.slots()];
    // Items retried in this flush may write their newer adds in a second round once the retry is confirmed.
    const retried = new Set(round.filter((s) => s.inFlight !== undefined).map(itemIdOf));
    let seq: number | undefined;
    for (let r = 0; r < 2 && round.length > 0; r++) {
      // An item with a write in progress writes nothing new until that write is confirmed: its marker would
      // take the newer seq first, and the retry would then look like a Conflict.
      // (Every slot counts, not only this round's: an item may still hold an older write left for the next round.)
      const blocked = this.#blocked();
      const busy = new Set(blocked);
      for (const s of this.slots.slots()) if (s.inFlight !== undefined) busy.add(itemIdOf(s));
      const fresh = round.filter((s) => s.inFlight === undefined && !busy.has(itemIdOf(s)));
      if (fresh.length > 0) {
        seq ??= this.#meta.seq = nextSeq(this.#meta.seq, timers.now());
        for (const s of fresh) {
          s.inFlight = { seq, delta: s.delta };
          s.delta = 0;
        }
        // Durable before sending: a restart must retry these with this seq, never re-send them with a new one.
        await store?.assign(fresh, this.#meta);
      }
      // An item behind a dead letter sends nothing, not even an older write in progress (storage of 0.1 can hold
      // two): applied first, it would put the marker past the letter's number.
      const sendable = blocked.size === 0 ? round : round.filter((s) => !blocked.has(itemIdOf(s)));
      const { results, requests } = await writeSlots(client, oldestWrites(sendable), {
        writerId: this.#config.writerId,
        concurrency: this.#config.concurrency,
        sets: this.#config.sets,
      });
      result.requests += requests;
      const done: Slot[] = [];
      const deadNow: HeldLetter[] = [];
      for (const res of results) {
        const { slot } = res;
        const inFlight = slot.inFlight!;
        if (res.status === "failed") {
          errors.push(res.error);
          failedKeys++;
          ambiguous ||= res.error.ambiguous;
          continue;
        }
        slot.inFlight = undefined;
        if (res.status === "done") {
          if (!isZero(inFlight.delta)) {
            written.add(itemIdOf(slot));
            result.total = addAmounts(result.total, inFlight.delta);
          }
          if (res.markers !== undefined && res.markers > this.#config.markerWarnAt) this.#crowded(result, slot, res.markers);
          done.push(slot);
        } else {
          const letter: DeadLetter = {
            key: keyOf(slot),
            tableName: slot.table.tableName,
            countAttribute: slot.table.countAttribute,
            amount: inFlight.delta,
            error: res.error,
          };
          // Kept unless nothing can be in the count: a Conflict's marker is past it, a missing table holds no count.
          const retriable = this.#config.writerId !== undefined && res.error.code !== "Conflict" && res.error.code !== "TableNotFound";
          const seq = retriable ? inFlight.seq : undefined;
          // One letter per key: a key failing again adds to its letter (a fresh id only for the first).
          deadNow.push(this.#hold({ letter, at: slot, id: crypto.randomUUID(), seq }));
        }
        if (isZero(slot.delta)) this.slots.delete(slot);
      }
      dead.push(...deadNow);
      await store?.settle(done, deadNow, this.#meta);
      // The second round: what waited behind a retried item whose write is now confirmed.
      const confirmed = new Set(done.map(itemIdOf).filter((id) => retried.has(id)));
      round =
        confirmed.size === 0
          ? []
          : [...this.slots.slots()].filter((s) => s.inFlight === undefined && !isZero(s.delta) && confirmed.has(itemIdOf(s)));
    }
    if (this.#config.side?.pending) {
      const side = await this.#config.side.write();
      result.requests += side.requests;
      errors.push(...side.failed);
      failedKeys += side.failed.length;
      ambiguous ||= side.failed.some((e) => e.ambiguous);
    }
    result.keys = written.size;
    if (this.#closing) {
      this.#closing.keys += result.keys;
      this.#closing.requests += result.requests;
      this.#closing.total = addAmounts(this.#closing.total, result.total);
    }
    if (dead.length > 0) {
      result.deadLetters = dead.length;
      // Once per key and failure code: a key that keeps failing the same way is one report, not one a flush.
      for (const h of dead) if (this.#reported.has(h)) notify(this.#config.onDeadLetter, h.letter);
    }
    if (errors.length > 0) {
      this.#meta.failures++;
      const retryInMs = flushRetryDelay(this.#meta.failures, this.#config.maxRetryDelayMs);
      this.#meta.retryAt = timers.now() + retryInMs;
      await store?.saveMeta(this.#meta);
      if (!this.#closed) await this.#schedule(this.#meta.retryAt, true);
      notify(this.#config.onError, errors[0]!, { keys: failedKeys, ambiguous, failures: this.#meta.failures, retryInMs });
      throw errors[0]!;
    }
    if (this.#meta.failures !== 0 || this.#meta.retryAt !== undefined) {
      this.#meta.failures = 0;
      this.#meta.retryAt = undefined;
      await store?.saveMeta(this.#meta);
    }
    // Adds that arrived during the flush wait for their own interval (those behind a dead letter wait for it).
    if (this.#writable() > 0) await this.scheduleFlush();
    notify(this.#config.onFlush, result);
    return result;
  }

  /** Holds `h`, or adds it to the letter already held for its key; returns the letter held. Counts its memory. */
  #hold(h: HeldLetter, restoring = false): HeldLetter {
    // A letter that is a write to retry as it was (a seq) is never merged with another: each keeps its number.
    const id = `${h.at.tableRef}\n${h.at.itemRef}${h.seq === undefined ? "" : `\n${h.id}`}`;
    const held = this.#held.get(id);
    if (held === undefined) {
      this.#held.set(id, h);
      this.slots.heldBytes += slotBytes(h.at);
      if (!restoring) this.#reported.add(h);
      return h;
    }
    held.letter.amount = addAmounts(held.letter.amount, h.letter.amount);
    if (!restoring && held.letter.error.code !== h.letter.error.code) this.#reported.add(held);
    else this.#reported.delete(held);
    held.letter.error = h.letter.error; // the latest reason
    // Storage written before letters were merged may hold several records for one key: all go when it does.
    if (restoring) (held.merged ??= []).push(h.id, ...(h.merged ?? []));
    return held;
  }

  /** Takes every held letter out. */
  #release(): HeldLetter[] {
    const letters = [...this.#held.values()];
    this.#held.clear();
    this.slots.heldBytes = 0;
    return letters;
  }

  #crowded(result: FlushResult, slot: Slot, markers: number): void {
    const item: CrowdedItem = { key: keyOf(slot), tableName: slot.table.tableName, markers };
    (result.crowded ??= []).push(item);
    const id = `${slot.tableRef}\n${slot.itemRef}`;
    if (this.#config.onFlush === undefined && !this.#warned.has(id) && this.#warned.size < 1000) {
      this.#warned.add(id);
      console.warn(
        `dynacount: item ${shown(slot.id)} in table "${slot.table.tableName}" carries ${markers} exactly-once markers (one per writerId ` +
          `that ever flushed it); past ~1 KB every update costs 2 write units. Route each key to one writer (e.g. one Durable Object per key).`,
      );
    }
  }

  async #schedule(at: number, force: boolean): Promise<void> {
    if (this.#closed) return;
    if (!force && this.#scheduledAt !== undefined && this.#scheduledAt <= at) return;
    this.#scheduledAt = at;
    await this.#config.scheduler.set(at);
  }
}
