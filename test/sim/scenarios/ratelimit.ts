// Simulated rate limiters (several per identifier, every algorithm, leases, refunds, instances, limitAll, concurrency limits) under faults: never over a limit.
import { CounterError, limitAll, RateLimiter, type MultiRateLimitResult, type RateLimitResult } from "../../../src/index.ts";
import { overlap } from "../../../src/usecases/ratelimit/windows.ts";
import { check, checkNoSecrets, drawFaults, TABLE, times, type Plan, type Scenario, type Step } from "../scenario.ts";
import { EPOCH, type Rng } from "../world.ts";
import { planConcurrency, runConcurrency, type ConcurrencyConfig } from "./ratelimit-concurrency.ts";

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
  /** Each instance's clock error in ms (instance i of limiter l: skews[l][i]); all zero in most plans. */
  skews: number[][];
  /**
   * limitAll: bundles of one more instance of every limiter on one client each (clocks right), which "all" steps
   * call; 0 when the plan has none. Their limiters then all have names of their own.
   */
  bundles: number;
  /** The ConcurrencyLimiter part, when the plan has one. */
  concurrency?: ConcurrencyConfig | undefined;
}

/** One admitted call, or one refund, as the simulator saw it. */
interface Event {
  limiter: number;
  identifier: string;
  /** On the instance's clock: when the call began and when it answered (it took effect in between). */
  at: number;
  done: number;
  /** The same on the true clock (instances' clocks disagree by their skews). */
  trueAt: number;
  trueDone: number;
  units: number;
  /** `held`: a limit of a denied limitAll call that had room: taken for a moment and given back (the fallback), or not at all. */
  kind: "admitted" | "refunded" | "maybeRefunded" | "maybeTaken" | "denied" | "held";
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
    const limiters = Array.from(
      { length: rng.int(1, 3) },
      (_, i): LimiterConfig => ({
        name: rng.chance(0.7) ? "default" : `l${i}`,
        algorithm: rng.pick(["sliding-window", "fixed-window", "token-bucket"] as const),
        limit: rng.int(1, 8),
        windowMs: rng.pick(WINDOWS),
        lease: rng.chance(0.6) ? 1 : rng.int(2, 6),
        instances: rng.int(1, 3),
        atLeastOnce: rng.chance(0.4),
      }),
    );
    // Limiters with one (name, algorithm, window) share one count by design: give repeats their own name.
    for (const [i, l] of limiters.entries()) {
      if (seen.has(`${l.name} ${l.algorithm} ${l.windowMs}`)) l.name = `l${i}`;
      seen.add(`${l.name} ${l.algorithm} ${l.windowMs}`);
    }
    const skewed = rng.chance(0.25);
    // Clocks that disagree by up to half a window each way (at most 500 ms): within the skew the guarantees
    // tolerate (one window; a bucket's windowMs).
    const skews = limiters.map((l) => {
      const half = Math.min(500, Math.floor(l.windowMs / 2));
      return Array.from({ length: l.instances }, () => (skewed ? rng.int(-half, half) : 0));
    });
    // Sometimes one host's clock runs far ahead (an hour, or five windows): beyond what the guarantees
    // tolerate, so its limiter is only checked for not locking the others out.
    if (rng.chance(0.1)) {
      const li = rng.int(0, limiters.length - 1);
      if (limiters[li]!.instances === 1) limiters[li]!.instances = 2;
      skews[li] = Array.from({ length: limiters[li]!.instances }, (_, i) =>
        i === 0 ? Math.max(3_600_000, 5 * limiters[li]!.windowMs) : 0,
      );
    }
    const config: Config = {
      limiters,
      identifiers: ["u1", "u2"].slice(0, rng.int(1, 2)),
      timeoutMs: rng.pick([50, 300]),
      skews,
      bundles: 0,
    };
    const steps: Step[] = times(rng, rng.int(5, 60), span).map((at) => {
      const l = rng.int(0, limiters.length - 1);
      const instance = rng.int(0, limiters[l]!.instances - 1);
      const identifier = rng.pick(config.identifiers);
      const cost = rng.int(1, Math.min(3, limiters[l]!.limit));
      const r = rng.next();
      if (r < 0.8) return { at, what: "limit", args: [l, instance, identifier, cost] };
      if (r < 0.93) return { at, what: "refund", args: [l, instance, identifier, cost, rng.chance(0.5)] };
      return { at, what: "remaining", args: [l, instance, identifier] };
    });
    if (rng.chance(0.5)) {
      // limitAll needs a name per limit (the policies in headers).
      limiters.forEach((l, i) => (l.name = `l${i}`));
      config.bundles = rng.int(1, 2);
      for (const at of times(rng, rng.int(5, 40), span)) {
        // Each limiter in the call with probability 0.7 (at least one), each with its own identifier and cost:
        // "li:identifier:cost" joined by ";".
        const picked = limiters.flatMap((l, li) =>
          rng.chance(0.7) ? [`${li}:${rng.pick(config.identifiers)}:${rng.int(1, Math.min(3, l.limit))}`] : [],
        );
        if (picked.length === 0) picked.push(`0:${rng.pick(config.identifiers)}:1`);
        steps.push({ at, what: "all", args: [rng.int(0, config.bundles - 1), picked.join(";")] });
      }
    }
    const concurrency = planConcurrency(rng, (n) => times(rng, n, span));
    if (concurrency) {
      config.concurrency = concurrency.config;
      steps.push(...concurrency.steps);
    }
    steps.sort((a, b) => a.at - b.at);
    return { flavor: rng.chance(0.5) ? "dynalite" : "ddblocal", faults: drawFaults(rng, EPOCH + span), config, steps };
  },

  async run(sim, plan) {
    const { world, network } = sim;
    const { config } = plan;
    const instances = config.limiters.map((l, li) =>
      Array.from(
        { length: l.instances },
        (_, i) =>
          new RateLimiter(
            network.client(`limiter${li}.${i}`, {
              tableName: TABLE,
              timeoutMs: config.timeoutMs,
              retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 50, atLeastOnce: l.atLeastOnce },
            }),
            {
              name: l.name,
              algorithm: l.algorithm,
              limit: l.limit,
              windowMs: l.windowMs,
              lease: l.lease,
              now: () => Date.now() + config.skews[li]![i]!,
            },
          ),
      ),
    );
    // limitAll's instances: one client per bundle, one instance of every limiter on it, clocks right.
    const bundles = Array.from({ length: config.bundles }, (_, b) => {
      const client = network.client(`bundle${b}`, {
        tableName: TABLE,
        timeoutMs: config.timeoutMs,
        retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 50, atLeastOnce: b === 1 },
      });
      return config.limiters.map(
        (l) => new RateLimiter(client, { name: l.name, algorithm: l.algorithm, limit: l.limit, windowMs: l.windowMs, lease: l.lease }),
      );
    });
    const concurrency = config.concurrency
      ? runConcurrency(
          sim,
          config.concurrency,
          plan.steps.filter((s) => ["acquire", "release", "renew"].includes(s.what)),
          (step, fn) => world.at(EPOCH + step.at, fn),
        )
      : undefined;
    const events: Event[] = [];
    const lastAdmitted = new Map<string, RateLimitResult>();
    const saneReset = (l: LimiterConfig, skew: number, at: number, result: { reset: number }, what: string) =>
      check(
        // Measured from the answer: a reading is taken after its request came back.
        Number.isFinite(result.reset) && result.reset >= at - 1 && result.reset <= world.now + skew + 3 * l.windowMs + 1,
        // A lagging instance joins the item's newer window; a sliding one may then free up a window after that.
        "reset within three windows of now",
        () => `${what} answered reset ${result.reset - world.now - skew} ms from now (window ${l.windowMs} ms)`,
      );
    /**
     * A denial says when to come back: never at a time already past when it is answered (a caller waiting for
     * `reset` would come straight back and be denied again, and the instance's block would hold nothing). Failures
     * (failOpen, failClosed: contention, outages) are not denials of the limit.
     */
    const futureReset = (skew: number, result: RateLimitResult, what: string) =>
      check(
        result.success || result.reason === "failOpen" || result.reason === "failClosed" || result.reset >= world.now + skew,
        "a denial's reset is not in the past",
        () => `${what} denied (${result.reason ?? "from DynamoDB"}) with reset ${world.now + skew - result.reset} ms before its answer`,
      );

    for (const step of plan.steps) {
      if (step.what === "all") {
        world.at(EPOCH + step.at, () => {
          const [b, spec] = step.args as [number, string];
          const checks = spec.split(";").map((part) => {
            const [li, identifier, cost] = part.split(":");
            return { li: Number(li), identifier: identifier!, cost: Number(cost) };
          });
          const at = world.now;
          world.spawn(async () => {
            const result: MultiRateLimitResult = await limitAll(
              checks.map((c) => ({ limiter: bundles[b]![c.li]!, identifier: c.identifier, cost: c.cost })),
            );
            checkNoSecrets(result.error);
            check(result.success === result.results.every((r) => r.success), "limitAll allows only what every limit allows", () =>
              JSON.stringify(result.results.map((r) => r.success)),
            );
            checks.forEach((c, k) => {
              const r = result.results[k]!;
              const l = config.limiters[c.li]!;
              checkNoSecrets(r.error);
              saneReset(l, 0, at, r, "limitAll()");
              futureReset(0, r, "limitAll()");
              const base = { limiter: c.li, identifier: c.identifier, at, done: world.now, trueAt: at, trueDone: world.now, units: c.cost };
              check(
                !(r.success && r.error?.code === "Conflict"),
                "contention never admits an uncounted call",
                () => "limitAll admitted after losing every round",
              );
              if (r.error?.ambiguous) events.push({ ...base, kind: "maybeTaken" });
              else if (r.reason === "failOpen" || r.reason === "failClosed") return;
              else if (result.success) {
                const window = l.algorithm !== "token-bucket" ? Math.round(r.reset / l.windowMs) - 1 : undefined;
                events.push({ ...base, kind: "admitted", reason: r.reason, ...(window === undefined ? {} : { window }) });
              } else events.push({ ...base, kind: r.success ? "held" : "denied", reason: r.reason ?? "all" });
            });
          });
        });
        continue;
      }
      if (!["limit", "refund", "remaining"].includes(step.what)) continue;
      world.at(EPOCH + step.at, () => {
        const [li, ii, identifier, cost] = step.args as [number, number, string, number];
        const l = config.limiters[li]!;
        const limiter = instances[li]![ii]!;
        // The instance's own clock: what its windows and results are reckoned in.
        const skew = config.skews[li]![ii]!;
        const at = world.now + skew;
        if (step.what === "limit") {
          world.spawn(async () => {
            const result: RateLimitResult = await limiter.limit(identifier, { cost });
            checkNoSecrets(result.error);
            saneReset(l, skew, at, result, "limit()");
            futureReset(skew, result, "limit()");
            if (result.reason === "failOpen" || result.reason === "failClosed") {
              check(
                !(result.success && result.error?.code === "Conflict"),
                "contention never admits an uncounted call",
                () => "admitted after losing every condition race",
              );
              // A refund may name a failOpen result (the README's pattern refunds whatever limit() answered): it took
              // nothing known, so it gives nothing back.
              if (result.success) lastAdmitted.set(`${li} ${ii} ${identifier}`, result);
              // An ambiguous failure may have taken its units.
              if (result.error?.ambiguous)
                events.push({
                  limiter: li,
                  identifier,
                  at,
                  done: world.now + skew,
                  trueAt: at - skew,
                  trueDone: world.now,
                  units: cost,
                  kind: "maybeTaken",
                });
              return;
            }
            if (result.success) lastAdmitted.set(`${li} ${ii} ${identifier}`, result);
            const window = result.success && l.algorithm !== "token-bucket" ? Math.round(result.reset / l.windowMs) - 1 : undefined;
            events.push({
              limiter: li,
              identifier,
              at,
              done: world.now + skew,
              trueAt: at - skew,
              trueDone: world.now,
              units: cost,
              kind: result.success ? "admitted" : "denied",
              reason: result.reason,
              ...(window === undefined ? {} : { window }),
            });
          });
        } else if (step.what === "refund") {
          // Half the refunds name the call that took the units (the last one this instance admitted).
          const result = step.args[4] ? lastAdmitted.get(`${li} ${ii} ${identifier}`) : undefined;
          const window = result && l.algorithm !== "token-bucket" ? Math.round(result.reset / l.windowMs) - 1 : undefined;
          // What the refund may rightly give back: nothing for a failOpen result (it took nothing known); for a bucket,
          // only the tokens of that take not refilled by the time the refund began (the rest are the bucket's again).
          const rightful =
            result?.reason === "failOpen"
              ? 0
              : result && l.algorithm === "token-bucket"
                ? Math.max(0, Math.min(cost, Math.floor(((result.reset - at) * l.limit) / l.windowMs)))
                : cost;
          const event = { limiter: li, identifier, at, trueAt: at - skew, units: rightful, ...(window === undefined ? {} : { window }) };
          world.spawn(async () => {
            try {
              await limiter.refund(identifier, cost, result ? { result } : {});
              events.push({ ...event, done: world.now + skew, trueDone: world.now, kind: "refunded" });
            } catch (error) {
              if (!(error instanceof CounterError)) throw error;
              checkNoSecrets(error);
              events.push({ ...event, done: world.now + skew, trueDone: world.now, kind: "maybeRefunded" });
            }
          });
        } else {
          world.spawn(async () => {
            try {
              saneReset(l, skew, at, await limiter.remaining(identifier), "remaining()");
            } catch (error) {
              if (!(error instanceof CounterError)) throw error;
            }
          });
        }
      });
    }
    await world.run(plan.faults.until + 5000);
    const faulty = plan.faults.rate > 0 || plan.faults.down.length > 0;
    if (process.env.SIM_DEBUG) for (const e of events) console.log(JSON.stringify({ ...e, at: e.at % 100_000, done: e.done % 100_000 }));

    for (const [li, l] of config.limiters.entries()) {
      const far = config.skews[li]![0]! >= 3_600_000;
      if (far) {
        // Not locked out by the host from the future: once a window or two has passed with nobody else calling,
        // a correct instance is admitted again (a bucket capped to one window ahead refills within one more).
        for (const identifier of config.identifiers) {
          const correct = instances[li]![1]!;
          let admitted = false;
          for (let attempt = 0; attempt < 3 && !admitted; attempt++) {
            await world.run(world.now + l.windowMs + 1);
            world.spawn(async () => void (admitted = (await correct.limit(identifier)).success));
            await world.run(world.now + 5000);
          }
          check(
            admitted,
            "a clock far ahead never locks an identifier out",
            () => `${l.algorithm} ${l.limit}/${l.windowMs} ms: a correct instance is still denied ${3 * l.windowMs} ms later`,
          );
        }
        continue;
      }
      for (const identifier of config.identifiers) {
        const mine = events.filter((e) => e.limiter === li && e.identifier === identifier);
        // limitAll's bundles run on right clocks (skew 0).
        const clocks = [...config.skews[li]!, ...(config.bundles > 0 ? [0] : [])];
        const spread = Math.max(...clocks) - Math.min(...clocks);
        if (l.algorithm === "token-bucket") checkBucket(l, mine, spread);
        else {
          checkWindows(l, mine, config.limiters.length, spread);
          if (l.lease === 1)
            checkStored(
              l,
              mine,
              sim.model.items(TABLE).get(JSON.stringify([`ratelimit:${l.name}:${l.algorithm}:${l.windowMs}:${identifier}`])),
              faulty,
            );
        }
      }
    }
    // A refund without a result from a clock one window behind the item's (within the tolerated skew) gives back
    // to the window that clock's calls count in, the item's newer one. The checks above see over-admission; this
    // under-admission (a refund that silently gave nothing) needs a probe on clocks set for it.
    const probed = config.limiters.find((l, li) => l.algorithm !== "token-bucket" && config.skews[li]![0]! < 3_600_000);
    if (probed) {
      const W = probed.windowMs;
      const lag = Math.max(1, Math.min(Math.floor(W / 4), 500));
      const k = Math.floor(Date.now() / W) + 2;
      const client = network.client("probe", { tableName: TABLE, timeoutMs: 1000 });
      const options = { name: "probe", algorithm: probed.algorithm, limit: 3, windowMs: W, cacheBlocked: false } as const;
      const ahead = new RateLimiter(client, { ...options, now: () => (k + 1) * W + lag });
      const lagging = () => new RateLimiter(client, { ...options, now: () => (k + 1) * W - lag });
      const outcome: boolean[] = [];
      world.spawn(async () => {
        outcome.push((await ahead.limit("p", { cost: 2 })).success);
        outcome.push((await lagging().limit("p")).success);
        outcome.push((await ahead.limit("p")).success);
        await lagging().refund("p", 1);
        outcome.push((await ahead.limit("p")).success);
      });
      await world.run(world.now + 5000);
      check(
        JSON.stringify(outcome) === "[true,true,false,true]",
        "a refund from a clock behind the item's gives back where that clock's calls count",
        () => `${probed.algorithm} ${W} ms, clock ${lag} ms behind: admitted ${JSON.stringify(outcome)}, expected [true,true,false,true]`,
      );
    }
    await leaseAcrossWindows(sim);
    await concurrency?.finish();
  },
};

