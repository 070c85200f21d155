// Differential test of the simulator's DynamoDB (test/sim/dynamo-model.ts): random traces of the requests dynacount
// sends go, signed, to each real server and to the model of that server; every answer and the final tables must match.
// A failure prints its seed; `DIFF_SEED=<seed>` replays the same traces.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AwsClient } from "aws4fetch";
import { markerAttribute } from "../../src/buffer/writer.ts";
import { planUpdate, type Item as PlanItem, type Plan } from "../../src/usecases/ratelimit/algorithm.ts";
import { bucketAlgorithm } from "../../src/usecases/ratelimit/bucket.ts";
import { windowAlgorithm } from "../../src/usecases/ratelimit/windows.ts";
import { seededRandom } from "../support/fault-proxy.ts";
import { credentials, servers, uniqueTable } from "../support/harness.ts";
import { DynamoModel, type Flavor, type ModelAnswer } from "../sim/dynamo-model.ts";

type Json = Record<string, unknown>;
type Key = Record<string, { S: string }>;

const SEED = process.env.DIFF_SEED === undefined ? (Date.now() ^ (process.pid << 16)) >>> 0 : Number(process.env.DIFF_SEED);
/** Random requests per table. */
const STEPS = Number(process.env.DIFF_STEPS ?? 150);

const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);
const stable = (x: unknown): string =>
  Array.isArray(x)
    ? `[${x.map(stable).join(",")}]`
    : isObject(x)
      ? `{${Object.keys(x)
          .sort()
          .map((k) => `${JSON.stringify(k)}:${stable(x[k])}`)
          .join(",")}}`
      : JSON.stringify(x);

const aws = new AwsClient({ ...credentials, service: "dynamodb", region: "us-east-1", retries: 0 });

async function sendRaw(endpoint: string, operation: string, body: Json): Promise<ModelAnswer> {
  const res = await aws.fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": `DynamoDB_20120810.${operation}` },
    body: JSON.stringify(body),
    // dynalite crashes on a few conditions (it never answers): fail rather than hang.
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Json };
}

/** Drops what the servers fill with clocks and random ids, and the order of BatchGetItem's answers (unspecified). */
function normalize(operation: string, answer: ModelAnswer): ModelAnswer {
  const body = structuredClone(answer.body);
  for (const field of ["Table", "TableDescription"]) {
    const t = body[field];
    if (!isObject(t)) continue;
    delete t.CreationDateTime;
    delete t.TableId;
    if (isObject(t.BillingModeSummary)) delete t.BillingModeSummary.LastUpdateToPayPerRequestDateTime;
  }
  // The text after "Syntax error;" is each server's parser speaking (a PEG in dynalite, ANTLR in DynamoDB Local):
  // not modelled, and dynacount never sends a malformed expression.
  for (const field of ["message", "Message"]) {
    const m = body[field];
    if (typeof m === "string" && /^Invalid \w+: Syntax error;/.test(m)) body[field] = m.replace(/Syntax error;.*/s, "Syntax error; …");
  }
  if (operation === "BatchGetItem" && isObject(body.Responses)) {
    for (const list of Object.values(body.Responses)) if (Array.isArray(list)) list.sort((a, b) => (stable(a) < stable(b) ? -1 : 1));
  }
  return { status: answer.status, body };
}

interface Layout {
  name: string;
  hash: string;
  range?: string;
}

/** One server, its model, the tables and the random choices of a trace. */
class Trace {
  readonly model: DynamoModel;
  readonly random: () => number;
  readonly history: string[] = [];
  /** Items as they were earlier (by key), for stale `seen` hints like a limiter's. */
  readonly snapshots = new Map<string, PlanItem[]>();
  steps = 0;

