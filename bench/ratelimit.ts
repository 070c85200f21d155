// Bench section: rate limiting through a loopback proxy that adds a fixed delay per request (the edge-to-region
// round trip): dynacount's algorithms with and without a lease beside rate-limiter-flexible's RateLimiterDynamo.
import { performance } from "node:perf_hooks";
import { DynamoDB } from "@aws-sdk/client-dynamodb";
import { RateLimiterDynamo, RateLimiterRes } from "rate-limiter-flexible";
import { CounterClient, RateLimiter, type RateLimiterOptions } from "dynacount";
import { startFaultProxy } from "../test/support/fault-proxy.ts";
import { percentile } from "./percentile.ts";

const credentials = { accessKeyId: "AKIDBENCH", secretAccessKey: "bench-secret" };

export interface LimiterRow {
  server: string;
  workload: string;
  implementation: string;
  requestsPerCall: number;
  p50Ms: number;
  p99Ms: number;
  admitted: number;
  /** The most a perfect limiter admits for these calls (the limit per identifier; a bucket's refill added). */
  exact: number;
  elapsedMs: number;
  /** Admitted because the store failed (fail open), included in `admitted`. */
  failedOpen: number;
  /** rate-limiter-flexible only: the highest count its store reported for one identifier (past the limit = denied calls counted). */
  storedCount?: number;
}

/** One limiter instance as the workload sees it: admitted, denied, or admitted because the store failed. */
type Instance = (identifier: string) => Promise<boolean | "failOpen">;

/** Runs `calls` (identifier per call) over the instances round-robin, `concurrency` at a time per instance. */
async function drive(instances: Instance[], calls: string[], concurrency: number) {
  const started = performance.now();
  const latencies: number[] = [];
  let admitted = 0;
  let failedOpen = 0;
  const queues = instances.map(() => [] as string[]);
  calls.forEach((id, i) => queues[i % instances.length]!.push(id));
  await Promise.all(
    instances.flatMap((instance, i) =>
      Array.from({ length: concurrency }, async () => {
        for (let id = queues[i]!.shift(); id !== undefined; id = queues[i]!.shift()) {
          const started = performance.now();
          const answer = await instance(id);
          if (answer) admitted++;
          if (answer === "failOpen") failedOpen++;
          latencies.push(performance.now() - started);
        }
      }),
    ),
  );
  latencies.sort((a, b) => a - b);
  return {
    admitted,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    elapsedMs: performance.now() - started,
    failedOpen,
  };
}

/**
 * Real time, shifted so the run starts at a window's start: a fixed or sliding window then never resets
 * mid-run, and "exact" stays the limit (rate-limiter-flexible's window starts at its first call anyway).
 */
function alignedClock(windowMs: number): () => number {
  const t0 = Date.now();
  const start = (Math.floor(t0 / windowMs) + 1) * windowMs;
  return () => start + (Date.now() - t0);
}