/**
 * All or nothing, read from DynamoDB's side: a window's stored count holds the units admitted in it and nothing of
 * calls that were denied, except what faults may have left (an ambiguous take; the fallback's take whose give-back
 * failed) or a give-back that came after the take's window had passed (it gives nothing, by design). Leases off.
 */
function checkStored(l: LimiterConfig, events: Event[], item: Record<string, unknown> | undefined, faulty: boolean): void {
  if (!item) return;
  const w = l.windowMs;
  const windowOf = (t: number) => Math.floor(t / w);
  for (const [name, value] of Object.entries(item)) {
    const m = /^w(-?\d+)$/.exec(name);
    if (!m) continue;
    const k = Number(m[1]);
    const stored = Number((value as { N: string }).N);
    const admitted = sum(
      events.filter((e) => e.kind === "admitted" && e.window === k),
      "admitted",
    );
    const maybe = sum(
      events.filter((e) => e.kind === "maybeTaken" && reaches(e, k, w)),
      "maybeTaken",
    );
    const held = sum(
      events.filter((e) => e.kind === "held" && reaches(e, k, w) && (faulty || windowOf(e.done) !== windowOf(e.at))),
      "held",
    );
    check(
      stored <= admitted + maybe + held,
      "a denied limitAll call takes nothing from any limit",
      () =>
        `${l.algorithm} ${l.limit}/${w} ms: window ${k} holds ${stored} units, ${admitted} admitted (+${maybe} maybe taken, +${held} held across faults or a window's end)`,
    );
  }
}