  constructor(
    readonly flavor: Flavor,
    readonly endpoint: string,
    seed: number,
  ) {
    // dynalite names its process's region and account in table ARNs (the servers run with this process's environment).
    const env = process.env;
    this.model = new DynamoModel(flavor, {
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
      accountId: (env.AWS_ACCOUNT_ID || "0000-0000-0000").replace(/\D/g, ""),
    });
    this.random = seededRandom(seed);
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.random() * list.length)]!;
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  /** Sends one request to the server and to the model; their answers must be equal. */
  async check(operation: string, body: Json): Promise<ModelAnswer> {
    const step = `#${++this.steps} ${operation} ${JSON.stringify(body)}`;
    this.history.push(step);
    const got = normalize(operation, await sendRaw(this.endpoint, operation, body));
    let want: ModelAnswer;
    try {
      want = normalize(operation, this.model.handle(operation, structuredClone(body)));
    } catch (error) {
      throw new Error(`${this.where()}\nthe model threw on ${step}\nserver answered ${JSON.stringify(got)}`, { cause: error });
    }
    assert.deepEqual(want, got, `${this.where()}\nmodel and ${this.flavor} differ on ${step}`);
    return got;
  }

  where(): string {
    return `[${this.flavor}, seed ${SEED}: replay with DIFF_SEED=${SEED}]\nlast steps:\n  ${this.history.slice(-6).join("\n  ")}`;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Values

/** A small integer, sometimes written the way only DynamoDB Local keeps ("007", "-0", "+5"). */
function number(t: Trace, lo = -3, hi = 9): string {
  const n = t.int(lo, hi);
  if (t.chance(0.08)) return t.pick([`00${n < 0 ? -n : n}`, "-0", "000", `+${n < 0 ? -n : n}`, `-00${n < 0 ? -n : n}`]);
  return String(n);
}

const BIG = "99999999999999999999999999999999999999";

// ---------------------------------------------------------------------------------------------------------------
// The requests dynacount sends (shapes from src/), with random values

const COUNT = ["lastValue", "count"];
const WRITERS = [markerAttribute("w1"), markerAttribute("w2")];
const OTHER = ["misc", "label", "lw", "tat", "expiresAt", "nope"];

interface Ctx {
  t: Trace;
  table: Layout;
  keys: Key[];
}

const keyId = (layout: Layout, key: Key): string => JSON.stringify([key[layout.hash]!.S, ...(layout.range ? [key[layout.range]!.S] : [])]);

function randomKey(c: Ctx): Key {
  return c.t.pick(c.keys);
}

/** The item the model holds now, an older one, or none: the `seen` hint of a rate limiter instance. */
function seen(c: Ctx, key: Key): PlanItem | undefined {
  const id = keyId(c.table, key);
  const now = c.t.model.items(c.table.name).get(id) as PlanItem | undefined;
  const old = c.t.snapshots.get(id) ?? [];
  const r = c.t.random();
  if (r < 0.55) return now;
  if (r < 0.85 && old.length > 0) return c.t.pick(old);
  return undefined;
}

/** A limiter's conditional update (RateLimiter#update). */
const planRequest = (c: Ctx, key: Key, plan: Plan): Json => planUpdate(c.table.name, key, plan) as Json;

const WINDOW = 1000;
const EPOCH = 1_700_000_000_000;

/** A condition over a few attributes (present, missing, of either type), with every operator the model knows. */
function randomCondition(c: Ctx, names: Record<string, string>, values: Record<string, unknown>, depth = 0): string {
  const t = c.t;
  const name = () => {
    const n = `#n${Object.keys(names).length}`;
    names[n] = t.pick([...COUNT, ...WRITERS, ...OTHER]);
    return n;
  };
  const value = () => {
    const v = `:v${Object.keys(values).length}`;
    values[v] = t.chance(0.15) ? { S: t.pick(["a", "b", "7"]) } : { N: number(t, -2, 6) };
    return v;
  };
  const operand = () => (t.chance(0.6) ? name() : value());
  const numberValue = () => {
    const v = `:v${Object.keys(values).length}`;
    values[v] = { N: number(t, -2, 6) };
    return v;
  };
  const word = (w: string) => (t.chance(0.3) ? w.toLowerCase() : w);
  const r = t.random();
  if (depth < 2 && r < 0.35) {
    const op = t.pick(["AND", "OR"]);
    const expr = `${randomCondition(c, names, values, depth + 1)} ${word(op)} ${randomCondition(c, names, values, depth + 1)}`;
    return t.chance(0.5) ? `(${expr})` : expr;
  }
  if (depth < 3 && r < 0.45) return `${word("NOT")} ${randomCondition(c, names, values, depth + 1)}`;
  if (r < 0.6) return `${t.pick(["attribute_exists", "attribute_not_exists"])}(${name()})`;
  // dynalite crashes (and never answers) on a BETWEEN whose upper bound is missing or not a number while the
  // attribute is a number at least the lower bound: its upper bound here is always a number value.
  if (r < 0.7) return `${operand()} ${word("BETWEEN")} ${operand()} ${word("AND")} ${t.flavor === "dynalite" ? numberValue() : operand()}`;
  return `${operand()} ${t.pick(["=", "<>", "<", "<=", ">", ">="])} ${operand()}`;
}

type Generator = (c: Ctx) => { operation: string; body: Json } | undefined;

const generators: { weight: number; make: Generator }[] = [
  {
    // CounterClient.increment / reserve
    weight: 6,
    make: (c) => ({
      operation: "UpdateItem",
      body: {
        TableName: c.table.name,
        Key: randomKey(c),
        UpdateExpression: "ADD #c :by",
        ExpressionAttributeNames: { "#c": c.t.pick(COUNT) },
        ExpressionAttributeValues: { ":by": { N: c.t.chance(0.03) ? c.t.pick([BIG, `-${BIG}`]) : number(c.t) } },
        ReturnValues: "UPDATED_NEW",
      },
    }),
  },
  {
    // The buffer's plain write (no writerId)
    weight: 3,
    make: (c) => ({
      operation: "UpdateItem",
      body: {
        TableName: c.table.name,
        Key: randomKey(c),
        UpdateExpression: "ADD #c :d",
        ExpressionAttributeNames: { "#c": c.t.pick(COUNT) },
        ExpressionAttributeValues: { ":d": { N: number(c.t) } },
      },
    }),
  },
  {
    // The buffer's exactly-once write
    weight: 8,
    make: (c) => ({
      operation: "UpdateItem",
      body: {
        TableName: c.table.name,
        Key: randomKey(c),
        UpdateExpression: "ADD #c :d SET #w = :s",
        ConditionExpression: "attribute_not_exists(#w) OR #w < :s",
        ExpressionAttributeNames: { "#c": c.t.pick(COUNT), "#w": c.t.pick(WRITERS) },
        ExpressionAttributeValues: { ":d": { N: number(c.t, -2, 5) }, ":s": { N: number(c.t, 0, 6) } },
        ReturnValues: "ALL_NEW",
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      },
    }),
  },
  {
    // CounterClient.get
    weight: 4,
    make: (c) => ({
      operation: "GetItem",
      body: {
        TableName: c.table.name,
        Key: randomKey(c),
        ConsistentRead: true,
        ProjectionExpression: "#c",
        ExpressionAttributeNames: { "#c": c.t.pick(COUNT) },
      },
    }),
  },
  {
    // The buffer's marker read (servers without ReturnValuesOnConditionCheckFailure)
    weight: 2,
    make: (c) => ({
      operation: "GetItem",
      body: {
        TableName: c.table.name,
        Key: randomKey(c),
        ConsistentRead: true,
        ProjectionExpression: "#w",
        ExpressionAttributeNames: { "#w": c.t.pick(WRITERS) },
      },
    }),
  },
  {
    // RateLimiter#read, and a projection of several attributes
    weight: 3,
    make: (c) =>
      c.t.chance(0.7)
        ? { operation: "GetItem", body: { TableName: c.table.name, Key: randomKey(c), ConsistentRead: true } }
        : {
            operation: "GetItem",
            body: {
              TableName: c.table.name,
              Key: randomKey(c),
              ProjectionExpression: "#a, #b, misc",
              ExpressionAttributeNames: { "#a": c.t.pick(COUNT), "#b": c.t.pick(WRITERS) },
            },
          },
  },
  {
    // ShardedCounter.total
    weight: 3,
    make: (c) => {
      const keys = c.keys.filter(() => c.t.chance(0.5));
      if (keys.length === 0) keys.push(randomKey(c));
      return {
        operation: "BatchGetItem",
        body: {
          RequestItems: {
            [c.table.name]: {
              Keys: keys,
              ConsistentRead: true,
              ProjectionExpression: "#c",
              ExpressionAttributeNames: { "#c": c.t.pick(COUNT) },
            },
          },
        },
      };
    },
  },
  {
    // RateLimiter.reset
    weight: 2,
    make: (c) => ({ operation: "DeleteItem", body: { TableName: c.table.name, Key: randomKey(c) } }),
  },
  {
    // Sliding and fixed windows: take and refund plans
    weight: 10,
    make: (c) => {
      const t = c.t;
      const key = randomKey(c);
      const algo = windowAlgorithm(t.int(1, 5), WINDOW, t.chance(0.6), "expiresAt");
      const now = EPOCH + t.int(0, 14) * WINDOW + t.int(0, WINDOW - 1);
      const plan = t.chance(0.8) ? algo.take(now, t.int(1, 3), seen(c, key)) : algo.refund(now, t.int(1, 3), seen(c, key));
      return plan && { operation: "UpdateItem", body: planRequest(c, key, plan) };
    },
  },
  {
    // Token bucket: take and refund plans
    weight: 6,
    make: (c) => {
      const t = c.t;
      const key = randomKey(c);
      const algo = bucketAlgorithm(t.int(1, 5), WINDOW, "expiresAt");
      const now = EPOCH + t.int(0, 5000);
      const plan = t.chance(0.75) ? algo.take(now, t.int(1, 3), seen(c, key)) : algo.refund(now, t.int(1, 3), seen(c, key));
      return plan && { operation: "UpdateItem", body: planRequest(c, key, plan) };
    },
  },
  {
    // Numbers written as given (DynamoDB Local keeps "007"), strings where numbers are expected, arithmetic, REMOVE
    weight: 5,
    make: (c) => {
      const t = c.t;
      const a = t.pick([...COUNT, ...OTHER, ...WRITERS]);
      const b = t.pick([...COUNT, ...OTHER]);
      const value = t.chance(0.15) ? { S: t.pick(["x", ""]) } : { N: number(t) };
      const [update, names, values]: [string, Record<string, string>, Json] = t.pick([
        ["SET #a = :v", { "#a": a }, { ":v": value }],
        ["SET #a = #a + :c", { "#a": a }, { ":c": { N: number(t) } }],
        ["SET #a = #a - :c, #b = :v", { "#a": a, "#b": b }, { ":c": { N: number(t) }, ":v": { N: number(t) } }],
        ["SET #a = :v ADD #b :c", { "#a": a, "#b": b }, { ":v": value, ":c": { N: number(t) } }],
        ["REMOVE #a, #b", { "#a": a, "#b": b }, {}],
        ["REMOVE #a SET #b = :c", { "#a": a, "#b": b }, { ":c": { N: number(t) } }],
        ["ADD #a :c", { "#a": a }, { ":c": { N: t.chance(0.2) ? BIG : number(t) } }],
      ] as [string, Record<string, string>, Json][]);
      const body: Json = { TableName: c.table.name, Key: randomKey(c), UpdateExpression: update, ExpressionAttributeNames: names };
      if (Object.keys(values).length > 0) body.ExpressionAttributeValues = values;
      if (t.chance(0.6)) body.ReturnValues = t.pick(["NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"]);
      return { operation: "UpdateItem", body };
    },
  },
  {
    // Random conditions: operators, precedence, missing attributes, mixed types
    weight: 6,
    make: (c) => {
      const names: Record<string, string> = { "#z": "misc" };
      const values: Record<string, unknown> = { ":z": { N: number(c.t) } };
      const condition = randomCondition(c, names, values);
      return {
        operation: "UpdateItem",
        body: {
          TableName: c.table.name,
          Key: randomKey(c),
          UpdateExpression: "SET #z = :z",
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValuesOnConditionCheckFailure: c.t.pick(["ALL_OLD", "NONE", "ALL_OLD"]),
        },
      };
    },
  },
  {
    // Transactions: marker writes and checks, client request tokens reused (replays and mismatches)
    weight: 5,
    make: (c) => {
      const t = c.t;
      if (c.t.flavor === "dynalite" && t.chance(0.8)) return undefined;
      const items: Json[] = [];
      for (let i = t.int(1, 3); i > 0; i--) {
        const key = t.chance(0.1) && items.length > 0 ? ((Object.values(items[0]!)[0] as Json).Key as Key) : randomKey(c);
        const w = t.pick(WRITERS);
        const returnOld = t.pick([{ ReturnValuesOnConditionCheckFailure: "ALL_OLD" }, { ReturnValuesOnConditionCheckFailure: "NONE" }, {}]);
        if (t.chance(0.6)) {
          items.push({
            Update: {
              TableName: c.table.name,
              Key: key,
              UpdateExpression: "ADD #c :d SET #w = :s",
              ConditionExpression: "attribute_not_exists(#w) OR #w < :s",
              ExpressionAttributeNames: { "#c": t.pick(COUNT), "#w": w },
              ExpressionAttributeValues: { ":d": { N: number(t, -2, 5) }, ":s": { N: number(t, 0, 6) } },
              ...returnOld,
            },
          });
        } else {
          items.push({
            ConditionCheck: {
              TableName: c.table.name,
              Key: key,
              ConditionExpression: t.pick(["attribute_not_exists(#w) OR #w < :s", "#w = :s", "attribute_exists(#w)"]),
              ExpressionAttributeNames: { "#w": w },
              ...returnOld,
            },
          });
          const check = items[items.length - 1]!.ConditionCheck as Json;
          if ((check.ConditionExpression as string).includes(":s")) check.ExpressionAttributeValues = { ":s": { N: number(t, 0, 6) } };
        }
      }
      const body: Json = { TransactItems: items };
      if (t.chance(0.5)) body.ClientRequestToken = `${c.table.name}-${t.int(1, 4)}`;
      return { operation: "TransactWriteItems", body };
    },
  },
  {
    // Set-up and the odd request: describe, TTL, a second CreateTable, missing tables, bad keys, unused names
    weight: 3,
    make: (c) => {
      const t = c.t;
      const name = c.table.name;
      const missing = `${name}_missing`;
      const key = randomKey(c);
      const cases: (() => { operation: string; body: Json })[] = [
        () => ({ operation: "DescribeTable", body: { TableName: t.chance(0.8) ? name : missing } }),
        () => ({ operation: "DescribeTimeToLive", body: { TableName: t.chance(0.8) ? name : missing } }),
        () => ({
          operation: "UpdateTimeToLive",
          body: { TableName: name, TimeToLiveSpecification: { AttributeName: t.pick(["expiresAt", "other"]), Enabled: t.chance(0.6) } },
        }),
        () => ({ operation: "CreateTable", body: createTableBody(c.table) }),
        () => ({
          operation: t.pick(["GetItem", "DeleteItem"]),
          body: { TableName: missing, Key: key },
        }),
        () => ({
          operation: "UpdateItem",
          body: {
            TableName: t.chance(0.5) ? missing : name,
            Key: key,
            UpdateExpression: "ADD #c :d",
            ExpressionAttributeNames: { "#c": "lastValue" },
            ExpressionAttributeValues: { ":d": { N: "1" } },
          },
        }),
        () => ({ operation: "BatchGetItem", body: { RequestItems: { [missing]: { Keys: [key] } } } }),
        () => {
          // A key of the wrong shape.
          const bad: Json = structuredClone(key);
          const r = t.int(0, 3);
          if (r === 0) bad.extra = { S: "x" };
          else if (r === 1) bad[c.table.hash] = { N: "1" };
          else if (r === 2) bad[c.table.hash] = { S: "" };
          else if (c.table.range) delete bad[c.table.range];
          else delete bad[c.table.hash];
          return { operation: t.pick(["GetItem", "UpdateItem", "DeleteItem"]), body: { TableName: name, Key: bad } };
        },
        () => {
          // Names and values no expression uses: each server lists them in its own order.
          const names: Record<string, string> = { "#c": "lastValue" };
          const values: Json = { ":d": { N: "1" } };
          for (const n of ["#zz", "#b1", "#m", "#B", "#q", "#x7"]) if (t.chance(0.5)) names[n] = "x";
          for (const v of [":zz", ":b1", ":m", ":B"]) if (t.chance(0.3)) values[v] = { N: "2" };
          return {
            operation: "UpdateItem",
            body: {
              TableName: name,
              Key: key,
              UpdateExpression: "ADD #c :d",
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: values,
            },
          };
        },
        () => ({
          // The key is not an attribute an update may touch.
          operation: "UpdateItem",
          body: {
            TableName: name,
            Key: key,
            UpdateExpression: "SET #k = :v",
            ExpressionAttributeNames: { "#k": c.table.hash },
            ExpressionAttributeValues: { ":v": { S: "x" } },
          },
        }),
      ];
      return t.pick(cases)();
    },
  },
];

const TOTAL_WEIGHT = generators.reduce((s, g) => s + g.weight, 0);

function nextRequest(c: Ctx): { operation: string; body: Json } {
  for (;;) {
    let r = c.t.random() * TOTAL_WEIGHT;
    const g = generators.find((x) => (r -= x.weight) < 0) ?? generators[0]!;
    const request = g.make(c);
    if (request) return request;
  }
}

function createTableBody(layout: Layout): Json {
  const attributes = [{ AttributeName: layout.hash, AttributeType: "S" }];
  const schema = [{ AttributeName: layout.hash, KeyType: "HASH" }];
  if (layout.range) {
    attributes.push({ AttributeName: layout.range, AttributeType: "S" });
    schema.push({ AttributeName: layout.range, KeyType: "RANGE" });
  }
  return { TableName: layout.name, AttributeDefinitions: attributes, KeySchema: schema, BillingMode: "PAY_PER_REQUEST" };
}

// ---------------------------------------------------------------------------------------------------------------
// Scripted cases: every difference between the servers, in a fixed order before the random traces

async function scripted(t: Trace, layout: Layout, key: (id: string) => Key): Promise<void> {
  const T = layout.name;
  const update = (id: string, expr: string, names: Json, values: Json | undefined, extra: Json = {}) =>
    t.check("UpdateItem", {
      TableName: T,
      Key: key(id),
      UpdateExpression: expr,
      ExpressionAttributeNames: names,
      ...(values && { ExpressionAttributeValues: values }),
      ...extra,
    });
  // Number forms: canonical in dynalite; as sent in DynamoDB Local until arithmetic.
  await update("s1", "ADD #c :d", { "#c": "count" }, { ":d": { N: "007" } }, { ReturnValues: "UPDATED_NEW" });
  await update(
    "s1",
    "SET #x = :a, #y = :b",
    { "#x": "x", "#y": "y" },
    { ":a": { N: "-0" }, ":b": { N: "00012" } },
    { ReturnValues: "ALL_NEW" },
  );
  await update("s1", "SET #y = #y + :z", { "#y": "y" }, { ":z": { N: "000" } }, { ReturnValues: "UPDATED_NEW" });
  await update("s1", "SET #p = :p", { "#p": "plus" }, { ":p": { N: "+5" } }, { ReturnValues: "ALL_NEW" });
  await update("s1", "SET #p = :p", { "#p": "plus" }, { ":p": { N: "abc" } });
  await update("s1", "SET #p = :p", { "#p": "plus" }, { ":p": { N: "" } });
  // 38 digits: over in a value, over after arithmetic, magnitude.
  await update("s2", "ADD #c :d", { "#c": "count" }, { ":d": { N: BIG } }, { ReturnValues: "ALL_NEW" });
  await update("s2", "ADD #c :d", { "#c": "count" }, { ":d": { N: "5" } }, { ReturnValues: "ALL_NEW" });
  await update("s2", "ADD #c :d", { "#c": "count" }, { ":d": { N: `${BIG}9` } });
  await update("s2", "SET #b = :b", { "#b": "big" }, { ":b": { N: `9${"0".repeat(125)}` } });
  await update("s2", "SET #b = #b + :b", { "#b": "big" }, { ":b": { N: `9${"0".repeat(125)}` } }, { ReturnValues: "UPDATED_NEW" });
  await update("s2", "SET #b = :b", { "#b": "big" }, { ":b": { N: `1${"0".repeat(126)}` } });
  await update("s2", "SET #b = :b", { "#b": "big" }, { ":b": { N: `1${"0".repeat(130)}1` } });
  await t.check("GetItem", { TableName: T, Key: key("s2") });
  // Type errors and missing operands, and which comes first: the condition.
  await update("s3", "SET #s = :s", { "#s": "s" }, { ":s": { S: "str" } });
  await update("s3", "ADD #s :d", { "#s": "s" }, { ":d": { N: "1" } });
  await update("s3", "ADD #s :d", { "#s": "s" }, { ":d": { N: "1" } }, { ConditionExpression: "attribute_not_exists(#s)" });
  await update("s3", "SET #a = #a + :d", { "#a": "nope" }, { ":d": { N: "1" } });
  await update("s3", "SET #a = #s - :d", { "#a": "a", "#s": "s" }, { ":d": { N: "1" } });
  await update("s3", "ADD #s :d", { "#s": "s" }, { ":d": { S: "x" } });
  await update("s3", "SET #a = :x + :d", { "#a": "a" }, { ":x": { S: "x" }, ":d": { N: "1" } });
  // ReturnValues with nothing to return, and on a new item.
  await update("s3", "REMOVE #a", { "#a": "nope" }, undefined, { ReturnValues: "UPDATED_NEW" });
  await update("s3", "REMOVE #a", { "#a": "nope" }, undefined, { ReturnValues: "UPDATED_OLD" });
  await update("s4", "REMOVE #a", { "#a": "nope" }, undefined, { ReturnValues: "UPDATED_OLD" });
  await update("s5", "SET #a = :v", { "#a": "a" }, { ":v": { N: "1" } }, { ReturnValues: "ALL_OLD" });
  // Conditions: both operands missing, BETWEEN bounds, precedence, failures with and without the old item.
  for (const op of ["=", "<>", "<", "<=", ">", ">="]) {
    await update("s3", "SET #z = :z", { "#z": "z", "#a": "m1", "#b": "m2" }, { ":z": { N: "1" } }, { ConditionExpression: `#a ${op} #b` });
  }
  await update(
    "s3",
    "SET #z = :z",
    { "#z": "z", "#a": "z" },
    { ":z": { N: "1" }, ":lo": { N: "5" }, ":hi": { N: "3" } },
    { ConditionExpression: "#a BETWEEN :lo AND :hi" },
  );
  await update(
    "s3",
    "SET #z = :z",
    { "#z": "z", "#a": "z" },
    { ":z": { N: "1" }, ":lo": { N: "5" }, ":hi": { S: "3" } },
    { ConditionExpression: "#a BETWEEN :lo AND :hi" },
  );
  await update(
    "s3",
    "SET #z = :z",
    { "#z": "z", "#a": "z", "#b": "m1", "#d": "m2" },
    { ":z": { N: "2" } },
    { ConditionExpression: "attribute_exists(#a) OR attribute_exists(#b) AND attribute_exists(#d)" },
  );
  await update(
    "s3",
    "SET #z = :z",
    { "#z": "z", "#a": "m1", "#b": "z" },
    { ":z": { N: "3" } },
    { ConditionExpression: "NOT attribute_exists(#a) AND attribute_exists(#b)" },
  );
  await update(
    "s3",
    "SET #z = :z",
    { "#z": "z" },
    { ":z": { N: "4" } },
    { ConditionExpression: "#z < :z", ReturnValuesOnConditionCheckFailure: "ALL_OLD" },
  );
  await update(
    "s3",
    "SET #z = :z",
    { "#z": "z" },
    { ":z": { N: "4" } },
    { ConditionExpression: "#z > :z", ReturnValuesOnConditionCheckFailure: "ALL_OLD" },
  );
  await update(
    "s6",
    "SET #z = :z",
    { "#z": "z" },
    { ":z": { N: "4" } },
    { ConditionExpression: "#z > :z", ReturnValuesOnConditionCheckFailure: "ALL_OLD" },
  );
  await update(
    "s3",
    "SET #z = :z",
    { "#z": "z" },
    { ":z": { N: "4" } },
    { ConditionExpression: "#z > :z", ReturnValuesOnConditionCheckFailure: "ALL_NEW" },
  );
  // Expression validation.
  await update("s3", "ADD count :d", {}, { ":d": { N: "1" } });
  await t.check("UpdateItem", {
    TableName: T,
    Key: key("s3"),
    UpdateExpression: "ADD cnt :d",
    ExpressionAttributeValues: { ":d": { N: "1" } },
    ReturnValues: "UPDATED_NEW",
  });
  await update("s3", "SET #a = :v REMOVE #b", { "#a": "q", "#b": "q" }, { ":v": { N: "1" } });
  await update("s3", "SET #a = :v SET #b = :v", { "#a": "q", "#b": "r" }, { ":v": { N: "1" } });
  await update("s3", "ADD #c :e", { "#c": "c" }, { ":d": { N: "1" } });
  await update("s3", "ADD #x :d", { "#c": "c" }, { ":d": { N: "1" } });
  await update("s3", "ADD #c :d", { "#c": "c" }, {});
  await update(
    "s3",
    "ADD #c :d",
    { "#c": "c", "#zz": "y", "#b1": "x", "#m": "x", "#B": "x" },
    { ":d": { N: "1" }, ":zz": { N: "1" }, ":b1": { N: "1" } },
  );
  await update(
    "s3",
    "ADD #c :d",
    { "#c": "c" },
    { ":d": { N: "1" }, ":zz": { N: "1" }, ":b1": { N: "1" }, ":m": { N: "1" }, ":B": { N: "1" } },
  );
  // Reads.
  await t.check("GetItem", { TableName: T, Key: key("s3"), ProjectionExpression: "#n", ExpressionAttributeNames: { "#n": "nope" } });
  await t.check("GetItem", { TableName: T, Key: key("none"), ProjectionExpression: "#n", ExpressionAttributeNames: { "#n": "nope" } });
  await t.check("GetItem", { TableName: T, Key: key("s3"), ProjectionExpression: "#n, #n", ExpressionAttributeNames: { "#n": "z" } });
  await t.check("BatchGetItem", { RequestItems: { [T]: { Keys: [key("s1"), key("s1")] } } });
  await t.check("BatchGetItem", { RequestItems: { [T]: { Keys: [] } } });
  await t.check("BatchGetItem", { RequestItems: { [T]: { Keys: Array.from({ length: 101 }, (_, i) => key(`k${i}`)) } } });
  await t.check("BatchGetItem", { RequestItems: { [T]: { Keys: [key("s1"), key("none"), key("s3")], ConsistentRead: true } } });
  // DeleteItem of a missing item (DynamoDB Local reports capacity), and with ALL_OLD.
  await t.check("DeleteItem", { TableName: T, Key: key("none") });
  await t.check("DeleteItem", { TableName: T, Key: key("s5"), ReturnValues: "ALL_OLD" });
  await t.check("DeleteItem", { TableName: T, Key: key("s5"), ReturnValues: "ALL_OLD" });
  // TTL.
  await t.check("DescribeTimeToLive", { TableName: T });
  for (const [name, enabled] of [
    ["exp", true],
    ["exp", true],
    ["other", true],
    ["other", false],
    ["exp", false],
    ["exp", false],
    ["exp2", true],
  ] as const) {
    await t.check("UpdateTimeToLive", { TableName: T, TimeToLiveSpecification: { AttributeName: name, Enabled: enabled } });
  }
  await t.check("DescribeTimeToLive", { TableName: T });
  await t.check("DescribeTable", { TableName: T });
  // Transactions: cancellation reasons, validation errors winning over cancellations, tokens.
  const tx = (items: Json[], extra: Json = {}) => t.check("TransactWriteItems", { TransactItems: items, ...extra });
  const addTo = (id: string, attr: string, n: string, more: Json = {}) => ({
    Update: {
      TableName: T,
      Key: key(id),
      UpdateExpression: "ADD #c :d",
      ExpressionAttributeNames: { "#c": attr },
      ExpressionAttributeValues: { ":d": { N: n } },
      ...more,
    },
  });
  const checkOn = (id: string, condition: string, more: Json = {}) => ({
    ConditionCheck: { TableName: T, Key: key(id), ConditionExpression: condition, ExpressionAttributeNames: { "#c": "count" }, ...more },
  });
  await tx([]);
  await tx([addTo("s1", "count", "1"), checkOn("s2", "attribute_exists(#c)")], { ClientRequestToken: `${T}-a` });
  await tx([addTo("s1", "count", "1"), checkOn("s2", "attribute_exists(#c)")], { ClientRequestToken: `${T}-a` });
  await tx([addTo("s1", "count", "2"), checkOn("s2", "attribute_exists(#c)")], { ClientRequestToken: `${T}-a` });
  await tx([
    addTo("s1", "count", "1", {
      ConditionExpression: "#c < :z",
      ExpressionAttributeValues: { ":d": { N: "1" }, ":z": { N: "0" } },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    }),
    checkOn("s2", "attribute_not_exists(#c)", { ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
    checkOn("none1", "attribute_exists(#c)", { ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
    checkOn("none2", "attribute_not_exists(#c)"),
  ]);
  await tx([checkOn("s2", "attribute_not_exists(#c)"), addTo("s3", "s", "1")], { ClientRequestToken: `${T}-b` });
  await tx([addTo("s3", "s", "1"), checkOn("s2", "attribute_not_exists(#c)")]);
  await tx([addTo("s1", "count", "100"), addTo("s3", "s", "1")]);
  await tx([addTo("s1", "count", BIG)]);
  await tx([addTo("s1", "count", "1"), checkOn("s1", "attribute_exists(#c)")]);
  await tx([{ ConditionCheck: { TableName: T, Key: key("s1") } }]);
  await tx([addTo("s1", "count", "1", { TableName: `${T}_missing` })]);
  await tx([addTo("s1", "count", "1", { ExpressionAttributeNames: { "#c": "count", "#x": "x" } })]);
  await tx([checkOn("s2", "attribute_exists(#c)"), addTo("s3", "q", "1")], { ClientRequestToken: `${T}-b` });
  // Several actions on one item: DynamoDB Local runs them in order on a working copy (see the model).
  const is = (n: string) => ({ ExpressionAttributeValues: { ":v": { N: n } }, ReturnValuesOnConditionCheckFailure: "ALL_OLD" });
  await tx([addTo("t1", "count", "1"), checkOn("t1", "#c = :v", is("1"))]);
  await tx([addTo("t1", "count", "1"), checkOn("t1", "#c = :v", is("5"))]);
  await tx([checkOn("t1", "attribute_not_exists(#c)"), addTo("t1", "count", "1")]);
  await tx([checkOn("t1", "#c = :v", is("1")), addTo("t1", "count", "1")]);
  await tx([
    addTo("t2", "count", "1", { ConditionExpression: "attribute_exists(#c)", ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
    addTo("t2", "count", "1"),
  ]);
  await tx([addTo("t3", "count", "1"), checkOn("t3", "attribute_not_exists(#c)"), addTo("t3", "count", "1")]);
  await tx([checkOn("t3", "#c = :v", is("1")), checkOn("t3", "#c = :v", is("1"))]);
  await t.check("GetItem", { TableName: T, Key: key("s1") });
  await t.check("GetItem", { TableName: T, Key: key("t1") });
  // Conditions each server parses its own way: NOT NOT, redundant parentheses, an operand compared with itself.
  for (const [condition, names, values] of [
    ["NOT NOT attribute_exists(#a)", { "#a": "count" }, {}],
    ["not not attribute_exists(#a)", { "#a": "count" }, {}],
    ["#a = :v AND NOT NOT #a = :v", { "#a": "count" }, { ":v": { N: "1" } }],
    ["NOT (NOT attribute_exists(#a))", { "#a": "count" }, {}],
    ["NOT ((attribute_exists(#a)))", { "#a": "count" }, {}],
    ["(#a = :v) OR ((#a = :v))", { "#a": "count" }, { ":v": { N: "1" } }],
    ["#a = #b", { "#a": "count", "#b": "count" }, {}],
    ["#a = #a AND #undefined = :v", { "#a": "count" }, { ":v": { N: "1" } }],
    ["#a BETWEEN #a AND :v", { "#a": "count" }, { ":v": { N: "9" } }],
    ["#a BETWEEN :v AND #a", { "#a": "count" }, { ":v": { N: "0" } }],
    [":v = :v", {}, { ":v": { N: "1" } }],
    ["attribute_exists(:v)", {}, { ":v": { N: "1" } }],
    ["attribute_exists(#a, #a)", { "#a": "count" }, {}],
    ["no_such_function(#a)", { "#a": "count" }, {}],
    ["#a = :v AND", { "#a": "count" }, { ":v": { N: "1" } }],
  ] as [string, Json, Json][]) {
    await update("s1", "SET #z = :z", { "#z": "z", ...names }, { ":z": { N: "1" }, ...values }, { ConditionExpression: condition });
  }
  // Table names.
  await t.check("DescribeTable", { TableName: "ab" });
  await t.check("DescribeTable", { TableName: "a!b" });
  await t.check("DescribeTimeToLive", { TableName: "ab" });
  await t.check("CreateTable", { ...createTableBody(layout), TableName: "ab" });
  if (t.flavor === "ddblocal") await t.check("GetItem", { TableName: "ab", Key: key("s1") });
  // Unknown operations, and a table that already exists.
  await t.check("NoSuchOperation", {});
  await t.check("CreateTable", createTableBody(layout));
}

// ---------------------------------------------------------------------------------------------------------------

async function run(flavor: Flavor, endpoint: string, seed: number, layout: Layout): Promise<number> {
  const t = new Trace(flavor, endpoint, seed);
  const key = (id: string): Key => ({ [layout.hash]: { S: id }, ...(layout.range && { [layout.range]: { S: `r-${id.length % 2}` } }) });
  try {
    await t.check("CreateTable", createTableBody(layout));
    await t.check("DescribeTable", { TableName: layout.name });
    await scripted(t, layout, key);
    const ids = ["a", "b", "c", "d", "p:1"];
    const keys = ids.flatMap((id) =>
      layout.range
        ? [
            { [layout.hash]: { S: id }, [layout.range]: { S: "x" } },
            { [layout.hash]: { S: id }, [layout.range]: { S: "y" } },
          ]
        : [{ [layout.hash]: { S: id } }],
    ) as Key[];
    const ctx: Ctx = { t, table: layout, keys };
    for (let i = 0; i < STEPS; i++) {
      const { operation, body } = nextRequest(ctx);
      await t.check(operation, body);
      if (operation === "UpdateItem" || operation === "TransactWriteItems") {
        for (const [id, item] of t.model.items(layout.name)) {
          const list = t.snapshots.get(id) ?? [];
          list.push(item as PlanItem);
          if (list.length > 8) list.shift();
          t.snapshots.set(id, list);
        }
      }
    }
    // The whole table, as the server holds it.
    const scan = await sendRaw(endpoint, "Scan", { TableName: layout.name, ConsistentRead: true });
    assert.equal(scan.status, 200, JSON.stringify(scan.body));
    assert.equal(scan.body.LastEvaluatedKey, undefined, "one page");
    const real: Record<string, string> = {};
    for (const item of scan.body.Items as Record<string, { S: string }>[]) {
      real[JSON.stringify([item[layout.hash]!.S, ...(layout.range ? [item[layout.range]!.S] : [])])] = stable(item);
    }
    const modelled: Record<string, string> = {};
    for (const [id, item] of t.model.items(layout.name)) modelled[id] = stable(item);
    assert.deepEqual(modelled, real, `${t.where()}\nthe final table differs`);
    await t.check("DescribeTable", { TableName: layout.name });
    return t.steps;
  } catch (error) {
    if (error instanceof Error && !error.message.includes("DIFF_SEED")) error.message = `${t.where()}\n${error.message}`;
    throw error;
  }
}

for (const server of await servers()) {
  // The two tables' traces are independent (one model each): they run side by side.
  describe(`DynamoModel("${server.name}") answers like ${server.name}`, { concurrency: true }, () => {
    it("on random traces of dynacount's requests, a table with a partition key", async () => {
      const steps = await run(server.name, server.endpoint, SEED, { name: uniqueTable("diff"), hash: "id" });
      assert.ok(steps > STEPS);
    });

    it("on random traces of dynacount's requests, a table with a sort key", async () => {
      const steps = await run(server.name, server.endpoint, SEED ^ 0x5eed, { name: uniqueTable("diffs"), hash: "pk", range: "sk" });
      assert.ok(steps > STEPS);
    });
  });
}

describe("DynamoModel beyond what a server can be made to do", () => {
  it("leaves the keys its `unprocessed` hook picks in UnprocessedKeys, with the request's other fields", () => {
    const model = new DynamoModel("ddblocal", { unprocessed: (_table, key) => (key.id as { S: string }).S === "b" });
    model.handle("CreateTable", createTableBody({ name: "tbl", hash: "id" }));
    for (const id of ["a", "b"])
      model.handle("UpdateItem", {
        TableName: "tbl",
        Key: { id: { S: id } },
        UpdateExpression: "ADD #c :d",
        ExpressionAttributeNames: { "#c": "n" },
        ExpressionAttributeValues: { ":d": { N: "1" } },
      });
    const spec = {
      Keys: [{ id: { S: "a" } }, { id: { S: "b" } }],
      ConsistentRead: true,
      ProjectionExpression: "#c",
      ExpressionAttributeNames: { "#c": "n" },
    };
    assert.deepEqual(model.handle("BatchGetItem", { RequestItems: { tbl: spec } }), {
      status: 200,
      body: { Responses: { tbl: [{ n: { N: "1" } }] }, UnprocessedKeys: { tbl: { ...spec, Keys: [{ id: { S: "b" } }] } } },
    });
    assert.deepEqual([...model.items("tbl").keys()], ['["a"]', '["b"]']);
  });

  it("throws on a request outside its scope rather than guess", () => {
    const model = new DynamoModel("dynalite");
    model.handle("CreateTable", createTableBody({ name: "tbl", hash: "id" }));
    assert.throws(() => model.handle("PutItem", { TableName: "tbl", Item: { id: { S: "a" } } }), /DynamoModel: PutItem is not modelled/);
    assert.throws(
      () =>
        model.handle("UpdateItem", {
          TableName: "tbl",
          Key: { id: { S: "a" } },
          UpdateExpression: "SET #a = :v",
          ExpressionAttributeNames: { "#a": "a" },
          ExpressionAttributeValues: { ":v": { N: "1.5" } },
        }),
      /not modelled/,
    );
  });
});
