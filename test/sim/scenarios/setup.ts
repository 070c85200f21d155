// Simulated createTable under faults and a DescribeTable that lags behind CreateTable: right tables appear, wrong ones are named, every call bounded.
import { CounterError } from "../../../src/index.ts";
import type { ModelAnswer } from "../dynamo-model.ts";
import { check, checkNoSecrets, drawFaults, times, type Plan, type Scenario } from "../scenario.ts";
import { EPOCH, type Rng } from "../world.ts";

/** Key schemas a call may ask for (the stand-in models string keys only). */
const LAYOUTS: ReadonlyArray<{ keyAttribute: string; sortKeyAttribute?: string }> = [
  { keyAttribute: "id" },
  { keyAttribute: "pk" },
  { keyAttribute: "id", sortKeyAttribute: "day" },
  { keyAttribute: "id", sortKeyAttribute: "sk" },
];
const TTLS = ["expiresAt", "ttl"];
/** Not "Sim": the shared set-up creates that one. */
const tableName = (i: number) => `Setup${i}`;

interface Config {
  /** Per table, the layout most calls ask for (others sometimes ask for another one). */
  tables: Array<{ layout: number }>;
  /** DescribeTable answers ResourceNotFoundException for a table until both have passed since its CreateTable. */
  lag: { calls: number; ms: number };
  client: { timeoutMs: number; attempts: number; throttleAttempts: number };
}

const MAX_DELAY_MS = 50;

