// Simulated id allocators and sharded counters under faults: ids never repeat, every call bounded, shards sum right.
import { CounterError, IdAllocator, ShardedCounter } from "../../../src/index.ts";
import { check, checkNoSecrets, drawFaults, stored, TABLE, times, type Plan, type Scenario } from "../scenario.ts";
import { EPOCH, type Rng } from "../world.ts";

interface Config {
  allocators: Array<{ blockSize: number; prefetchBelow: number; timeoutMs: number }>;
  /** Shard counts of the counter's instances: when they differ, the count was changed (raised or lowered). */
  shards: number[];
  /** The sharded counter's key: one per run (a process remembers which counters recorded their shard count). */
  counter: string;
  client: { timeoutMs: number; attempts: number };
}

export const idsScenario: Scenario<Config> = {
  name: "ids",
  plan(rng: Rng): Plan<Config> {
    const span = rng.pick([1000, 5000]);
    const config: Config = {
      allocators: Array.from({ length: rng.int(1, 3) }, () => {
        const blockSize = rng.int(1, 8);
        return { blockSize, prefetchBelow: rng.int(0, blockSize), timeoutMs: rng.pick([100, 2000]) };
      }),
      shards: rng.chance(0.4) ? [rng.int(1, 4), rng.int(1, 6)] : [rng.int(1, 4)],
      counter: `likes${rng.int(0, 1e9)}`,
      client: { timeoutMs: rng.pick([50, 300]), attempts: rng.int(1, 4) },
    };
    const steps = times(rng, rng.int(5, 60), span).map((at) =>
      rng.chance(0.75)
        ? { at, what: "next", args: [rng.int(0, config.allocators.length - 1)] }
        : { at, what: "shardAdd", args: [rng.int(1, 3), rng.int(0, config.shards.length - 1)] },
    );
    return { flavor: rng.chance(0.5) ? "dynalite" : "ddblocal", faults: drawFaults(rng, EPOCH + span), config, steps };
  },

  async run(sim, plan) {
    const { world, model, network } = sim;
    const { config } = plan;
    const options = {
      tableName: TABLE,
      timeoutMs: config.client.timeoutMs,
      retry: { attempts: config.client.attempts, baseDelayMs: 5, maxDelayMs: 50 },
    };
    const allocators = config.allocators.map((a, i) => ({
      config: a,
      allocator: new IdAllocator(network.client(`ids${i}`, options), "order-ids", a),
    }));
    const shards = config.shards.map((n, i) => new ShardedCounter(network.client(`shards${i}`, options), config.counter, { shards: n }));
    const ids = new Map<number, number>(); // id → step that got it
    let added = 0;
    let maybeAdded = 0;
    for (const [n, step] of plan.steps.entries()) {
      world.at(EPOCH + step.at, () => {
        const started = world.now;
        if (step.what === "next") {
          const { allocator, config: a } = allocators[step.args[0] as number]!;
          world.spawn(async () => {
            try {
              const id = await allocator.next();
              check(!ids.has(id), "ids never repeat", () => `id ${id} handed out by steps ${ids.get(id)} and ${n}`);
              ids.set(id, n);
            } catch (error) {
              checkNoSecrets(error);
              check(error instanceof CounterError && error.code === "Timeout", "next() fails only by its deadline", () => String(error));
            }
            // Its deadline, plus one attempt in flight when it passed.
            const most = a.timeoutMs + config.client.timeoutMs * config.client.attempts + 500;
            check(
              world.now - started <= most,
              "every call bounded",
              () => `next() took ${world.now - started} ms (timeoutMs ${a.timeoutMs})`,
            );
          });
        } else {
          const [by, which] = step.args as [number, number];
          world.spawn(async () => {
            try {
              await shards[which]!.add(by);
              added += by;
            } catch (error) {
              if (!(error instanceof CounterError)) throw error;
              checkNoSecrets(error);
              if (error.ambiguous) maybeAdded += by;
            }
          });
        }
      });
    }
    await world.run(plan.faults.until + 10_000);
    let total = 0n;
    for (let i = 0; i < Math.max(...config.shards); i++) total += stored(model, `${config.counter}#${i}`, "lastValue");
    // Increments are never resent after an ambiguous failure: each one applied at most once, and one that may
    // have been applied is reported as ambiguous.
    check(
      total >= BigInt(added) && total <= BigInt(added + maybeAdded),
      "a sharded counter counts each acknowledged add once",
      () => `shards hold ${total}, acknowledged ${added}, failed ambiguously ${maybeAdded}`,
    );
    // total() of every instance, whatever its shard count, agrees with the shards once the network is healthy.
    for (const [i, counter] of shards.entries()) {
      let read: number | undefined;
      world.spawn(async () => void (read = await counter.total()));
      await world.run(world.now + 10_000);
      check(
        read !== undefined && BigInt(read) === total,
        "total() reads every shard",
        () => `total() of the instance with ${config.shards[i]} shards: ${read}, shards hold ${total} (counts ${config.shards.join(", ")})`,
      );
    }
  },
};