/** Whether a call could have taken in window k: a round at any time from its start to its answer, in its clock's window or the next. */
const reaches = (e: Event, k: number, w: number): boolean => Math.floor(e.at / w) <= k && k <= Math.floor(e.done / w) + 1;

const sum = (events: Event[], kind: Event["kind"] | Array<Event["kind"]>) =>
  events.filter((e) => (Array.isArray(kind) ? kind.includes(e.kind) : e.kind === kind)).reduce((a, e) => a + e.units, 0);

/** Fixed window: units admitted per window ≤ limit (+ what refunds gave back). Sliding: its documented weighting. */
function checkWindows(l: LimiterConfig, events: Event[], limiters: number, spread: number): void {
  const w = l.windowMs;
  const byWindow = new Map<number, Event[]>();
  for (const e of events) {
    const k = e.window ?? Math.floor(e.at / w);
    byWindow.set(k, [...(byWindow.get(k) ?? []), e]);
  }
  // Units that may be counted in window k: admitted there, or failed ambiguously (or held for a moment by a denied
  // limitAll call, which the fallback takes and gives back) in a call that could have taken in k: each round of a
  // call reads the clock, and a call joins the window after its clock's when it finds that one on the item.
  const maybe = events.filter((e) => e.kind === "maybeTaken" || e.kind === "held");
  const used = (k: number) =>
    sum(byWindow.get(k) ?? [], "admitted") +
    sum(
      maybe.filter((e) => reaches(e, k, w)),
      ["maybeTaken", "held"],
    );
  for (const [k, inWindow] of byWindow) {
    const previous = byWindow.get(k - 1) ?? [];
    // A refund goes to the window its instance reckons in, or the newer one it finds on the item: from its start
    // time, window k or the one before (and, sliding, the one before that, which weighs on k).
    const given = (j: number) =>
      sum(
        events.filter((e) => (e.kind === "refunded" || e.kind === "maybeRefunded") && (e.window ?? Math.floor(e.at / w)) === j),
        ["refunded", "maybeRefunded"],
      );
    // Without a result, a refund goes to the window of its instance's last answer, which a sliding limiter may
    // still count from the window after (the previous one weighs): a refund begun in k + 1 may give back to k.
    const giveBack = given(k) + given(k - 1) + (l.algorithm === "sliding-window" ? given(k - 2) + given(k + 1) : 0);
    let admitted = 0;
    for (const e of [...inWindow].sort((x, y) => x.done - y.done)) {
      if (e.kind !== "admitted") continue;
      admitted += e.units;
      // The previous window weighs less as time passes: at the answer it weighs at most what it did when the
      // call took effect (a lease taken earlier, or a call that waited for one, took effect before).
      const weighted = l.algorithm === "sliding-window" ? Math.floor(sum(previous, "admitted") * overlap(e.done, k, w)) : 0;
      check(
        admitted + weighted <= l.limit + giveBack,
        "never over a limit",
        () =>
          `${l.algorithm} limit ${l.limit}/${w} ms, lease ${l.lease}: ${admitted} admitted in window ${k} (+${weighted} weighted from the previous) with ${giveBack} given back`,
      );
    }
    // Fixed window, one-unit leases, nothing given back: a denial while its window (or the next, which a call
    // may join) had room even counting every ambiguous failure as taken is a lost count: another limiter's, or
    // a retried take.
    if (l.algorithm === "fixed-window" && l.lease === 1 && spread === 0 && giveBack === 0 && given(k + 1) === 0) {
      for (const e of inWindow) {
        // A limit of a denied limitAll call is not always asked (another denied first): its verdict is a guess.
        if (e.kind !== "denied" || e.reason === "cacheBlock" || e.reason === "all") continue;
        const decided = Array.from({ length: Math.floor(e.done / w) + 2 - k }, (_, i) => k + i);
        check(
          decided.some((j) => used(j) + e.units > l.limit),
          "a limiter alone on its count admits up to its limit",
          () =>
            `fixed window ${l.limit}/${w} ms denied ${e.units} units at ${e.at % w} ms into window ${k} with ${used(k)} used (${limiters} limiters on this identifier); ` +
            `window: ${inWindow.map((x) => `${x.kind}${x.reason ? `/${x.reason}` : ""} ${x.units} @${x.at % w}–${x.done - x.at}ms`).join(", ")}`,
        );
      }
    }
  }
}

