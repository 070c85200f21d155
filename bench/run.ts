// `npm run bench`: measurements side by side in one run, printed as ratios. `--quick` (used by the test
// suite) runs every section with tiny sizes only to prove the harness works; its numbers mean nothing.
import { createRequire } from "node:module";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CounterBuffer, CounterClient } from "dynacount";
import { bundleWorker, startMiniflare } from "../test/support/workers.ts";

const quick = process.argv.includes("--quick");
const require = createRequire(import.meta.url);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(1));
const rows: string[][] = [];
const row = (...cells: (string | number)[]) => rows.push(cells.map(String));

async function withDynalite<T>(fn: (endpoint: string) => Promise<T>): Promise<T> {
  const dynalite = require("dynalite") as (o: object) => Server;
  const server = dynalite({ createTableMs: 0 });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    return await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

const credentials = { accessKeyId: "bench", secretAccessKey: "bench-secret" };

/** add() throughput against a plain Map increment, interleaved runs, medians. */
function bufferAdds() {
  const client = new CounterClient({ endpoint: "http://127.0.0.1:9", env: {}, credentials });
  const n = quick ? 20_000 : 5_000_000;
  const keys = Array.from({ length: 1000 }, (_, i) => `page:/articles/${i}`);
  const runs = quick ? 1 : 7;
  const ours: number[] = [];
  const map: number[] = [];
  for (let r = 0; r < runs; r++) {
    const buffer = new CounterBuffer(client, { maxKeys: 1_000_000, flushIntervalMs: 3_600_000 });
    let t = performance.now();
    for (let i = 0; i < n; i++) buffer.add(keys[i % 1000]!);
    ours.push(n / ((performance.now() - t) / 1000));
    const plain = new Map<string, number>();
    t = performance.now();
    for (let i = 0; i < n; i++) {
      const k = keys[i % 1000]!;
      plain.set(k, (plain.get(k) ?? 0) + 1);
    }
    map.push(n / ((performance.now() - t) / 1000));
  }
  row("CounterBuffer.add, 1,000 keys (Node)", `${fmt(median(ours))} adds/s`, `plain Map: ${fmt(median(map))}/s`, `${(median(ours) / median(map)).toFixed(2)}× a plain Map`, "goal ≥ 5 M/s");
}

/** Requests per 100,000 adds over 1,000 keys: buffered vs one UpdateItem per add. */
async function requestsPerAdds() {
  await withDynalite(async (endpoint) => {
    let requests = 0;
    const client = new CounterClient({
      endpoint,
      env: {},
      credentials,
      tableName: "BenchRequests",
      fetch: (input, init) => {
        requests++;
        return fetch(input, init);
      },
    });
    await client.createTable();
    requests = 0;
    const adds = quick ? 2_000 : 100_000;
    const buffer = new CounterBuffer(client, { maxKeys: 1_000_000, flushIntervalMs: 3_600_000, concurrency: 32 });
    for (let i = 0; i < adds; i++) buffer.add(`k${i % 1000}`);
    await buffer.close();
    row(`DynamoDB requests per ${fmt(adds)} adds, 1,000 keys`, `${requests} requests`, `unbuffered: ${adds}`, `${(adds / requests).toFixed(0)}× fewer`, "goal = distinct keys");
  });
}

/** Durable Object add() throughput inside workerd. */
async function durableAdds() {
  const script = await bundleWorker("bench/workers/do-bench.ts");
  const mf = startMiniflare(script, {
    durableObjects: { BENCH: "BenchCounter" },
    bindings: { AWS_ENDPOINT_URL_DYNAMODB: "http://127.0.0.1:9", AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" },
  });
  try {
    const n = quick ? 200 : 20_000;
    const results: Record<string, number> = {};
    for (const mode of ["sequential", "parallel"]) {
      const rates: number[] = [];
      for (let r = 0; r < (quick ? 1 : 5); r++) {
        const t = performance.now();
        const res = await mf.dispatchFetch(`http://bench/?n=${n}&keys=1000&mode=${mode}&do=${mode}${r}`);
        const body = await res.text();
        if (res.status !== 200) throw new Error(`Durable Object bench failed: ${body}`);
        rates.push(n / ((performance.now() - t) / 1000));
      }
      results[mode] = median(rates);
    }
    row("DurableCounterBuffer.add in workerd, 1 object", `${fmt(results.sequential!)} adds/s awaited one by one`, `${fmt(results.parallel!)} adds/s concurrent`, `${(results.parallel! / results.sequential!).toFixed(1)}× with concurrency`, "each add persisted before it resolves");
  } finally {
    await mf.dispose();
  }
}

console.log(`dynacount bench ${quick ? "(quick: harness check only)" : ""} — ${new Date().toISOString()}, Node ${process.version}\n`);
bufferAdds();
await requestsPerAdds();
await durableAdds();

const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  "));
