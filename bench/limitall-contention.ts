// Measures how often limitAll's transactions cancel each other with 8 instances on one hot global limit, with and without a lease.
//
// Run: node --import tsx bench/limitall-contention.ts [--calls 2000] [--delay 30]
// Starts DynamoDB Local; every request goes through a loopback proxy that adds `--delay` ms (the edge-to-region round
// trip) and one that reads each TransactWriteItems answer. Every call is limitAll([per-user, global]); the limits are
// high enough that nothing is denied, so every cancelled transaction was cancelled by another instance's write.
import { performance } from "node:perf_hooks";
import { CounterClient, limitAll, RateLimiter, type RateLimiterOptions } from "../src/index.ts";
import { startFaultProxy } from "../test/support/fault-proxy.ts";
import { percentile } from "./percentile.ts";
import { startDynamoDBLocal } from "../test/support/servers.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const CALLS = arg("calls", 2000);
const DELAY = arg("delay", 30);
const INSTANCES = 8;
/** Calls in flight per instance. */
const CONCURRENCY = 8;
const USERS = 1000;
const credentials = { accessKeyId: "AKIDBENCH", secretAccessKey: "bench-secret" };

interface Variant {
  label: string;
  global: Pick<RateLimiterOptions, "algorithm" | "lease">;
}

const variants: Variant[] = [
  // Discarded: DynamoDB Local's JIT and this process's warm up on it.
  { label: "warm-up", global: { algorithm: "fixed-window" } },
  { label: "sliding-window", global: { algorithm: "sliding-window" } },
  { label: "sliding-window, lease 20", global: { algorithm: "sliding-window", lease: 20 } },
  { label: "fixed-window", global: { algorithm: "fixed-window" } },
  { label: "fixed-window, lease 20", global: { algorithm: "fixed-window", lease: 20 } },
  { label: "token-bucket", global: { algorithm: "token-bucket" } },
  { label: "token-bucket, lease 20", global: { algorithm: "token-bucket", lease: 20 } },
];

const local = await startDynamoDBLocal();
// Outer: the delay; inner: reads each answer (cancellation codes) on its way back.
const seen = { transactions: 0, cancelled: 0, codes: new Map<string, number>(), requests: 0 };
const inspect = await startFaultProxy(local.endpoint, (info) => {
  seen.requests++;
  if (info.operation !== "TransactWriteItems") return "pass";
  seen.transactions++;
  return {
    rewrite: (request) => ({
      request,
      response: (answer) => {
        const codes = /cancellation reasons for specific reasons \[([A-Za-z, ]*)\]/.exec(answer)?.[1];
        if (codes) {
          seen.cancelled++;
          for (const code of codes.split(", ")) seen.codes.set(code, (seen.codes.get(code) ?? 0) + 1);
        }
        return answer;
      },
    }),
  };
});
const delay = await startFaultProxy(inspect.endpoint, () => ({ delayMs: DELAY }));

const rows: string[] = [];
try {
  const tableName = `contention_${Date.now().toString(36)}`;
  await new CounterClient({ endpoint: local.endpoint, region: "us-east-1", credentials, env: {}, tableName }).createTable();
  for (const variant of variants) {
    const name = variant.label.replace(/[^a-z0-9]+/g, "-");
    const instances = Array.from({ length: INSTANCES }, () => {
      const client = new CounterClient({
        endpoint: delay.endpoint,
        region: "us-east-1",
        credentials,
        env: {},
        tableName,
        timeoutMs: 30_000,
      });
      return {
        user: new RateLimiter(client, { name: `user-${name}`, limit: 1_000_000, windowMs: 60_000 }),
        global: new RateLimiter(client, { name: `global-${name}`, limit: 1_000_000, windowMs: 60_000, ...variant.global }),
      };
    });
    Object.assign(seen, { transactions: 0, cancelled: 0, codes: new Map(), requests: 0 });
    const latencies: number[] = [];
    let admitted = 0;
    let next = 0;
    const started = performance.now();
    await Promise.all(
      instances.flatMap((instance) =>
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < CALLS) {
            next++;
            const user = `u${Math.floor(Math.random() * USERS)}`;
            const t = performance.now();
            const r = await limitAll([
              { limiter: instance.user, identifier: user },
              { limiter: instance.global, identifier: "all" },
            ]);
            latencies.push(performance.now() - t);
            if (r.success) admitted++;
          }
        }),
      ),
    );
    const elapsed = performance.now() - started;
    if (variant.label === "warm-up") continue;
    latencies.sort((a, b) => a - b);
    const committed = seen.transactions - seen.cancelled;
    const codes =
      [...seen.codes]
        .filter(([c]) => c !== "None")
        .map(([c, n]) => `${c} ${n}`)
        .join(", ") || "none";
    rows.push(
      `| ${variant.label} | ${CALLS} | ${admitted} | ${seen.transactions} | ${committed} | ${seen.cancelled} (${((100 * seen.cancelled) / Math.max(1, seen.transactions)).toFixed(1)}%) | ${(seen.cancelled / CALLS).toFixed(3)} | ${codes} | ${(seen.requests / CALLS).toFixed(3)} | ${percentile(latencies, 0.5).toFixed(0)} / ${percentile(latencies, 0.99).toFixed(0)} ms | ${((CALLS / elapsed) * 1000).toFixed(0)}/s |`,
    );
    console.error(`done: ${variant.label}`);
  }
} finally {
  await delay.close();
  await inspect.close();
  await local.stop();
}

console.log(
  `DynamoDB Local, ${INSTANCES} instances × ${CONCURRENCY} calls in flight, ${DELAY} ms added per request, limitAll([per-user (sliding, ${USERS} users), global ("all")]), nothing denied:\n`,
);
console.log(
  "| global limit | calls | admitted | transactions | applied | cancelled (share) | cancelled / call | cancellation codes (failed actions) | requests / call | p50 / p99 | calls/s |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);