export async function rateLimitBench(servers: { name: string; endpoint: string }[], quick: boolean): Promise<LimiterRow[]> {
  const delayMs = quick ? 1 : 30;
  const hot = quick ? { limit: 40, calls: 120 } : { limit: 1000, calls: 3000 };
  const many = quick ? { ids: 10, limit: 3, calls: 50 } : { ids: 200, limit: 10, calls: 1000 };
  const rows: LimiterRow[] = [];
  for (const server of servers) {
    const proxy = await startFaultProxy(server.endpoint, () => ({ delayMs }));
    try {
      const client = new CounterClient({ endpoint: proxy.endpoint, env: {}, credentials, tableName: "BenchLimits", keyAttribute: "key" });
      await new CounterClient({
        endpoint: server.endpoint,
        env: {},
        credentials,
        tableName: "BenchLimits",
        keyAttribute: "key",
      }).createTable();
      const sdk = new DynamoDB({ endpoint: proxy.endpoint, region: "us-east-1", credentials, maxAttempts: 3 });
      let run = 0;
      const implementations: [string, (limit: number, now: () => number) => Instance][] = [];
      for (const algorithm of ["sliding-window", "fixed-window", "token-bucket"] as const) {
        implementations.push([`dynacount ${algorithm}`, (limit, now) => dynacount(client, { limit, windowMs: 60_000, algorithm, now })]);
      }
      implementations.push([
        "dynacount fixed-window, lease 20",
        (limit, now) => dynacount(client, { limit, windowMs: 60_000, algorithm: "fixed-window", lease: 20, now }),
      ]);
      implementations.push([
        "dynacount token-bucket, lease 20",
        (limit, now) => dynacount(client, { limit, windowMs: 60_000, algorithm: "token-bucket", lease: 20, now }),
      ]);
      const stored = { max: 0 };
      implementations.push(["rate-limiter-flexible RateLimiterDynamo (SDK v3)", (limit) => flexible(sdk, limit, stored)]);

      for (const [name, make] of implementations) {
        for (const workload of ["hot", "many"] as const) {
          const prefix = `${run++}-${Date.now().toString(36)}`;
          const w =
            workload === "hot"
              ? { limit: hot.limit, calls: Array.from({ length: hot.calls }, () => `${prefix}-hot`) }
              : { limit: many.limit, calls: Array.from({ length: many.calls }, (_, i) => `${prefix}-id${(i * 7919) % many.ids}`) };
          const now = alignedClock(60_000);
          stored.max = 0;
          const instances = Array.from({ length: 8 }, () => make(w.limit, now));
          const before = [...proxy.seen.values()].reduce((a, b) => a + b, 0);
          const { admitted, p50, p99, elapsedMs, failedOpen } = await drive(instances, w.calls, workload === "hot" ? 4 : 2);
          const sent = [...proxy.seen.values()].reduce((a, b) => a + b, 0) - before;
          const perId = new Map<string, number>();
          for (const id of w.calls) perId.set(id, (perId.get(id) ?? 0) + 1);
          // A token bucket also refills during the run: the most a perfect one admits includes that.
          const refill = name.includes("token-bucket") ? Math.floor((elapsedMs * w.limit) / 60_000) : 0;
          const exact = [...perId.values()].reduce((a, n) => a + Math.min(n, w.limit + refill), 0);
          rows.push({
            server: server.name,
            workload:
              workload === "hot"
                ? `hot: 1 identifier, limit ${w.limit}/min, ${w.calls.length} calls, 8 instances`
                : `many: ${many.ids} identifiers, limit ${w.limit}, ${w.calls.length} calls, 8 instances`,
            implementation: name,
            requestsPerCall: sent / w.calls.length,
            p50Ms: p50,
            p99Ms: p99,
            admitted,
            exact,
            elapsedMs,
            failedOpen,
            ...(name.startsWith("rate-limiter-flexible") && { storedCount: stored.max }),
          });
        }
      }
    } finally {
      await proxy.close();
    }
  }
  return rows;
}

function dynacount(client: CounterClient, options: RateLimiterOptions): Instance {
  const limiter = new RateLimiter(client, options);
  return async (id) => {
    const r = await limiter.limit(id);
    return r.reason === "failOpen" ? "failOpen" : r.success;
  };
}

/** rate-limiter-flexible's limiter; `stored.max` follows the highest count its store answers with. */
function flexible(sdk: DynamoDB, points: number, stored: { max: number }): Instance {
  const limiter = new RateLimiterDynamo({
    storeClient: sdk,
    tableName: "BenchLimits",
    tableCreated: true,
    ttlSet: true,
    points,
    duration: 60,
  });
  return async (id) => {
    try {
      const res = await limiter.consume(id, 1);
      stored.max = Math.max(stored.max, res.consumedPoints);
      return true;
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      stored.max = Math.max(stored.max, error.consumedPoints);
      return false;
    }
  };
}
