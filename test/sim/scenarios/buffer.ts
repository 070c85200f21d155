// Simulated CounterBuffers (one or two, exactly-once or at-least-once) under faults: nothing lost, nothing double, nothing stalled.
import { CounterBuffer, CounterError, type FlushResult } from "../../../src/index.ts";
import {
  check,
  checkNoSecrets,
  deadLetterCheck,
  drawFaults,
  FAILING,
  lettersExpectedIn,
  stored,
  TABLE,
  times,
  unconfirmedAdds,
  type Plan,
  type Scenario,
} from "../scenario.ts";
import { EPOCH, type Rng } from "../world.ts";

interface Config {
  buffers: Array<{ writerId: string | null; maxKeys: number; flushIntervalMs: number; maxRetryDelayMs: number; concurrency: number }>;
  client: { timeoutMs: number; attempts: number; atLeastOnce: boolean };
  items: string[];
  attributes: string[];
}

// Keys are often caller input: one holds a line break and a line separator.
const ITEMS = ["home", "pri\ncing\u2028", "docs"];
const ATTRIBUTES = ["lastValue", "views", "clicks"];

export const bufferScenario: Scenario<Config> = {
  name: "buffer",
  plan(rng: Rng): Plan<Config> {
    const span = rng.pick([500, 3000, 10_000]);
    const exactlyOnce = rng.chance(0.7);
    const config: Config = {
      buffers: Array.from({ length: rng.chance(0.3) ? 2 : 1 }, (_, i) => ({
        writerId: exactlyOnce ? `w${i}` : null,
        maxKeys: rng.int(1, 6),
        flushIntervalMs: rng.pick([5, 50, 500]),
        maxRetryDelayMs: rng.pick([100, 1000]),
        concurrency: rng.int(1, 4),
      })),
      client: { timeoutMs: rng.pick([50, 300, 1000]), attempts: rng.int(1, 4), atLeastOnce: rng.chance(0.3) },
      items: ITEMS.slice(0, rng.int(1, 3)),
      attributes: ATTRIBUTES.slice(0, rng.int(1, 3)),
    };
    const steps = times(rng, rng.int(5, 60), span).map((at) => {
      const r = rng.next();
      const buffer = rng.int(0, config.buffers.length - 1);
      if (r < 0.8) return { at, what: "add", args: [buffer, rng.pick(config.items), rng.pick(config.attributes), rng.pick([1, 1, 2, 7])] };
      if (r < 0.93) return { at, what: "flush", args: [buffer] };
      if (r < 0.97) return { at, what: "retryDeadLetters", args: [buffer] };
      return { at, what: "close", args: [buffer, rng.pick([0, 100, 2000])] };
    });
    return { flavor: rng.chance(0.5) ? "dynalite" : "ddblocal", faults: drawFaults(rng, EPOCH + span, FAILING), config, steps };
  },

  async run(sim, plan) {
    const { world, model, network } = sim;
    const { config } = plan;
    const exactlyOnce = config.buffers.every((b) => b.writerId !== null);
    // Dead letters come only from answers that end a call for good; they are retried once the faults are over.
    const lettersExpected = lettersExpectedIn(plan.faults);
    const acked = new Map<string, bigint>(); // per item and attribute, all buffers
    const at = (item: string, attribute: string) => `${item}\u0000${attribute}`;
    const buffers = config.buffers.map((b, i) => {
      const client = network.client(`buffer${i}`, {
        tableName: TABLE,
        timeoutMs: config.client.timeoutMs,
        retry: { attempts: config.client.attempts, baseDelayMs: 10, maxDelayMs: 100, atLeastOnce: config.client.atLeastOnce },
      });
      const state = { completed: 0, closed: false, ackedHere: new Map<string, bigint>(), buffer: undefined as unknown as CounterBuffer };
      state.buffer = new CounterBuffer(client, {
        ...(b.writerId ? { writerId: b.writerId } : {}),
        maxKeys: b.maxKeys,
        flushIntervalMs: b.flushIntervalMs,
        maxRetryDelayMs: b.maxRetryDelayMs,
        concurrency: b.concurrency,
        onFlush: () => void state.completed++,
        onError: (error) => {
          checkNoSecrets(error);
          state.completed++;
        },
        onDeadLetter: deadLetterCheck(world, lettersExpected),
      });
      return state;
    });

    for (const step of plan.steps) {
      world.at(EPOCH + step.at, () => {
        const b = buffers[step.args[0] as number]!;
        if (step.what === "add") {
          const [, item, attribute, by] = step.args as [number, string, string, number];
          try {
            b.buffer.add(item, by, { countAttribute: attribute });
          } catch (error) {
            if (error instanceof CounterError && (error.code === "Closed" || error.code === "BufferFull")) return;
            throw error;
          }
          const k = at(item, attribute);
          acked.set(k, (acked.get(k) ?? 0n) + BigInt(by));
          b.ackedHere.set(k, (b.ackedHere.get(k) ?? 0n) + BigInt(by));
        } else if (step.what === "flush") {
          const before = new Map(b.ackedHere);
          const started = b.completed;
          world.spawn(async () => {
            let result: FlushResult | undefined;
            try {
              result = await b.buffer.flush();
            } catch (error) {
              checkNoSecrets(error); // a failed flush is retried by the buffer itself
            }
            check(b.completed - started <= 2, "flush() waits for at most two flushes", () => `it waited for ${b.completed - started}`);
            if (result === undefined) return;
            for (const [k, sum] of before) {
              const [item, attribute] = k.split("\u0000") as [string, string];
              // Set aside as a dead letter, or waiting behind one on its item: retried once the faults are over.
              if (b.buffer.deadLetters.some((l) => l.key === item)) continue;
              check(
                stored(model, item, attribute) >= sum,
                "flush() includes every add made before it",
                () => `${k}: stored ${stored(model, item, attribute)} < ${sum} added before the call`,
              );
            }
          });
        } else if (step.what === "retryDeadLetters") {
          world.spawn(() => b.buffer.retryDeadLetters());
        } else if (step.what === "close") {
          const timeoutMs = step.args[1] as number;
          b.closed = true;
          world.spawn(async () => {
            try {
              await b.buffer.close({ timeoutMs });
              check(b.buffer.pending === 0, "close() resolves only when everything is written", () => `${b.buffer.pending} keys pending`);
            } catch (error) {
              const held = b.buffer.deadLetters.length > 0;
              check(
                error instanceof CounterError && (error.code === "Timeout" || (lettersExpected && held)),
                "close() rejects only with Timeout here, or for dead letters it holds",
                () => String(error),
              );
              check(
                b.buffer.pending > 0 || held,
                "close() rejects only when something is unwritten",
                () => `pending 0: ${(error as Error).message}`,
              );
            }
          });
        }
      });
    }

    // Faults stop at plan.faults.until; by then plus a bound, every buffer that was not closed has written
    // everything by itself (never stalled); closed ones never retry in the background, so they get one flush().
    const bound =
      4 *
        (Math.max(...config.buffers.map((b) => b.maxRetryDelayMs + b.flushIntervalMs)) + config.client.timeoutMs * config.client.attempts) +
      2000;
    await world.run(plan.faults.until);
    // The faults are over (access fixed): what was set aside goes back, and must be written exactly once too.
    for (const b of buffers) world.spawn(() => b.buffer.retryDeadLetters());
    await world.run(plan.faults.until + bound);
    for (const [i, b] of buffers.entries()) {
      if (!b.closed)
        check(
          b.buffer.pending === 0,
          "never stalled",
          () => `buffer${i} still holds ${b.buffer.pending} keys ${bound} ms after faults stopped`,
        );
    }
    for (const b of buffers) if (b.closed && b.buffer.pending > 0) world.spawn(() => b.buffer.flush());
    await world.run(world.now + bound);
    for (const [i, b] of buffers.entries())
      check(
        b.buffer.pending === 0,
        "never stalled",
        () => `buffer${i} (closed) still holds ${b.buffer.pending} keys after a healthy flush()`,
      );

    const extra = unconfirmedAdds(network);
    for (const item of config.items) {
      for (const attribute of config.attributes) {
        const k = at(item, attribute);
        const want = acked.get(k) ?? 0n;
        const got = stored(model, item, attribute);
        if (exactlyOnce)
          check(got === want, "exactly once with a writer id", () => `${item}.${attribute}: stored ${got}, acknowledged ${want}`);
        else {
          check(got >= want, "at least once without a writer id", () => `${item}.${attribute}: stored ${got} < acknowledged ${want}`);
          check(
            got - want <= (extra.get(k) ?? 0n),
            "more than once only after an ambiguous failure",
            () => `${item}.${attribute}: stored ${got}, acknowledged ${want}, applied unconfirmed ${extra.get(k) ?? 0n}`,
          );
        }
      }
    }
  },
};
