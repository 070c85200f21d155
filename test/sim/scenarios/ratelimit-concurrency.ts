// The rate-limit scenario's ConcurrencyLimiter part: holders on skewed clocks under faults; never over the limit, freed slots taken again.
import { ConcurrencyLimiter, CounterError, type ConcurrencySlot } from "../../../src/index.ts";
import { check, checkNoSecrets, TABLE, type Sim, type Step } from "../scenario.ts";
import type { Rng } from "../world.ts";

export interface ConcurrencyConfig {
  limit: number;
  leaseMs: number;
  /** Each instance's clock error in ms (within the tolerance the guarantee is stated for). */
  skews: number[];
  identifiers: string[];
  atLeastOnce: boolean;
  /** The clients' timeout: a short one makes renewals time out and be resent behind later ones. */
  timeoutMs: number;
}

/** A successful acquire, and the spans (true time) in which its holder may count on its slot. */
interface Holder {
  identifier: string;
  slot: ConcurrencySlot;
  spans: Array<[number, number]>;
  /** When its release began (true time): the holder stops using the slot then, whatever the answer. */
  releasedAt?: number;
}

/** A concurrency part for a plan, or undefined (then it draws nothing more). */
export function planConcurrency(rng: Rng, times: (n: number) => number[]): { config: ConcurrencyConfig; steps: Step[] } | undefined {
  if (!rng.chance(0.5)) return undefined;
  const leaseMs = rng.pick([200, 1000, 5000]);
  const skewed = rng.chance(0.3);
  const config: ConcurrencyConfig = {
    limit: rng.int(1, 4),
    leaseMs,
    // Clocks within a third of the lease each way: holders keep their slot to themselves for leaseMs − spread.
    skews: Array.from({ length: rng.int(1, 3) }, () => (skewed ? rng.int(-Math.floor(leaseMs / 3), Math.floor(leaseMs / 3)) : 0)),
    identifiers: ["c1", "c2"].slice(0, rng.int(1, 2)),
    atLeastOnce: rng.chance(0.5),
    timeoutMs: rng.pick([50, 300]),
  };
  const steps = times(rng.int(5, 40)).map((at): Step => {
    const r = rng.next();
    // Some acquirers wait: denied, they try again at the `reset` the denial named (up to 5 times), as a
    // client polling for a slot does; they arrive just as a lease runs out.
    if (r < 0.5)
      return {
        at,
        what: "acquire",
        args: [rng.int(0, config.skews.length - 1), rng.pick(config.identifiers), rng.chance(0.4) ? rng.int(1, 5) : 0],
      };
    if (r < 0.75) return { at, what: "release", args: [rng.int(0, 1000), rng.chance(0.2)] };
    // Sometimes a second renewal of the same holder a few ms later: the two overtake each other on the network.
    return { at, what: "renew", args: [rng.int(0, 1000), rng.chance(0.3) ? rng.int(1, config.leaseMs) : 0] };
  });
  return { config, steps };
}

