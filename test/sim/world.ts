// The simulator's world: a seeded random source and a virtual clock that owns every timer, Date.now and Math.random.
import { createHash, randomBytes } from "node:crypto";
import { setImmediate as realSetImmediate } from "node:timers";

/** A small, fast, seeded generator (sfc32): the same seed gives the same run, on every machine. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }
  /** A float in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** A new generator whose numbers do not depend on how many this one has given since. */
  fork(salt: number): Rng {
    return new Rng((Math.floor(this.next() * 2 ** 32) ^ Math.imul(salt, 0x9e3779b1)) >>> 0);
  }
}

/** A violated promise: what was promised, and what happened instead. */
export class SimFailure extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

interface Timer {
  id: number;
  at: number;
  order: number;
  fn: () => void;
  interval?: number;
}

/** The virtual epoch every run starts at (a fixed date, so window arithmetic is the same on every run). */
export const EPOCH = Date.UTC(2026, 10, 29, 12, 0, 0);

/**
 * Virtual time: `setTimeout`, `Date.now` and `Math.random` (and WebCrypto's digest, which otherwise settles
 * on a thread pool in no fixed order) are replaced while a run is installed, so the library's own timers,
 * backoffs and clocks all run on it. Time moves only when every promise has settled: then the earliest timer
 * fires. The order of everything is decided by the seed alone.
 */
export class World {
  now = EPOCH;
  readonly rng: Rng;
  #timers: Timer[] = [];
  #ids = 0;
  #order = 0;
  /** Timer callbacks run so far: every call's steps are bounded, so a run's are too. */
  steps = 0;
  /** Failures raised inside tasks (their own promise chains), reported by `run`. */
  readonly failures: unknown[] = [];

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  setTimeout = (fn: () => void, ms = 0, interval?: number): Timer => {
    const delay = Math.max(1, Math.floor(Number.isFinite(ms) && ms <= 2 ** 31 - 1 ? ms : 1));
    const timer: Timer = {
      id: ++this.#ids,
      at: this.now + (ms > 0 ? delay : 0),
      order: ++this.#order,
      fn,
      ...(interval ? { interval } : {}),
    };
    this.#timers.push(timer);
    return timer;
  };

  clearTimeout = (handle: unknown): void => {
    const i = this.#timers.findIndex((t) => t === handle || t.id === handle);
    if (i >= 0) this.#timers.splice(i, 1);
  };

  /** Runs `fn` at virtual time `at` (or now). */
  at(at: number, fn: () => void): void {
    this.setTimeout(fn, Math.max(0, at - this.now));
  }

  /** Runs an async task, recording (not throwing) its failure. */
  spawn(fn: () => Promise<unknown>): void {
    fn().catch((error: unknown) => this.failures.push(error));
  }

  /** Lets every queued promise callback run: a real macrotask turn comes only after the microtask queue is empty. */
  settle(): Promise<void> {
    return new Promise((resolve) => realSetImmediate(resolve));
  }

  /**
   * Fires timers in time order until none is left before `until`, letting promises settle between them.
   * Throws when more than `maxSteps` timers fire: a run whose calls are all bounded never gets there.
   */
  async run(until: number, maxSteps = 200_000): Promise<void> {
    for (;;) {
      await this.settle();
      if (this.failures.length > 0) throw this.failures[0];
      let next: Timer | undefined;
      for (const t of this.#timers) if (!next || t.at < next.at || (t.at === next.at && t.order < next.order)) next = t;
      if (!next || next.at > until) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.now = Math.max(this.now, next.at);
      if (++this.steps > maxSteps)
        throw new SimFailure("every call bounded", `more than ${maxSteps} timer steps by ${this.now - EPOCH} ms of virtual time`);
      if (next.interval) this.#timers.push({ ...next, at: this.now + next.interval, order: ++this.#order });
      next.fn();
    }
    this.now = Math.max(this.now, until);
    await this.settle();
    if (this.failures.length > 0) throw this.failures[0];
  }

  /** Timers waiting (for checks that nothing runs on in the background). */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Replaces the globals the library reads time and randomness from; returns the function that restores them. */
  install(): () => void {
    const g = globalThis as Record<string, unknown>;
    const saved = {
      setTimeout: g.setTimeout,
      clearTimeout: g.clearTimeout,
      setInterval: g.setInterval,
      clearInterval: g.clearInterval,
      now: Date.now,
      random: Math.random,
    };
    const subtle = crypto.subtle;
    const digest = subtle.digest;
    const randomUUID = crypto.randomUUID;
    const timerHandle = (t: Timer) =>
      Object.assign(t, { unref: () => t, ref: () => t, hasRef: () => false, [Symbol.toPrimitive]: () => t.id });
    g.setTimeout = (fn: () => void, ms?: number) => timerHandle(this.setTimeout(fn, ms ?? 0));
    g.clearTimeout = this.clearTimeout;
    g.setInterval = (fn: () => void, ms?: number) => timerHandle(this.setTimeout(fn, ms ?? 0, Math.max(1, ms ?? 1)));
    g.clearInterval = this.clearTimeout;
    Date.now = () => this.now;
    Math.random = () => this.rng.next();
    // WebCrypto answers from a thread pool in no fixed order; the same bytes, settled in order, keep runs exact.
    Object.defineProperty(subtle, "digest", {
      configurable: true,
      value: async (algorithm: string | { name: string }, data: BufferSource) => {
        const name = (typeof algorithm === "string" ? algorithm : algorithm.name).replace("-", "").toLowerCase();
        const bytes =
          data instanceof ArrayBuffer
            ? new Uint8Array(data)
            : new Uint8Array((data as ArrayBufferView).buffer, (data as ArrayBufferView).byteOffset, (data as ArrayBufferView).byteLength);
        const out = createHash(name).update(bytes).digest();
        return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength);
      },
    });
    Object.defineProperty(crypto, "randomUUID", {
      configurable: true,
      value: () => {
        const b = randomBytes(16);
        for (let i = 0; i < 16; i++) b[i] = Math.floor(this.rng.next() * 256);
        const h = b.toString("hex");
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
      },
    });
    return () => {
      g.setTimeout = saved.setTimeout;
      g.clearTimeout = saved.clearTimeout;
      g.setInterval = saved.setInterval;
      g.clearInterval = saved.clearInterval;
      Date.now = saved.now;
      Math.random = saved.random;
      Object.defineProperty(subtle, "digest", { configurable: true, value: digest });
      Object.defineProperty(crypto, "randomUUID", { configurable: true, value: randomUUID });
    };
  }
}
