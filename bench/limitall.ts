// Bench section: three limits per call through a 30 ms delay proxy: limitAll, three limit() calls in a row, and
// rate-limiter-flexible's RateLimiterUnion over three RateLimiterDynamo; requests, WCU, latency, what denied calls charged.
import { performance } from "node:perf_hooks";
import { DynamoDB } from "@aws-sdk/client-dynamodb";
import { RateLimiterDynamo, type RateLimiterRes, RateLimiterUnion } from "rate-limiter-flexible";
import { CounterClient, limitAll, RateLimiter } from "dynacount";
import { startFaultProxy } from "../test/support/fault-proxy.ts";
import { percentile } from "./percentile.ts";

const credentials = { accessKeyId: "AKIDBENCH", secretAccessKey: "bench-secret" };

export interface LimitAllRow {
  server: string;
  implementation: string;
  calls: number;
  requestsPerCall: number;
  /** Write capacity units per call: 1 per UpdateItem, 2 per item in a TransactWriteItems (cancelled ones too). */
  wcuPerCall: number;
  p50Ms: number;
  p99Ms: number;
  admitted: number;
  /** What a perfect limiter admits: the tightest limit per user. */
  exact: number;
  /** Calls denied by some limit that other limits were charged for anyway. */
  wronglyCharged: number;
  /** Units the limits' stored counts hold beyond what the admitted calls took. */
  extraUnits: number;
}

/** The three limits of every call, on one user identifier: a day's is the tightest, so it is the one that denies. */
const LIMITS = [
  // Ten minutes, not one: every implementation's run (up to a minute here) and its read-back fit in one window.
  { name: "tenMinutes", limit: 40, windowMs: 600_000 },
  { name: "hour", limit: 30, windowMs: 3_600_000 },
  { name: "day", limit: 25, windowMs: 86_400_000 },
] as const;

/** One call: whether it was admitted, and whether a denied one took units from a limit that had room. */
type Call = (user: string) => Promise<{ admitted: boolean; charged: boolean }>;

interface Implementation {
  name: string;
  call: Call;
  /** Units stored per limit for `user` after the run. */
  stored(user: string): Promise<number[]>;
}

export async function limitAllBench(servers: { name: string; endpoint: string }[], quick: boolean): Promise<LimitAllRow[]> {
  const delayMs = quick ? 1 : 30;
  const users = quick ? 4 : 100;
  const perUser = quick ? 30 : 40;
  const rows: LimitAllRow[] = [];
  for (const server of servers) {
    const tally = { requests: 0, wcu: 0 };
    const proxy = await startFaultProxy(server.endpoint, (info) => {
      tally.requests++;
      if (info.operation === "UpdateItem" || info.operation === "PutItem" || info.operation === "DeleteItem") tally.wcu += 1;
      if (info.operation === "TransactWriteItems")
        tally.wcu += 2 * (JSON.parse(info.body) as { TransactItems: unknown[] }).TransactItems.length;
      return { delayMs };
    });
    try {
      const tableName = `BenchLimitAll${Date.now().toString(36)}`;
      await new CounterClient({ endpoint: server.endpoint, env: {}, credentials, tableName, keyAttribute: "key" }).createTable();
      const client = new CounterClient({ endpoint: proxy.endpoint, env: {}, credentials, tableName, keyAttribute: "key" });
      const sdk = new DynamoDB({ endpoint: proxy.endpoint, region: "us-east-1", credentials, maxAttempts: 3 });
      // Each implementation's clock starts at a day's start (so at a minute's and an hour's too): no window of its
      // limits changes while it runs (about a minute), and its stored counts are read in the windows it used.
      const clock = () => {
        const t0 = Date.now();
        return () => Math.ceil(t0 / 86_400_000) * 86_400_000 + (Date.now() - t0);
      };
      let run = 0;
      const makers: Array<(prefix: string) => Implementation> = [
        (prefix) => dynacountAll(client, prefix, clock()),
        (prefix) => dynacountInRow(client, prefix, clock()),
        (prefix) => flexibleUnion(sdk, tableName, prefix),
      ];
      for (const make of makers) {
        const impl = make(`${run++}${Date.now().toString(36)}`);
        const calls = Array.from({ length: users * perUser }, (_, i) => `u${(i * 7919) % users}`);
        const before = { ...tally };
        const latencies: number[] = [];
        let admitted = 0;
        let wronglyCharged = 0;
        // 8 instances × 4 calls in flight, as the single-limit section runs.
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            for (let user = calls.shift(); user !== undefined; user = calls.shift()) {
              const started = performance.now();
              const answer = await impl.call(user);
              latencies.push(performance.now() - started);
              if (answer.admitted) admitted++;
              else if (answer.charged) wronglyCharged++;
            }
          }),
        );
        latencies.sort((a, b) => a - b);
        const n = users * perUser;
        const requests = tally.requests - before.requests;
        const wcu = tally.wcu - before.wcu;
        let storedUnits = 0;
        for (let u = 0; u < users; u++) for (const units of await impl.stored(`u${u}`)) storedUnits += units;
        const exact = users * Math.min(perUser, Math.min(...LIMITS.map((l) => l.limit)));
        rows.push({
          server: server.name,
          implementation: impl.name,
          calls: n,
          requestsPerCall: requests / n,
          wcuPerCall: wcu / n,
          p50Ms: percentile(latencies, 0.5),
          p99Ms: percentile(latencies, 0.99),
          admitted,
          exact,
          wronglyCharged,
          extraUnits: storedUnits - admitted * LIMITS.length,
        });
      }
    } finally {
      await proxy.close();
    }
  }
  return rows;
}

