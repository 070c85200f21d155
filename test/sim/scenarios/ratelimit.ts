// Simulated rate limiters (several per identifier, every algorithm, leases, refunds, instances) under faults: never over a limit.
import { CounterError, RateLimiter, type RateLimitResult } from "../../../src/index.ts";
import { overlap } from "../../../src/usecases/ratelimit/windows.ts";
import { check, drawFaults, TABLE, times, type Plan, type Scenario } from "../scenario.ts";
import { EPOCH, type Rng } from "../world.ts";

type Algorithm = "sliding-window" | "fixed-window" | "token-bucket";

interface LimiterConfig {
  name: string;
  algorithm: Algorithm;
  limit: number;
  windowMs: number;
  lease: number;
  instances: number;
  atLeastOnce: boolean;
}

interface Config {
  limiters: LimiterConfig[];
  identifiers: string[];
  timeoutMs: number;
}

/** One admitted call, or one refund, as the simulator saw it. */
interface Event {
  limiter: number;
  identifier: string;
  at: number;
  units: number;
  kind: "admitted" | "refunded" | "maybeRefunded" | "maybeTaken" | "denied";
  reason?: string | undefined;
  /** Window algorithms, admitted calls: the window the limiter counted them in (a call joins a newer one it finds). */
  window?: number;
}

const WINDOWS = [100, 1000, 60_000, 86_400_000];

export const ratelimitScenario: Scenario<Config> = {
  name: "ratelimit",
  plan(rng: Rng): Plan<Config> {
    const span = rng.pick([1000, 5000, 20_000]);
    const seen = new Set<string>();
    const limiters = Array.from({ length: rng.int(1, 3) }, (_, i): LimiterConfig => ({
      name: rng.chance(0.7) ? "default" : `l${i}`,
      algorithm: rng.pick(["sliding-window", "fixed-window", "token-bucket"] as const),
      limit: rng.int(1, 8),
      windowMs: rng.pick(WINDOWS),
      lease: rng.chance(0.6) ? 1 : rng.int(2, 6),
      instances: rng.int(1, 3),
      atLeastOnce: rng.chance(0.4),
    }));
    // Limiters with one (name, algorithm, window) share one count by design: give repeats their own name.
    for (const [i, l] of limiters.entries()) {
      if (seen.has(`${l.name} ${l.algorithm} ${l.windowMs}`)) l.name = `l${i}`;
      seen.add(`${l.name} ${l.algorithm} ${l.windowMs}`);
    }
    const config: Config = { limiters, identifiers: ["u1", "u2"].slice(0, rng.int(1, 2)), timeoutMs: rng.pick([50, 300]) };
    const steps = times(rng, rng.int(5, 60), span).map((at) => {
      const l = rng.int(0, limiters.length - 1);
      const instance = rng.int(0, limiters[l]!.instances - 1);
      const identifier = rng.pick(config.identifiers);
      const cost = rng.int(1, Math.min(3, limiters[l]!.limit));
      const r = rng.next();
      if (r < 0.8) return { at, what: "limit", args: [l, instance, identifier, cost] };
      if (r < 0.93) return { at, what: "refund", args: [l, instance, identifier, cost] };
      return { at, what: "remaining", args: [l, instance, identifier] };
    });
    return { flavor: rng.chance(0.5) ? "dynalite" : "ddblocal", faults: drawFaults(rng, EPOCH + span), config, steps };
  },

  async run(sim, plan) {
    const { world, network } = sim;
    const { config } = plan;
    const instances = config.limiters.map((l, li) =>
      Array.from({ length: l.instances }, (_, i) =>
        new RateLimiter(
          network.client(`limiter${li}.${i}`, { tableName: TABLE, timeoutMs: config.timeoutMs, retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 50, atLeastOnce: l.atLeastOnce } }),
          { name: l.name, algorithm: l.algorithm, limit: l.limit, windowMs: l.windowMs, lease: l.lease },
        ),
      ),
    );
    const events: Event[] = [];
    const saneReset = (l: LimiterConfig, at: number, result: { reset: number }, what: string) =>
      check(
        // Measured from the answer: a reading is taken after its request came back.
        Number.isFinite(result.reset) && result.reset >= at - 1 && result.reset <= world.now + 2 * l.windowMs + 1,
        "reset within two windows of now",
        () => `${what} answered reset ${result.reset - world.now} ms from now (window ${l.windowMs} ms)`,
      );

    for (const step of plan.steps) {
      world.at(EPOCH + step.at, () => {
        const [li, ii, identifier, cost] = step.args as [number, number, string, number];
        const l = config.limiters[li]!;
        const limiter = instances[li]![ii]!;
        const at = world.now;
        if (step.what === "limit") {
          world.spawn(async () => {
            const result: RateLimitResult = await limiter.limit(identifier, { cost });
            saneReset(l, at, result, "limit()");
            if (result.reason === "failOpen" || result.reason === "failClosed") {
              check(!(result.success && result.error?.code === "Conflict"), "contention never admits an uncounted call", () => "admitted after losing every condition race");
              // An ambiguous failure may have taken its units.
              if (result.error?.ambiguous) events.push({ limiter: li, identifier, at, units: cost, kind: "maybeTaken" });
              return;
            }
            const window = result.success && l.algorithm !== "token-bucket" ? Math.round(result.reset / l.windowMs) - 1 : undefined;
            events.push({ limiter: li, identifier, at, units: cost, kind: result.success ? "admitted" : "denied", reason: result.reason, ...(window === undefined ? {} : { window }) });
          });
        } else if (step.what === "refund") {
          world.spawn(async () => {
            try {
              await limiter.refund(identifier, cost);
              events.push({ limiter: li, identifier, at, units: cost, kind: "refunded" });
            } catch (error) {
              if (!(error instanceof CounterError)) throw error;
              events.push({ limiter: li, identifier, at, units: cost, kind: "maybeRefunded" });
            }
          });
        } else {
          world.spawn(async () => {
            try {
              saneReset(l, at, await limiter.remaining(identifier), "remaining()");
            } catch (error) {
              if (!(error instanceof CounterError)) throw error;
            }
          });
        }
      });
    }
    await world.run(plan.faults.until + 5000);

    for (const [li, l] of config.limiters.entries()) {
      for (const identifier of config.identifiers) {
        const mine = events.filter((e) => e.limiter === li && e.identifier === identifier);
        if (l.algorithm === "token-bucket") checkBucket(l, mine);
        else checkWindows(l, mine, config.limiters.length);
      }
    }
  },
};

