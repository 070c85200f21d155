// A simulated Durable Object buffer under faults, evictions and restarts: exactly once, never stalled, total() exact.
import { storageSuffix } from "../../../src/buffer/durable-store.ts";
import { DurableCounterBuffer } from "../../../src/durable-object.ts";
import { SimDurableObject } from "../durable-state.ts";
import {
  check,
  checkNoSecrets,
  drawFaults,
  FAILING,
  lettersExpectedIn,
  stored,
  TABLE,
  times,
  type Plan,
  type Scenario,
} from "../scenario.ts";
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
  items: string[];
  attributes: string[];
  /**
   * Storage left by a version that wrote each count attribute on its own (0.1): writes in progress of
   * one item under two sequence numbers, the older applied or not, the newer not (once it is, the older's
   * retry cannot be told applied: a Conflict, held, which the README states). Each counted exactly once.
   */
  legacy: Array<{ item: string; attribute: string; delta: number; seq: number; applied: boolean }>;
}

export const durableScenario: Scenario<Config> = {
  name: "durable",
  plan(rng: Rng): Plan<Config> {
    const span = rng.pick([500, 3000, 10_000]);
    const config: Config = {
      ...drawObjectSettings(rng, 6),
      items: ["home", "pricing", "docs"].slice(0, rng.int(1, 3)),
      attributes: ["lastValue", "views", "clicks"].slice(0, rng.int(1, 3)),
      legacy: [],
    };
    if (rng.chance(0.2) && config.attributes.length >= 2) {
      const item = rng.pick(config.items);
      const olderApplied = rng.chance(0.5);
      config.legacy.push({ item, attribute: config.attributes[0]!, delta: rng.int(1, 5), seq: 1_000_000, applied: olderApplied });
      // The newer never applied: had it been, the older's retry could not be told applied (a Conflict, held).
      config.legacy.push({ item, attribute: config.attributes[1]!, delta: rng.int(1, 5), seq: 2_000_000, applied: false });
    }
    const steps = times(rng, rng.int(5, 50), span).map((at) => {
      const r = rng.next();
      if (r < 0.75) return { at, what: "add", args: [rng.pick(config.items), rng.pick(config.attributes), rng.pick([1, 1, 3])] };
      if (r < 0.85) return { at, what: "total", args: [rng.pick(config.items), rng.pick(config.attributes)] };
      if (r < 0.93) return { at, what: "evict", args: [] };
      if (r < 0.97) return { at, what: "flush", args: [] };
      return { at, what: "retryDeadLetters", args: [] };
    });
    return { flavor: rng.chance(0.5) ? "dynalite" : "ddblocal", faults: drawFaults(rng, EPOCH + span, FAILING), config, steps };
  },

  async run(sim, plan) {
    const { world, model, network } = sim;
    const { config } = plan;
    let incarnations = 0;
    const object = new SimDurableObject(
      world,
      "0123abcd",
      (state, alive) =>
        new DurableCounterBuffer(
          state,
          objectClient(network, `do${incarnations++}`, config, alive),
          engineOptions(world, config, lettersExpectedIn(plan.faults)),
        ),
    );
    const key = (item: string, attribute: string) => `${item}\u0000${attribute}`;
    const acked = new Map<string, bigint>();
    // Storage as an older version left it (a record per count attribute, each with its own seq), some applied.
    for (const l of config.legacy) {
      const at = { tableRef: JSON.stringify([TABLE, "id", null, l.attribute]), itemRef: l.item };
      object.data.set(`b:${await storageSuffix(at)}`, { t: [TABLE, "id", null, l.attribute], id: l.item, d: String(l.delta), s: l.seq });
      if (l.applied) {
        model.handle("UpdateItem", {
          TableName: TABLE,
          Key: { id: { S: l.item } },
          UpdateExpression: "ADD #c :d SET #w = :s",
          ExpressionAttributeNames: { "#c": l.attribute, "#w": "dynacount:do-0123abcd" },
          ExpressionAttributeValues: { ":d": { N: String(l.delta) }, ":s": { N: String(l.seq) } },
        });
      }
      acked.set(key(l.item, l.attribute), (acked.get(key(l.item, l.attribute)) ?? 0n) + BigInt(l.delta));
    }
    if (config.legacy.length > 0) object.data.set("dynacount:meta", { seq: 2_000_000, failures: 0 });
    /** Adds whose RPC never answered because the object was evicted meanwhile: each may or may not count. */
    const inFlight = new Map<string, bigint>();
    const bump = (m: Map<string, bigint>, k: string, by: bigint) => m.set(k, (m.get(k) ?? 0n) + by);

    for (const step of plan.steps) {
      world.at(EPOCH + step.at, () => {
        if (step.what === "add") {
          const [item, attribute, by] = step.args as [string, string, number];
          const k = key(item, attribute);
          bump(inFlight, k, BigInt(by));
          world.spawn(async () => {
            await object.live.add(item, by, { countAttribute: attribute });
            bump(inFlight, k, -BigInt(by));
            bump(acked, k, BigInt(by));
          });
        } else if (step.what === "total") {
          const [item, attribute] = step.args as [string, string];
          const k = key(item, attribute);
          const low = acked.get(k) ?? 0n;
          world.spawn(async () => {
            let total: number;
            try {
              total = await object.live.total(item, { countAttribute: attribute });
            } catch (error) {
              checkNoSecrets(error);
              return; // a failed read is an honest answer
            }
            const high = (acked.get(k) ?? 0n) + (inFlight.get(k) ?? 0n);
            check(
              BigInt(total) >= low && BigInt(total) <= high,
              "total() exact",
              () => `${item}.${attribute}: total() ${total}, acknowledged ${low} when it began, at most ${high} possible`,
            );
          });
        } else if (step.what === "evict") {
          object.evict();
        } else if (step.what === "retryDeadLetters") {
          world.spawn(() => object.live.retryDeadLetters().catch(() => undefined));
        } else {
          world.spawn(() => object.live.flush().catch(() => undefined));
        }
      });
    }

    const bound = settleMs(config);
    await restartAndRetry(world, [object], plan.faults.until, bound);
    // The alarm alone must have written everything: no p: or b: records left in storage.
    const left = countRecordsLeft(object);
    check(
      left.length === 0,
      "never stalled",
      () =>
        `${left.length} entries still in storage ${bound} ms after faults stopped (alarm at ${object.alarmAt === null ? "none" : `${object.alarmAt - world.now} ms from now`})`,
    );
    check(object.alarmErrors.length === 0, "alarm() never throws", () => String(object.alarmErrors[0]));
    for (const item of config.items) {
      for (const attribute of config.attributes) {
        const k = key(item, attribute);
        const want = acked.get(k) ?? 0n;
        const got = stored(model, item, attribute);
        check(
          got >= want && got <= want + (inFlight.get(k) ?? 0n),
          "exactly once in a Durable Object",
          () => `${item}.${attribute}: stored ${got}, acknowledged ${want}, unanswered adds ${inFlight.get(k) ?? 0n}`,
        );
      }
    }
  },
};
