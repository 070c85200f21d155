// Simulated page-view objects under faults, evictions and restarts: every acknowledged batch counted once per page and
// bucket, resent batches (same batchId) once, never stalled, uniques exact while sparse and within their error after.
import { DurablePageViews } from "../../../src/durable-object.ts";
import { PageViews } from "../../../src/index.ts";
import { dayOf, hourAttribute, hourOf, monthOf, dayAttribute } from "../../../src/usecases/pageviews/buckets.ts";
import { DAY_TOTAL, TOTAL } from "../../../src/usecases/pageviews/layout.ts";
import { SimDurableObject } from "../durable-state.ts";
import { check, drawFaults, FAILING, lettersExpectedIn, stored, TABLE, times, type Plan, type Scenario } from "../scenario.ts";
import { EPOCH, type Rng } from "../world.ts";
import {
  countRecordsLeft,
  drawObjectSettings,
  engineOptions,
  objectClient,
  restartAndRetry,
  settleMs,
  type ObjectSettings,
} from "./object-settings.ts";

interface Config extends ObjectSettings {
  pages: string[];
  /** Objects the pages are spread over (a hot page: every object counts every page). */
  objects: number;
  /** Distinct visitors drawn from (past ~1,000 in a day a sketch turns dense). */
  visitors: number;
}

/** A visitor as a tracker with the secret sends it: 64 bits of HMAC, here drawn from the seed. */
const visitorHash = (n: number): string => {
  let a = Math.imul(n + 1, 0x9e3779b1) >>> 0;
  a = Math.imul(a ^ (a >>> 15), 0x85ebca6b) >>> 0;
  let b = Math.imul(a ^ n, 0xc2b2ae35) >>> 0;
  b = Math.imul(b ^ (b >>> 13), 0x27d4eb2f) >>> 0;
  return `~h1:${a.toString(16).padStart(8, "0")}${b.toString(16).padStart(8, "0")}`;
};

const SECRET = "sim-secret-0123456789";