/** Runs the concurrency steps (scheduled with the rest of the plan) and, via `finish`, the checks at the end. */
export function runConcurrency(
  sim: Sim,
  config: ConcurrencyConfig,
  steps: Step[],
  at: (step: Step, fn: () => void) => void,
): { finish(): Promise<void> } {
  const { world, network } = sim;
  const instances = config.skews.map(
    (skew, i) =>
      new ConcurrencyLimiter(
        network.client(`concurrency${i}`, {
          tableName: TABLE,
          timeoutMs: config.timeoutMs,
          retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 50, atLeastOnce: config.atLeastOnce },
        }),
        { limit: config.limit, leaseMs: config.leaseMs, name: "sim", now: () => Date.now() + skew },
      ),
  );
  const spread = Math.max(...config.skews) - Math.min(...config.skews);
  const holders: Holder[] = [];
  /** Acquires that failed ambiguously: they may hold a slot nobody knows of, until it runs out. */
  let orphans = 0;
  const live = () => holders.filter((h) => h.releasedAt === undefined);
  /** Set when the checks begin: waiting acquirers stop trying. */
  let finishing = false;

  for (const step of steps) {
    at(step, () => {
      if (step.what === "acquire") {
        const [i, identifier, waits] = step.args as [number, string, number];
        const attempt = (left: number) => {
          if (finishing) return;
          const start = world.now;
          world.spawn(async () => {
            const slot = await instances[i]!.acquire(identifier);
            checkNoSecrets(slot.error);
            if (slot.error?.ambiguous) orphans++;
            if (!slot.success && !slot.reason && left > 0) {
              world.setTimeout(() => attempt(left - 1), Math.max(1, slot.reset - (Date.now() + config.skews[i]!)));
            }
            if (!slot.success || slot.reason) return;
            // Its lease runs leaseMs from when its winning request was planned (on its own clock).
            const [from, to] = [start + config.skews[i]! + config.leaseMs, world.now + config.skews[i]! + config.leaseMs];
            check(
              slot.reset >= from && slot.reset <= to,
              "a held slot's reset is the end of its lease",
              () => `reset ${slot.reset - from} ms after the earliest possible`,
            );
            holders.push({ identifier, slot, spans: [[world.now, start + config.leaseMs - spread]] });
          });
        };
        attempt(waits);
      } else if (step.what === "release") {
        const [pick, twice] = step.args as [number, boolean];
        const candidates = live();
        if (candidates.length === 0) return;
        const holder = candidates[pick % candidates.length]!;
        holder.releasedAt = world.now;
        const release = async () => {
          try {
            await holder.slot.release();
          } catch (error) {
            if (!(error instanceof CounterError)) throw error;
            checkNoSecrets(error);
          }
        };
        world.spawn(release);
        if (twice) world.spawn(release);
      } else if (step.what === "renew") {
        const [pick, againMs] = step.args as [number, number];
        const candidates = live();
        if (candidates.length === 0) return;
        const holder = candidates[pick % candidates.length]!;
        const renew = () => {
          const start = world.now;
          world.spawn(async () => {
            try {
              if (await holder.slot.renew()) holder.spans.push([world.now, start + config.leaseMs - spread]);
            } catch (error) {
              if (!(error instanceof CounterError)) throw error;
              checkNoSecrets(error);
            }
          });
        };
        renew();
        if (againMs > 0) world.setTimeout(() => holder.releasedAt === undefined && renew(), againMs);
      }
    });
  }

  return {
    async finish() {
      // Acquires still on their way settle first (waiting ones try no more).
      finishing = true;
      await world.run(world.now + 2000);
      // Never more than `limit` holders at once: the spans (cut at each holder's release) never overlap more.
      for (const identifier of config.identifiers) {
        const spans = holders
          .filter((h) => h.identifier === identifier)
          .flatMap((h) => union(h.spans.map(([a, b]): [number, number] => [a, Math.min(b, h.releasedAt ?? Infinity)])));
        const edges = spans
          .flatMap(
            ([a, b]) =>
              [
                [a, 1],
                [b, -1],
              ] as Array<[number, number]>,
          )
          .sort((x, y) => x[0] - y[0] || x[1] - y[1]);
        let holding = 0;
        for (const [t, d] of edges) {
          holding += d;
          check(
            holding <= config.limit,
            "at most `limit` holders at once",
            () =>
              `${holding} holders of ${identifier} at ${t % 100_000} (limit ${config.limit}, lease ${config.leaseMs} ms, clocks ${config.skews.join("/")})`,
          );
        }
      }
      // Freed slots are taken again: every holder releases (the network is healthy by now), and then, if no
      // acquire may have left a slot unknown to anyone, `limit` acquires succeed at once…
      const id = config.identifiers[0]!;
      for (const h of holders) {
        h.releasedAt ??= world.now;
        world.spawn(async () => void (await h.slot.release()));
      }
      await world.run(world.now + 2000);
      const taken: ConcurrencySlot[] = [];
      const acquireAll = async () => {
        taken.length = 0;
        for (let i = 0; i < config.limit; i++) {
          world.spawn(async () => void taken.push(await instances[0]!.acquire(id)));
          await world.run(world.now + 1000);
        }
        return taken.filter((s) => s.success && !s.reason).length;
      };
      if (orphans === 0) {
        const n = await acquireAll();
        check(
          n === config.limit,
          "a released slot can be taken again",
          () => `${n} of ${config.limit} acquires succeeded after every holder released`,
        );
      }
      // … and once every lease has run out (these holders neither release nor renew), `limit` acquires succeed.
      await world.run(world.now + config.leaseMs + spread + 1);
      const n = await acquireAll();
      check(
        n === config.limit,
        "an expired slot can be taken again",
        () => `${n} of ${config.limit} acquires succeeded after every lease ran out (${orphans} ambiguous acquires)`,
      );
    },
  };
}

/** The spans of one holder as disjoint spans (a renewal overlaps the lease it extends: one holder, not two). */
function union(spans: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of spans.filter(([a, b]) => a < b).sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}