export const setupScenario: Scenario<Config> = {
  name: "setup",
  plan(rng: Rng): Plan<Config> {
    const span = rng.pick([500, 3000, 10_000]);
    const config: Config = {
      tables: Array.from({ length: rng.int(1, 3) }, () => ({ layout: rng.chance(0.6) ? 0 : rng.int(0, LAYOUTS.length - 1) })),
      lag: { calls: rng.pick([0, 1, 3, 8]), ms: rng.pick([0, 0, 200, 1500, 4000]) },
      client: { timeoutMs: rng.pick([50, 300, 1000]), attempts: rng.int(1, 4), throttleAttempts: rng.int(1, 3) },
    };
    // Steps go on for as long again after faults stop, so some calls run on a healthy network.
    const steps = times(rng, rng.int(2, 12), 2 * span).map((at) => {
      const table = rng.int(0, config.tables.length - 1);
      const layout = rng.chance(0.7) ? config.tables[table]!.layout : rng.int(0, LAYOUTS.length - 1);
      const ttl = rng.chance(0.4) ? rng.pick(TTLS) : null;
      // Someone else's table, made directly on the stand-in (as the console or another tool would).
      if (rng.chance(0.2)) return { at, what: "existing", args: [table, layout, ttl] };
      return { at, what: "create", args: [table, layout, ttl, rng.pick([0, 100, 1000, 5000])] };
    });
    return { flavor: rng.chance(0.5) ? "dynalite" : "ddblocal", faults: drawFaults(rng, EPOCH + span), config, steps };
  },

  async run(sim, plan) {
    const { world, model, network } = sim;
    const { config, faults } = plan;
    const lite = model.flavor === "dynalite";

    // The lag: wraps the stand-in so DescribeTable says "not found" for a while after each CreateTable, as
    // DynamoDB's eventually consistent table metadata may. `visibleFrom` is when the first true answer went out:
    // the lag ends for good then (both its conditions only ever become true).
    const handle = model.handle.bind(model);
    const lag = new Map<string, { at: number; describes: number; visibleFrom?: number }>();
    model.handle = (operation: string, body: unknown): ModelAnswer => {
      const name = String((body as { TableName?: unknown }).TableName);
      if (operation === "DescribeTable") {
        const l = lag.get(name);
        if (l && l.visibleFrom === undefined) {
          if (l.describes++ < config.lag.calls || world.now - l.at < config.lag.ms) {
            const type = "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException";
            return lite
              ? { status: 400, body: { __type: type, message: `Requested resource not found: Table: ${name} not found` } }
              : { status: 400, body: { __type: type, Message: "Cannot do operations on a non-existent table" } };
          }
          l.visibleFrom = world.now;
        }
      }
      const out = handle(operation, body);
      if (operation === "CreateTable" && out.status === 200) lag.set(name, { at: world.now, describes: 0 });
      return out;
    };

    /** The table as it really is (past the lag): its keys and TTL attribute; undefined when it does not exist. */
    const truth = (name: string) => {
      const described = handle("DescribeTable", { TableName: name });
      if (described.status !== 200) return undefined;
      const keys = (described.body.Table as { KeySchema: Array<{ AttributeName: string; KeyType: string }> }).KeySchema;
      const ttl = handle("DescribeTimeToLive", { TableName: name }).body.TimeToLiveDescription as { AttributeName?: string } | undefined;
      return {
        keyAttribute: keys.find((k) => k.KeyType === "HASH")!.AttributeName,
        sortKeyAttribute: keys.find((k) => k.KeyType === "RANGE")?.AttributeName,
        ttl: ttl?.AttributeName,
      };
    };

    const retry = {
      attempts: config.client.attempts,
      baseDelayMs: 5,
      maxDelayMs: MAX_DELAY_MS,
      throttle: { attempts: config.client.throttleAttempts, baseDelayMs: 5, maxDelayMs: MAX_DELAY_MS },
    };
    // One request, every attempt and backoff included; createTable sends CreateTable, polls DescribeTable until
    // its deadline (the last poll starts by then) and, for TTL, at most three more requests.
    const perRequest = (config.client.attempts + config.client.throttleAttempts) * (config.client.timeoutMs + MAX_DELAY_MS + 2) + 5;
    const bound = (waitMs: number) => waitMs + 5 * perRequest + 50;

    let pending = 0;
    let calls = 0;
    /** Runs createTable on a client of its own (so the network log tells its requests apart) and checks what it answered against what the stand-in holds. */
    const create = (table: number, layoutIndex: number, ttl: string | null, waitMs: number, label: string, mustResolve = false) => {
      const caller = `setup${calls++}`;
      const client = network.client(caller, { timeoutMs: mustResolve ? 1000 : config.client.timeoutMs, retry });
      const name = tableName(table);
      const layout = LAYOUTS[layoutIndex]!;
      const started = world.now;
      const calm = started >= faults.until; // no fault and no outage can touch any of its requests
      pending++;
      world.spawn(async () => {
        let error: unknown;
        try {
          await client.createTable({ tableName: name, ...layout, ...(ttl !== null ? { ttlAttribute: ttl } : {}), waitMs });
        } catch (e) {
          error = e;
        }
        pending--;
        const took = world.now - started;
        const what = () =>
          `${label}: createTable(${name}, ${JSON.stringify(layout)}, ttl ${ttl}, waitMs ${waitMs}) at +${started - EPOCH} ms`;
        check(took <= bound(waitMs), "every call bounded", () => `${what()} took ${took} ms, more than ${bound(waitMs)}`);
        checkNoSecrets(error);
        check(
          error === undefined || !mustResolve,
          "createTable resolves on a table as it is, once faults and the lag are over",
          () => `${what()}: ${String(error)}`,
        );
        const real = truth(name);
        const sameKeys =
          real !== undefined && real.keyAttribute === layout.keyAttribute && real.sortKeyAttribute === layout.sortKeyAttribute;
        if (error === undefined) {
          check(
            sameKeys,
            "createTable resolves only on a table with the key schema asked for",
            () => `${what()} resolved; the table is ${JSON.stringify(real)}`,
          );
          if (ttl !== null && !lite)
            check(real!.ttl === ttl, "createTable enables the TTL asked for", () => `${what()} resolved; TTL is on ${real!.ttl}`);
          return;
        }
        check(error instanceof CounterError, "errors are CounterErrors", () => `${what()}: ${String(error)}`);
        const e = error as CounterError;
        if (e.code === "Config") {
          check(real !== undefined, "a Config error describes a table that exists", () => `${what()}: ${e.message}`);
          if (!sameKeys) {
            // The message names the table and each name that differs, on both sides.
            const names = [name];
            if (real.keyAttribute !== layout.keyAttribute) names.push(real.keyAttribute, layout.keyAttribute);
            if (real.sortKeyAttribute !== layout.sortKeyAttribute)
              names.push(...[real.sortKeyAttribute, layout.sortKeyAttribute].filter((n): n is string => n !== undefined));
            check(
              names.every((n) => e.message.includes(`"${n}"`)),
              "a key schema mismatch names what differs",
              () => `${what()} on ${JSON.stringify(real)}: ${e.message}`,
            );
          } else {
            check(
              !lite && ttl !== null && real.ttl !== undefined && real.ttl !== ttl,
              "a Config error on the right key schema is a TTL conflict",
              () => `${what()} on ${JSON.stringify(real)}: ${e.message}`,
            );
            check(
              e.message.includes(`"${ttl}"`) && e.message.includes(`"${real.ttl}"`),
              "a TTL conflict names both attributes",
              () => `${what()}: ${e.message}`,
            );
          }
          return;
        }
        if (e.code === "Timeout" && e.awsType === "ResourceNotFoundException") {
          // The table never showed within waitMs: only allowed while the lag lasted until (about) the deadline.
          // A poll goes out at least every second and one at the deadline, so a lag over 1.1 s before it is missed.
          const polls = network.log.filter((d) => d.client === caller && d.operation === "DescribeTable");
          const last = polls[polls.length - 1]?.at ?? started;
          // Its last look went out at the deadline, or was still on its way there (a healthy round trip is at most 40 ms).
          check(
            took >= waitMs && (!calm || last >= started + waitMs - 40),
            "createTable looks until waitMs has passed before giving up",
            () => `${what()} gave up after ${took} ms, its last DescribeTable at +${last - started} ms`,
          );
          const visibleFrom = lag.get(name)?.visibleFrom;
          check(
            visibleFrom === undefined || visibleFrom > started + waitMs - 1100 || !calm,
            "createTable resolves when the table appears within waitMs",
            () => `${what()} timed out, but DescribeTable has found the table since +${visibleFrom! - EPOCH} ms: ${e.message}`,
          );
          check(e.message.includes(name) && e.message.includes("waitMs"), "a lag timeout says what to do", () => e.message);
          return;
        }
        check(
          e.code !== "TableNotFound",
          "DescribeTable's ResourceNotFoundException after CreateTable is retried, never surfaced",
          () => `${what()}: ${e.message}`,
        );
        check(
          !calm,
          "on a healthy network createTable fails only with Config or a lag timeout",
          () => `${what()}: ${e.code}: ${e.message}`,
        );
      });
    };

    for (const step of plan.steps) {
      world.at(EPOCH + step.at, () => {
        if (step.what === "existing") {
          const [table, layoutIndex, ttl] = step.args as [number, number, string | null];
          const layout = LAYOUTS[layoutIndex]!;
          const attributes = [{ AttributeName: layout.keyAttribute, AttributeType: "S" }];
          const keys = [{ AttributeName: layout.keyAttribute, KeyType: "HASH" }];
          if (layout.sortKeyAttribute) {
            attributes.push({ AttributeName: layout.sortKeyAttribute, AttributeType: "S" });
            keys.push({ AttributeName: layout.sortKeyAttribute, KeyType: "RANGE" });
          }
          // Through the wrapper, so it lags as well; ResourceInUseException when the table exists is fine.
          const out = model.handle("CreateTable", {
            TableName: tableName(table),
            AttributeDefinitions: attributes,
            KeySchema: keys,
            BillingMode: "PAY_PER_REQUEST",
          });
          if (out.status === 200 && ttl !== null && !lite) {
            handle("UpdateTimeToLive", { TableName: tableName(table), TimeToLiveSpecification: { AttributeName: ttl, Enabled: true } });
          }
          return;
        }
        const [table, layout, ttl, waitMs] = step.args as [number, number, string | null, number];
        create(table, layout, ttl, waitMs, `step at +${step.at}`);
      });
    }
    await world.run(faults.until + 2 * (faults.until - EPOCH) + 120_000);
    check(pending === 0, "every call bounded", () => `${pending} createTable calls never settled`);

    // Faults over, lag long past: each table set up as it is (or as planned, when none exists yet) resolves; another
    // key schema on it is a Config error.
    const fresh = network.client("after", { timeoutMs: 1000, retry });
    config.tables.forEach((planned, i) => {
      const real = truth(tableName(i));
      const right = real
        ? LAYOUTS.findIndex((l) => l.keyAttribute === real.keyAttribute && l.sortKeyAttribute === real.sortKeyAttribute)
        : planned.layout;
      create(i, right, real?.ttl ?? null, 10_000, "after faults", true);
      pending++;
      world.spawn(async () => {
        // After that call has created it, if needed.
        await new Promise((r) => setTimeout(r, 20_000));
        const wrong = (right + 1) % LAYOUTS.length;
        let error: unknown;
        try {
          await fresh.createTable({ tableName: tableName(i), ...LAYOUTS[wrong]!, waitMs: 10_000 });
        } catch (e) {
          error = e;
        }
        pending--;
        check(
          error instanceof CounterError && error.code === "Config",
          "createTable on another key schema is a Config error",
          () => `${tableName(i)} asked as ${JSON.stringify(LAYOUTS[wrong])}: ${String(error)}`,
        );
      });
    });
    await world.run(world.now + 60_000);
    check(pending === 0, "every call bounded", () => `${pending} createTable calls never settled after faults`);
  },
};