export const pageviewsScenario: Scenario<Config> = {
  name: "pageviews",
  plan(rng: Rng): Plan<Config> {
    const span = rng.pick([500, 3000, 10_000]);
    const config: Config = {
      ...drawObjectSettings(rng, 12),
      pages: ["/", "/docs", "/a#b"].slice(0, rng.int(1, 3)),
      objects: rng.int(1, 2),
      visitors: rng.pick([5, 50, 1500]),
    };
    let batches = 0;
    const steps = times(rng, rng.int(5, 40), span).map((at) => {
      const r = rng.next();
      if (r < 0.6) {
        // A batch: its object, id, and views (page index, visitor or -1, minutes before now: hours and days apart).
        const views = Array.from({ length: rng.int(1, config.visitors > 100 ? 200 : 12) }, () => [
          rng.int(0, config.pages.length - 1),
          rng.chance(0.9) ? rng.int(0, config.visitors - 1) : -1,
          rng.pick([0, 0, 0, 30, 90, 13 * 60]),
        ]);
        return { at, what: "record", args: [rng.int(0, config.objects - 1), `b${batches++}`, JSON.stringify(views)] };
      }
      if (r < 0.75 && batches > 0) return { at, what: "resend", args: [rng.int(0, batches - 1)] };
      if (r < 0.88) return { at, what: "evict", args: [rng.int(0, config.objects - 1)] };
      if (r < 0.96) return { at, what: "flush", args: [rng.int(0, config.objects - 1)] };
      return { at, what: "retryDeadLetters", args: [rng.int(0, config.objects - 1)] };
    });
    return { flavor: rng.chance(0.5) ? "dynalite" : "ddblocal", faults: drawFaults(rng, EPOCH + span, FAILING), config, steps };
  },

  async run(sim, plan) {
    const { world, model, network } = sim;
    const { config } = plan;
    let incarnations = 0;
    const objects = Array.from(
      { length: config.objects },
      (_, i) =>
        new SimDurableObject(
          world,
          `0123abc${i}`,
          (state, alive) =>
            new DurablePageViews(state, objectClient(network, `pv${i}.${incarnations++}`, config, alive), {
              secret: SECRET,
              ...engineOptions(world, config, lettersExpectedIn(plan.faults)),
            }),
        ),
    );
    /** Every batch drawn, with its object and views; and what became of it: acknowledged, or sent without an answer. */
    const batches = new Map<
      string,
      { object: number; views: Array<{ page: string; visitor?: string; at: number }>; acked: boolean; sent: boolean }
    >();
    const send = (id: string) => {
      const b = batches.get(id)!;
      b.sent = true;
      world.spawn(async () => {
        await objects[b.object]!.live.record(b.views, id);
        b.acked = true;
      });
    };

    for (const step of plan.steps) {
      world.at(EPOCH + step.at, () => {
        if (step.what === "record") {
          const [object, id, drawn] = step.args as [number, string, string];
          const views = (JSON.parse(drawn) as Array<[number, number, number]>).map(([p, v, ago]) => ({
            page: config.pages[p]!,
            ...(v >= 0 ? { visitor: visitorHash(v) } : {}),
            at: world.now - ago * 60_000,
          }));
          batches.set(id, { object, views, acked: false, sent: false });
          send(id);
        } else if (step.what === "resend") {
          const id = `b${step.args[0]}`;
          if (batches.has(id)) send(id);
        } else if (step.what === "evict") {
          objects[step.args[0] as number]!.evict();
        } else if (step.what === "retryDeadLetters") {
          world.spawn(() => objects[step.args[0] as number]!.live.retryDeadLetters().catch(() => undefined));
        } else {
          world.spawn(() => objects[step.args[0] as number]!.live.flush().catch(() => undefined));
        }
      });
    }

    const bound = settleMs(config);
    await restartAndRetry(world, objects, plan.faults.until, bound);
    for (const [i, object] of objects.entries()) {
      const left = countRecordsLeft(object);
      check(
        left.length === 0,
        "never stalled",
        () => `object ${i}: ${left.length} count records still in storage ${bound} ms after faults stopped`,
      );
      const unwritten = [...object.data].filter(
        ([k, v]) => k.startsWith("pvs:") && (v as { v: number; w: number }).v > (v as { v: number; w: number }).w,
      );
      check(
        unwritten.length === 0,
        "never stalled",
        () =>
          `object ${i}: ${unwritten.length} changed sketches never written (alarm ${object.alarmAt === null ? "none" : `in ${object.alarmAt - world.now} ms`}; ${object.live.deadLetters.length} dead letters)`,
      );
      check(object.alarmErrors.length === 0, "alarm() never throws", () => String(object.alarmErrors[0]));
    }

    // Exactly once per page and bucket: every acknowledged batch in, each unanswered one in or out as a whole.
    const counts = (filter: (b: { acked: boolean; sent: boolean }) => boolean) => {
      const out = new Map<string, bigint>();
      const bump = (k: string) => out.set(k, (out.get(k) ?? 0n) + 1n);
      for (const b of batches.values()) {
        if (!filter(b)) continue;
        for (const v of b.views) {
          bump(`pv#d#${dayOf(v.at)}#${v.page}\u0000${hourAttribute(hourOf(v.at))}`);
          bump(`pv#d#${dayOf(v.at)}#${v.page}\u0000${DAY_TOTAL}`);
          bump(`pv#m#${monthOf(v.at)}#${v.page}\u0000${dayAttribute(Number(dayOf(v.at).slice(8)))}`);
          bump(`pv#m#${monthOf(v.at)}#${v.page}\u0000${TOTAL}`);
          bump(`pv#t#${v.page}\u0000${TOTAL}`);
        }
      }
      return out;
    };
    const low = counts((b) => b.acked);
    const maybe = counts((b) => !b.acked && b.sent);
    for (const k of new Set([...low.keys(), ...maybe.keys()])) {
      const [id, attribute] = k.split("\u0000") as [string, string];
      const got = stored(model, id, attribute);
      const want = low.get(k) ?? 0n;
      check(
        got >= want && got <= want + (maybe.get(k) ?? 0n),
        "page views exactly once per page and bucket",
        () => `${id}.${attribute}: stored ${got}, acknowledged ${want}, unanswered ${maybe.get(k) ?? 0n}`,
      );
    }

    // Read back through PageViews on a healthy network (its answers come on the virtual clock: a task of the world).
    const reader = new PageViews(network.client("reader", { tableName: TABLE, timeoutMs: 1000 }));
    let read = false;
    world.spawn(async () => {
      for (const page of config.pages) {
        const total = BigInt(await reader.total(page));
        check(total === stored(model, `pv#t#${page}`, TOTAL), "PageViews.total reads the lifetime item", () => `${page}: ${total}`);
        for (const day of new Set([...batches.values()].flatMap((b) => b.views.map((v) => dayOf(v.at))))) {
          const sure = new Set<string>();
          const possible = new Set<string>();
          for (const b of batches.values()) {
            for (const v of b.views) {
              if (v.page !== page || v.visitor === undefined || dayOf(v.at) !== day) continue;
              // Within a sketch, a visitor is its 24-bit prefix until it turns dense.
              if (b.acked) sure.add(v.visitor.slice(4, 10));
              if (b.acked || b.sent) possible.add(v.visitor.slice(4, 10));
            }
          }
          const estimate = await reader.uniques(page, { day });
          const lo = sure.size;
          const hi = possible.size;
          const tolerance = hi > 1024 ? Math.ceil(hi * 0.06) : 0; // dense: over 3.5 standard errors (1.6 %)
          check(
            estimate >= lo - tolerance && estimate <= hi + tolerance,
            "uniques within the sketch's error",
            () => `${page} on ${day}: estimate ${estimate}, visitors ${lo} to ${hi}`,
          );
        }
      }
      read = true;
    });
    await world.run(world.now + 60_000);
    check(read, "every call bounded", () => "PageViews reads did not finish within 60 s of a healthy network");
  },
};
