// The Durable Object buffer: the flush engine over the object's storage and alarm.
import type { CounterClient } from "../core/client.js";
import { shown } from "../core/errors.js";
import type { CounterKey, TableOptions } from "../core/keys.js";
import { addAmounts, wireToValue, type Amount, type CounterValue, type NumberMode } from "../core/numbers.js";
import { lazy, parseOptions } from "../core/options.js";
import { DurableSlotStore, storageSuffix, type DurableStorage } from "./durable-store.js";
import { FlushEngine } from "./engine.js";
import { markerAttribute, readMarker } from "./writer.js";
import { flushOptionsShape, flushSettings, type FlushOptions } from "./flush-options.js";
import type { DeadLetter, FlushResult } from "./results.js";

export type { DurableStorage } from "./durable-store.js";
export type { FlushOptions } from "./flush-options.js";
export type { DeadLetter, FlushResult } from "./results.js";

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
  readonly #store: DurableSlotStore;
  readonly #client: CounterClient<M>;
  readonly #engine: FlushEngine;
  readonly #ready: Promise<void>;
  /** This object's exactly-once marker attribute. */
  readonly #marker: string;

  constructor(state: DurableState, client: CounterClient<M>, options: DurableBufferOptions = {}) {
    const o = parseOptions(optionsShape, options, "durable buffer");
    this.#store = new DurableSlotStore(state.storage);
    this.#client = client;
    const storage = state.storage;
    const writerId = `do-${state.id.toString()}`;
    this.#marker = markerAttribute(writerId);
    this.#engine = new FlushEngine({
      client: client as CounterClient<NumberMode>,
      writerId,
      ...flushSettings(o, 5000),
      scheduler: { set: (at) => storage.setAlarm(at), clear: () => undefined },
      store: this.#store,
    });
    this.#ready = state.blockConcurrencyWhile(async () => {
      const { meta, letters, alarm } = await this.#store.load(this.#engine.slots);
      this.#engine.restore(meta, letters, alarm);
      // Work left by an earlier incarnation gets an alarm even if the old one was lost.
      await this.#engine.resume();
    });
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
    const suffix = await storageSuffix(at);
    // From here to the put nothing awaits, so a flush cannot move the delta between the two.
    const slot = this.#engine.slots.merge(at, by);
    await Promise.all([this.#store.putPending(slot, suffix), this.#engine.scheduleFlush()]);
  }

  /**
   * DynamoDB's value of `key` plus what is still pending here. A write that DynamoDB applied but this object
   * has not seen confirmed (its answer was lost) is counted once: the item's marker tells whether it is in. So
   * is a dead letter's write that will be retried as it was; a `Conflict`'s amount is left out (it may or may not
   * be in the count).
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
      const marker = Number(item[this.#marker]?.N ?? -1);
      const applied = slot?.inFlight !== undefined && marker >= slot.inFlight.seq;
      let sum = addAmounts(addAmounts(stored, slot?.delta ?? 0), applied ? 0 : (slot?.inFlight?.delta ?? 0));
      for (const h of this.#engine.heldAt(at)) if (h.seq !== undefined && marker < h.seq) sum = addAmounts(sum, h.letter.amount);
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
}