const sum = (events: Event[], kind: Event["kind"] | Array<Event["kind"]>) =>
  events.filter((e) => (Array.isArray(kind) ? kind.includes(e.kind) : e.kind === kind)).reduce((a, e) => a + e.units, 0);

/** Fixed window: units admitted per window ≤ limit (+ what refunds gave back). Sliding: its documented weighting. */
function checkWindows(l: LimiterConfig, events: Event[], limiters: number): void {
  const w = l.windowMs;
  const byWindow = new Map<number, Event[]>();
  for (const e of events) {
    const k = e.window ?? Math.floor(e.at / w);
    byWindow.set(k, [...(byWindow.get(k) ?? []), e]);
  }
  const used = (k: number) => sum(byWindow.get(k) ?? [], ["admitted", "maybeTaken"]);
  for (const [k, inWindow] of byWindow) {
    const previous = byWindow.get(k - 1) ?? [];
    const giveBack = sum(inWindow, ["refunded", "maybeRefunded"]) + (l.algorithm === "sliding-window" ? sum(previous, ["refunded", "maybeRefunded"]) : 0);
    let admitted = 0;
    for (const e of [...inWindow].sort((x, y) => x.at - y.at)) {
      if (e.kind !== "admitted") continue;
      admitted += e.units;
      const weighted = l.algorithm === "sliding-window" ? Math.floor(sum(previous, "admitted") * overlap(e.at, k, w)) : 0;
      check(admitted + weighted <= l.limit + giveBack, "never over a limit", () =>
        `${l.algorithm} limit ${l.limit}/${w} ms, lease ${l.lease}: ${admitted} admitted in window ${k} (+${weighted} weighted from the previous) with ${giveBack} given back`);
    }
    // Fixed window, one-unit leases, nothing given back: a denial while its window (or the next, which a call
    // may join) had room even counting every ambiguous failure as taken is a lost count: another limiter's, or
    // a retried take.
    if (l.algorithm === "fixed-window" && l.lease === 1 && giveBack === 0 && sum(byWindow.get(k + 1) ?? [], ["refunded", "maybeRefunded"]) === 0) {
      for (const e of inWindow) {
        if (e.kind !== "denied" || e.reason === "cacheBlock") continue;
        check(used(k) + e.units > l.limit || used(k + 1) + e.units > l.limit, "a limiter alone on its count admits up to its limit", () =>
          `fixed window ${l.limit}/${w} ms denied ${e.units} units with ${used(k)} used in window ${k} (${limiters} limiters on this identifier)`);
      }
    }
  }
}

/** Token bucket: in any span [a, b] at most limit + (b − a)·limit/windowMs units (+ leases and refunds). */
function checkBucket(l: LimiterConfig, events: Event[]): void {
  const admitted = events.filter((e) => e.kind === "admitted").sort((x, y) => x.at - y.at);
  const leaseSlack = l.lease > 1 ? l.lease : 0;
  for (let i = 0; i < admitted.length; i++) {
    let units = 0;
    for (let j = i; j < admitted.length; j++) {
      units += admitted[j]!.units;
      const a = admitted[i]!.at;
      const b = admitted[j]!.at;
      const giveBack = sum(events.filter((e) => e.at <= b), ["refunded", "maybeRefunded"]);
      const most = l.limit + Math.floor(((b - a) * l.limit) / l.windowMs) + leaseSlack + giveBack;
      check(units <= most, "never over a limit", () => `token bucket ${l.limit}/${l.windowMs} ms, lease ${l.lease}: ${units} units admitted within ${b - a} ms (at most ${most})`);
    }
  }
}