function limiters(client: CounterClient, prefix: string, now: () => number): RateLimiter[] {
  return LIMITS.map(
    (l) => new RateLimiter(client, { name: `${prefix}-${l.name}`, limit: l.limit, windowMs: l.windowMs, algorithm: "fixed-window", now }),
  );
}

async function storedOf(list: RateLimiter[], user: string): Promise<number[]> {
  return Promise.all(
    list.map(async (l) => {
      const r = await l.remaining(user);
      return r.limit - r.remaining;
    }),
  );
}

/** limitAll: one transaction (DynamoDB Local) or take-and-give-back (dynalite); a denied call keeps nothing. */
function dynacountAll(client: CounterClient, prefix: string, now: () => number): Implementation {
  const list = limiters(client, prefix, now);
  return {
    name: "dynacount limitAll([tenMinutes, hour, day])",
    async call(user) {
      const r = await limitAll(list.map((limiter) => ({ limiter, identifier: user })));
      return { admitted: r.success, charged: false };
    },
    stored: (user) => storedOf(list, user),
  };
}

/** Three limit() calls in a row, stopping at the first denial: the limits before it keep their units. */
function dynacountInRow(client: CounterClient, prefix: string, now: () => number): Implementation {
  const list = limiters(client, prefix, now);
  return {
    name: "dynacount 3 × limit() in a row",
    async call(user) {
      for (let i = 0; i < list.length; i++) {
        if (!(await list[i]!.limit(user)).success) return { admitted: false, charged: i > 0 };
      }
      return { admitted: true, charged: false };
    },
    stored: (user) => storedOf(list, user),
  };
}

/** rate-limiter-flexible's RateLimiterUnion: consumes every limiter at once and rejects if any rejected. */
function flexibleUnion(sdk: DynamoDB, tableName: string, prefix: string): Implementation {
  const list = LIMITS.map(
    (l) =>
      new RateLimiterDynamo({
        storeClient: sdk,
        tableName,
        tableCreated: true,
        ttlSet: true,
        keyPrefix: `${prefix}-${l.name}`,
        points: l.limit,
        duration: l.windowMs / 1000,
      }),
  );
  const union = new RateLimiterUnion(...list);
  return {
    name: "rate-limiter-flexible RateLimiterUnion (3 × RateLimiterDynamo, SDK v3)",
    async call(user) {
      try {
        await union.consume(user, 1);
        return { admitted: true, charged: false };
      } catch (rejected) {
        if (rejected instanceof Error) throw rejected;
        // Only the limiters that rejected are in the answer; the others consumed the point.
        return { admitted: false, charged: Object.keys(rejected as object).length < list.length };
      }
    },
    async stored(user) {
      // Its stored count also holds the denied calls it counted past the limit (they charge it too).
      return Promise.all(list.map(async (l) => ((await l.get(user)) as RateLimiterRes | null)?.consumedPoints ?? 0));
    },
  };
}