/** Token bucket: in any span [a, b] at most limit + (b − a)·limit/windowMs units (+ leases and refunds). */
function checkBucket(l: LimiterConfig, events: Event[], spread: number): void {
  const admitted = events.filter((e) => e.kind === "admitted");
  const leaseSlack = l.lease > 1 ? l.lease : 0;
  // Every call took effect between its start and its answer: those that began at or after `from` and answered by
  // `to` all took effect within [from, to], which refills (to − from)·limit/windowMs units.
  for (const first of admitted) {
    for (const last of admitted) {
      const [from, to] = [first.trueAt, last.trueDone];
      if (to < from) continue;
      const units = sum(
        admitted.filter((e) => e.trueAt >= from && e.trueDone <= to),
        "admitted",
      );
      const giveBack = sum(
        events.filter((e) => e.trueAt <= to),
        ["refunded", "maybeRefunded"],
      );
      // Clocks that disagree by `spread` ms can each see up to that much more refill.
      const most = l.limit + Math.floor(((to - from + spread) * l.limit) / l.windowMs) + leaseSlack + giveBack;
      check(
        units <= most,
        "never over a limit",
        () =>
          `token bucket ${l.limit}/${l.windowMs} ms, lease ${l.lease}: ${units} units admitted within ${to - from} ms (at most ${most})`,
      );
    }
  }
}

