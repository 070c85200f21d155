// A Durable Object's storage and alarm in memory: atomic puts, one alarm, and evictions that drop everything but storage.
import type { DurableState, DurableStorage } from "../../src/buffer/durable.ts";
import type { World } from "./world.ts";

/** What the object class needs to be rebuilt after an eviction, and its alarm handler. */
export interface Incarnation {
  alarm(): Promise<void>;
}

/**
 * One Durable Object: its storage outlives every incarnation; an eviction (or crash) makes the old incarnation's
 * storage calls and network answers never settle, and the next call builds a new one from storage. The alarm
 * fires on the live incarnation at its time, one handler at a time; a handler that sets a new alarm keeps it, and
 * one cut short by an eviction runs again.
 */
export class SimDurableObject<T extends Incarnation> {
  readonly data = new Map<string, unknown>();
  alarmAt: number | null = null;
  #generation = 0;
  #live: T | undefined;
  #alarmRunning = false;
  /** Alarm handlers that threw (the platform would retry them a few times; ours must never throw). */
  alarmErrors: unknown[] = [];

  constructor(
    readonly world: World,
    readonly id: string,
    readonly build: (state: DurableState, alive: () => boolean) => T,
  ) {}

  /** The live incarnation, built from storage when there is none. */
  get live(): T {
    if (!this.#live) {
      const generation = ++this.#generation;
      const alive = () => generation === this.#generation;
      this.#live = this.build(this.#state(alive), alive);
    }
    return this.#live;
  }

  /** Drops the live incarnation: its in-flight storage calls and answers never complete. */
  evict(): void {
    // An alarm whose handler did not finish is run again by the platform (after 2 s, then backing off), unless
    // the handler had already set a new one.
    if (this.#alarmRunning && this.alarmAt === null) this.#setAlarm(this.world.now + 2000);
    this.#generation++;
    this.#live = undefined;
    this.#alarmRunning = false;
  }

  #state(alive: () => boolean): DurableState {
    const never = <V>() => new Promise<V>(() => undefined);
    const world = this.world;
    const data = this.data;
    // Answers come in a later turn, as storage's do, but in order.
    const later = <V>(fn: () => V): Promise<V> => (alive() ? Promise.resolve().then(() => (alive() ? fn() : never<V>())) : never<V>());
    const storage: DurableStorage = {
      get: <V>(key: string) => later(() => structuredClone(data.get(key)) as V | undefined),
      put: (entries: Record<string, unknown>) => {
        // Applied at the call (the platform's write coalescing makes calls without an await between them atomic).
        if (alive()) for (const [k, v] of Object.entries(entries)) data.set(k, structuredClone(v));
        return later(() => undefined);
      },
      delete: (keys: string[]) => {
        let n = 0;
        if (alive()) for (const k of keys) if (data.delete(k)) n++;
        return later(() => n);
      },
      list: <V>(options: { prefix: string }) =>
        later(
          () =>
            new Map(
              [...data]
                .filter(([k]) => k.startsWith(options.prefix))
                .sort(([a], [b]) => (a < b ? -1 : 1))
                .map(([k, v]) => [k, structuredClone(v) as V]),
            ),
        ),
      getAlarm: () => later(() => this.alarmAt),
      setAlarm: (at: number) => {
        if (alive()) this.#setAlarm(Math.max(world.now, at));
        return later(() => undefined);
      },
    };
    return { id: { toString: () => this.id }, storage, blockConcurrencyWhile: (fn) => fn() };
  }

  #setAlarm(at: number): void {
    this.alarmAt = at;
    this.world.at(at, () => void this.#fire(at));
  }

  async #fire(at: number): Promise<void> {
    if (this.alarmAt !== at) return; // replaced or deleted since
    if (this.#alarmRunning) {
      // One handler at a time: the platform runs this alarm once the current one is done.
      this.world.setTimeout(() => void this.#fire(at), 5);
      return;
    }
    this.#alarmRunning = true;
    this.alarmAt = null;
    const live = this.live; // built first: building one starts a new generation
    const generation = this.#generation;
    try {
      await live.alarm();
    } catch (error) {
      this.alarmErrors.push(error);
    } finally {
      if (generation === this.#generation) this.#alarmRunning = false;
    }
  }
}
