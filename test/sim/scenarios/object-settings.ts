// What the Durable Object scenarios share: the flush settings they draw, the client and engine options each
// incarnation of an object gets, and how long a run settles after its faults stop.
import type { CounterClient } from "../../../src/index.ts";
import type { SimDurableObject, Incarnation } from "../durable-state.ts";
import type { FaultPlan, Network } from "../network.ts";
import { checkNoSecrets, TABLE } from "../scenario.ts";
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
  onDeadLetter: (letter: { error: { code: string; message: string } }) => {
    checkNoSecrets(letter.error);
    if (!lettersExpected) world.failures.push(new Error(`dead letter in a healthy set-up: ${letter.error.code}: ${letter.error.message}`));
  },
});

/** Answers that make dead letters: refused credentials, and a write applied but answered with a garbled body. */
export const FAILING = ["denied", "garbled-applied"] as const;

/** Whether a plan's faults can end writes for good (dead letters, retried once the faults are over). */
export const lettersExpectedIn = (faults: FaultPlan): boolean => FAILING.some((k) => faults.kinds[k] !== undefined && faults.rate > 0);

/** How long after the faults stop every retry and alarm has had its chance. */
export const settleMs = (s: ObjectSettings): number =>
  4 * (s.maxRetryDelayMs + s.flushIntervalMs + s.client.timeoutMs * s.client.attempts) + 2000;

/** The count records (pending "p:", in progress "b:") still in an object's storage. */
export const countRecordsLeft = (object: SimDurableObject<Incarnation>): string[] =>
  [...object.data.keys()].filter((k) => k.startsWith("p:") || k.startsWith("b:"));