/**
 * A unit a denied limitAll call hands back goes to the lease it came from, never to one taken since (in a later
 * window: it was counted in its own, and the new lease's would admit it once more). The race (the other limit's
 * answer against this instance's next lease) is the network's: over many seeds both orders come.
 */
async function leaseAcrossWindows({ world, network }: Parameters<Scenario<Config>["run"]>[0]): Promise<void> {
  const W = 60_000;
  const k = Math.floor(world.now / W) + 10;
  let t = k * W + W - 50; // near the end of window k
  const client = network.client("lease-probe", { tableName: TABLE, timeoutMs: 1000 });
  const base = { algorithm: "fixed-window", windowMs: W, cacheBlocked: false, now: () => t } as const;
  const leased = new RateLimiter(client, { ...base, name: "lease-probe", limit: 10, lease: 5 });
  const filler = new RateLimiter(client, { ...base, name: "lease-probe", limit: 10 });
  // The other limit keeps window k's clock: it denies whatever the probe's clock does meanwhile.
  const other = new RateLimiter(client, { ...base, name: "lease-other", limit: 1, now: () => k * W + W - 50 });
  const admittedInNext: string[] = [];
  world.spawn(async () => {
    // Leases follow demand: the first call in a window takes 1, the next a lease (4: 1 used, 3 held).
    await leased.limit("p");
    await leased.limit("p");
    await other.limit("p"); // the other limit is used up: the limitAll below is denied
    const denied = limitAll([
      { limiter: leased, identifier: "p" }, // one unit from the lease, in window k
      { limiter: other, identifier: "p" },
    ]);
    // 1 ms on, while the other limit's answer is on its way (a round trip takes 2 ms or more): window k + 1
    // begins and this instance takes a new lease there.
    const next = new Promise<RateLimitResult>((resolve) =>
      world.setTimeout(() => {
        t = (k + 1) * W + 1;
        resolve(leased.limit("p"));
      }, 1),
    );
    const [all, first] = await Promise.all([denied, next]);
    check(!all.success, "the probe's limitAll is denied", () =>
      JSON.stringify(all.results.map((r) => [r.success, r.reason, r.error?.message])),
    );
    if (first.success) admittedInNext.push(first.reason ?? "take");
    for (let i = 0; i < 20; i++) {
      const r = await leased.limit("p");
      if (!r.success) break;
      admittedInNext.push(r.reason ?? "take");
    }
    for (let i = 0; i < 20; i++) {
      const r = await filler.limit("p");
      if (!r.success) break;
      admittedInNext.push("filler");
    }
  });
  await world.run(world.now + 10_000);
  check(
    admittedInNext.length <= 10,
    "never over a limit",
    () => `fixed window 10/${W} ms, lease 5: ${admittedInNext.length} admitted in one window (${admittedInNext.join(", ")})`,
  );
}
