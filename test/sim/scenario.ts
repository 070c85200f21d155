// What every simulated scenario provides, and the set-up they share: a world, a stand-in DynamoDB, a faulty network.
import { DynamoModel, type Flavor } from "./dynamo-model.ts";
import { Network, SIM_CREDENTIALS, type Fault, type FaultPlan } from "./network.ts";
import { EPOCH, SimFailure, type Rng, type World } from "./world.ts";

/** One scheduled action of a run: JSON, so a failing run prints it and a shrunk run replays it. */
export interface Step {
  /** Virtual ms after the start. */
  at: number;
  what: string;
  args: Array<string | number | boolean | null>;
}

/** A run's settings and its actions, all drawn from the seed. */
export interface Plan<C> {
  flavor: Flavor;
  faults: FaultPlan;
  config: C;
  steps: Step[];
}

/** A scenario drives real library code through a plan and throws {@link SimFailure} when a promise breaks. */
export interface Scenario<C = unknown> {
  name: string;
  plan(rng: Rng): Plan<C>;
  run(sim: Sim, plan: Plan<C>): Promise<void>;
}

/** What a scenario runs in. */
export interface Sim {
  world: World;
  model: DynamoModel;
  network: Network;
}

export const TABLE = "Sim";

/** The stand-in and network for a plan, with the table created. */
export function setUp(world: World, plan: Plan<unknown>): Sim {
  const model = new DynamoModel(plan.flavor);
  const created = model.handle("CreateTable", {
    TableName: TABLE,
    AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
    KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
    BillingMode: "PAY_PER_REQUEST",
  });
  if (created.status !== 200) throw new Error(`stand-in refused CreateTable: ${JSON.stringify(created.body)}`);
  return { world, model, network: new Network(world, model, plan.faults) };
}

/** A fault plan drawn from the seed: sometimes none, sometimes a storm; always over before `until`. */
export function drawFaults(rng: Rng, until: number, failing: readonly Fault[] = []): FaultPlan {
  const calm = rng.chance(0.15);
  const kinds: FaultPlan["kinds"] = {};
  for (const kind of ["lost", "reset", "5xx", "5xx-applied", "throttle", "hang", "slow"] as const)
    if (rng.chance(0.6)) kinds[kind] = rng.int(1, 5);
  // Answers that end a call for good (dead letters in a buffer): only for scenarios that opt in, drawn last so
  // that every other scenario's plans stay as they were.
  for (const kind of failing) if (rng.chance(0.3)) kinds[kind as Exclude<Fault, "ok">] = 1;
  const down: Array<[number, number]> = [];
  for (let i = rng.int(0, 2); i > 0; i--) {
    const a = EPOCH + rng.int(0, until - EPOCH);
    down.push([a, a + rng.int(10, 3000)]);
  }
  return {
    rate: calm ? 0 : rng.pick([0.05, 0.2, 0.5]),
    kinds,
    until,
    down: calm ? [] : down,
    runtime: rng.chance(0.5) ? "node" : "deno",
    echoSecrets: rng.chance(0.5),
  };
}

/** Answers that make dead letters: refused credentials, and a write applied but answered with a garbled body. */
export const FAILING = ["denied", "garbled-applied"] as const;

/** Whether a plan's faults can end writes for good (dead letters, retried once the faults are over). */
export const lettersExpectedIn = (faults: FaultPlan): boolean => FAILING.some((k) => faults.kinds[k] !== undefined && faults.rate > 0);

/** A buffer's `onDeadLetter`: its error checked for secrets, and a failure unless the plan's faults make letters. */
export const deadLetterCheck =
  (world: World, lettersExpected: boolean) =>
  (letter: { error: { code: string; message: string } }): void => {
    checkNoSecrets(letter.error);
    if (!lettersExpected) world.failures.push(new Error(`dead letter in a healthy set-up: ${letter.error.code}: ${letter.error.message}`));
  };

/** Random times for `n` steps in [0, span), sorted. */
export const times = (rng: Rng, n: number, span: number): number[] =>
  Array.from({ length: n }, () => rng.int(0, span - 1)).sort((a, b) => a - b);

/** The number attribute `attribute` of the item with partition key `id` (0n when missing). */
export function stored(model: DynamoModel, id: string, attribute: string): bigint {
  for (const item of model.items(TABLE).values()) {
    const it = item as Record<string, { S?: string; N?: string }>;
    if (it.id?.S === id) return BigInt(it[attribute]?.N ?? "0");
  }
  return 0n;
}

/** Throws a SimFailure unless `ok`. */
export function check(ok: boolean, invariant: string, detail: () => string): asserts ok {
  if (!ok) throw new SimFailure(invariant, detail());
}

/** The ADD deltas per (item id, attribute) in requests DynamoDB applied while their sender saw a failure. */
export function unconfirmedAdds(network: Network): Map<string, bigint> {
  const extra = new Map<string, bigint>();
  for (const { operation, body } of network.unconfirmed) {
    if (operation !== "UpdateItem") continue;
    const update = String(body.UpdateExpression ?? "");
    const names = (body.ExpressionAttributeNames ?? {}) as Record<string, string>;
    const values = (body.ExpressionAttributeValues ?? {}) as Record<string, { N?: string }>;
    const id = (body.Key as Record<string, { S: string }>).id!.S;
    const add = /ADD (.*?)(?: SET | REMOVE |$)/.exec(update)?.[1];
    if (!add) continue;
    for (const part of add.split(",")) {
      const [name, value] = part.trim().split(/\s+/);
      const key = `${id}\u0000${names[name!] ?? name}`;
      extra.set(key, (extra.get(key) ?? 0n) + BigInt(values[value!]?.N ?? "0"));
    }
  }
  return extra;
}

/** Throws a SimFailure when an error (message, stack, cause, JSON, inspection) shows a credential secret. */
export function checkNoSecrets(error: unknown): void {
  if (error === undefined) return;
  // Everything an error shows (message, structured fields, its causes'), without formatting stacks: that is
  // the simulator's most expensive step and shows nothing the message does not.
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    parts.push(
      String(e),
      JSON.stringify(e) ?? "",
      typeof e === "object"
        ? JSON.stringify(
            Object.getOwnPropertyNames(e)
              .filter((k) => k !== "stack")
              .map((k) => String((e as Record<string, unknown>)[k] ?? "")),
          )
        : "",
    );
    e = (e as { cause?: unknown }).cause;
  }
  const shown = parts.join("\n");
  const message = (error as Error).message ?? "";
  check(!/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(message), "no message spans lines because of caller or server text", () =>
    JSON.stringify(message),
  );
  for (const secret of [SIM_CREDENTIALS.secretAccessKey, SIM_CREDENTIALS.sessionToken]) {
    check(!shown.includes(secret), "no secrets in output", () => `an error shows a credential: ${(error as Error).message}`);
  }
}
