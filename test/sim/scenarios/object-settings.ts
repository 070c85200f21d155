// What the Durable Object scenarios share: the flush settings they draw, the client and engine options each
// incarnation of an object gets, and how long a run settles after its faults stop.
import type { CounterClient } from "../../../src/index.ts";
import type { SimDurableObject, Incarnation } from "../durable-state.ts";
import type { Network } from "../network.ts";
import { checkNoSecrets, deadLetterCheck, TABLE } from "../scenario.ts";
import type { Rng, World } from "../world.ts";

export interface ObjectSettings {
  maxKeys: number;
  flushIntervalMs: number;
  maxRetryDelayMs: number;
  concurrency: number;
  client: { timeoutMs: number; attempts: number };
}

/** Draws the settings (in a fixed order, so that a seed's plan never changes with a refactoring). */
export const drawObjectSettings = (rng: Rng, maxKeys: number): ObjectSettings => ({
  maxKeys: rng.int(1, maxKeys),
  flushIntervalMs: rng.pick([5, 50, 500]),
  maxRetryDelayMs: rng.pick([100, 1000]),
  concurrency: rng.int(1, 4),
  client: { timeoutMs: rng.pick([50, 300, 1000]), attempts: rng.int(1, 4) },
});

/** The client of one incarnation (`alive`: whether that incarnation still runs), named for the request log. */
export const objectClient = (network: Network, name: string, s: ObjectSettings, alive: () => boolean): CounterClient =>
  network.client(
    name,
    { tableName: TABLE, timeoutMs: s.client.timeoutMs, retry: { attempts: s.client.attempts, baseDelayMs: 10, maxDelayMs: 100 } },
    alive,
  );

/**
 * The flush engine's options: errors checked for secrets, and a dead letter is a failure unless the plan's faults
 * include answers that end a write for good (`lettersExpected`).
 */
export const engineOptions = (world: World, s: ObjectSettings, lettersExpected = false) => ({
  maxKeys: s.maxKeys,
  flushIntervalMs: s.flushIntervalMs,
  maxRetryDelayMs: s.maxRetryDelayMs,
  concurrency: s.concurrency,
  onError: checkNoSecrets,
  onDeadLetter: deadLetterCheck(world, lettersExpected),
});

/**
 * Once the faults are over (access fixed): each object restarts and puts back what it set aside, then the run
 * settles for two bounds (a restart waits for the alarm it finds: a backoff begun before the faults ended).
 */
export async function restartAndRetry(
  world: World,
  objects: Array<SimDurableObject<Incarnation & { retryDeadLetters(): Promise<number> }>>,
  until: number,
  bound: number,
): Promise<void> {
  await world.run(until);
  for (const object of objects) {
    object.evict();
    world.spawn(() => object.live.retryDeadLetters());
  }
  await world.run(until + 2 * bound);
}

/** How long after the faults stop every retry and alarm has had its chance. */
export const settleMs = (s: ObjectSettings): number =>
  4 * (s.maxRetryDelayMs + s.flushIntervalMs + s.client.timeoutMs * s.client.attempts) + 2000;

/** The count records (pending "p:", in progress "b:") still in an object's storage. */
export const countRecordsLeft = (object: SimDurableObject<Incarnation>): string[] =>
  [...object.data.keys()].filter((k) => k.startsWith("p:") || k.startsWith("b:"));
