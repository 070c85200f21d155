// `npm run bench`: dynacount beside the AWS SDK v3 and a hand-written aws4fetch call, against the same
// local servers, interleaved in one run so the machine's drift cancels out; medians, min–max and ratios.
// Writes bench/results.json and bench/results.svg. `--quick` (the test suite's) runs every section with
// tiny sizes only to prove the harness works; its numbers mean nothing.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { CounterBuffer, CounterClient } from "dynacount";
import { startServers } from "../test/support/servers.ts";
import { limitAllBench } from "./limitall.ts";
import { pageViewsBench } from "./pageviews.ts";
import { rateLimitBench } from "./ratelimit.ts";
import { bundleWorker, root, startMiniflare } from "../test/support/workers.ts";

const quick = process.argv.includes("--quick");
/** `--only=load,cold`: just those sections (bundles, workerd-cold, load, cold, workerd-cpu, buffers, memory, breakdown, ratelimit, limitall, pageviews). */
const only = process.argv
  .find((a) => a.startsWith("--only="))
  ?.slice(7)
  .split(",");
const want = (name: string) => !only || only.includes(name);
const LIBS = ["dynacount", "sdk", "aws4fetch"] as const;
type Lib = (typeof LIBS)[number];
const LABEL: Record<Lib, string> = { dynacount: "dynacount", sdk: "AWS SDK v3", aws4fetch: "floor: aws4fetch signer + fetch" };
const credentials = { accessKeyId: "AKIDBENCH", secretAccessKey: "bench-secret" };
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);

interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number;
}
const stat = (xs: number[]): Stat => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor((s.length - 1) / 2)]!, min: s[0]!, max: s.at(-1)!, runs: s.length };
};
const fmt = (n: number, digits = 0) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(digits));
const range = (s: Stat, unit = "", digits = 0) => `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
/** The libraries in a different order each round, so none always runs first. */
const rotated = (round: number): Lib[] => [...LIBS.slice(round % LIBS.length), ...LIBS.slice(0, round % LIBS.length)];

const results: Record<string, unknown> = {};
const table: string[][] = [];
const section = (title: string) => table.push([`— ${title}`]);
const row = (...cells: string[]) => table.push(cells);
const log = (s: string) => process.stderr.write(`${s}\n`);

function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, env: { ...env, NO_COLOR: "1", AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: "1" } });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${err.slice(-2000)}`)),
    );
  });
}
const lastJson = <T>(out: string) => JSON.parse(out.trim().split("\n").at(-1)!) as T;

/** 1. Bundle size of a Worker doing one increment and one get. */
async function bundles() {
  section("Worker bundle: one increment + one get, esbuild --minify, workerd/worker/browser conditions, gzip -9");
  const sizes = {} as Record<Lib, number>;
  for (const lib of LIBS) {
    const out = await build({
      entryPoints: [path.join(root, `bench/workers/increment-${lib}.ts`)],
      bundle: true,
      minify: true,
      format: "esm",
      platform: "browser",
      conditions: ["workerd", "worker", "browser"],
      write: false,
      logLevel: "silent",
    });
    sizes[lib] = gzipSync(out.outputFiles[0]!.contents, { level: 9 }).length;
  }
  for (const lib of LIBS)
    row(
      LABEL[lib],
      `${(sizes[lib] / 1024).toFixed(1)} KB`,
      `vs SDK v3 ${ratio(sizes[lib], sizes.sdk)}`,
      lib === "dynacount" ? `budget ≤ 0.25×, checked by npm test (${(sizes.sdk / sizes.dynacount).toFixed(1)}× smaller)` : "",
    );
  results.bundleBytes = sizes;
}

/** 2. Cold start in workerd: from loading the Worker to its first answered request. */
async function coldStart(endpoint: string, table: string) {
  section("Cold start in workerd: new Worker → first answered request (increment + get), ms");
  const scripts = {} as Record<Lib, string>;
  for (const lib of LIBS) scripts[lib] = await bundleWorker(`bench/workers/increment-${lib}.ts`);
  const times = { dynacount: [], sdk: [], aws4fetch: [] } as Record<Lib, number[]>;
  for (let round = 0; round < (quick ? 1 : 12); round++) {
    for (const lib of rotated(round)) {
      const started = performance.now();
      const mf = startMiniflare(scripts[lib], {
        bindings: {
          AWS_ENDPOINT_URL_DYNAMODB: endpoint,
          AWS_REGION: "us-east-1",
          AWS_ACCESS_KEY_ID: credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
          TABLE_NAME: table,
        },
      });
      const res = await mf.dispatchFetch(`http://bench/?key=cold${round}`);
      const body = await res.text();
      if (res.status !== 200) throw new Error(`${lib} Worker failed: ${body}`);
      times[lib].push(performance.now() - started);
      await mf.dispose();
    }
  }
  const stats = Object.fromEntries(LIBS.map((l) => [l, stat(times[l])])) as Record<Lib, Stat>;
  for (const lib of LIBS)
    row(LABEL[lib], range(stats[lib], " ms"), `vs SDK v3 ${ratio(stats[lib].median, stats.sdk.median)}`, "includes starting workerd");
  results.coldStartMs = stats;
}

/**
 * 3. Client CPU per increment and throughput, per runtime, server and concurrency. The floors are the least a
 * correct client on aws4fetch's signer does per call (cached signing key, a timeout per request, answer read
 * and parsed): sent with `fetch(url, init)`, and on Node also with node:http and a keep-alive agent; and on
 * Node the least of all: SigV4 by hand on node:crypto's synchronous hashes, over node:http.
 */
const CONTENDERS = {
  node: ["dynacount", "dynacount-fetch", "sdk", "floor-fetch", "floor-http", "floor-node"],
  bun: ["dynacount", "sdk", "floor-fetch"],
  deno: ["dynacount", "sdk", "floor-fetch"],
} as const;
const CONTENDER_LABEL: Record<string, string> = {
  dynacount: "dynacount",
  "dynacount-fetch": "dynacount (transport: fetch)",
  sdk: "SDK v3",
  "floor-fetch": "floor fetch",
  "floor-http": "floor node:http",
  "floor-node": "floor node:http + node:crypto",
};

async function clientLoad(servers: { name: string; endpoint: string }[], table: string) {
  section("Client CPU per increment (µs, median of rounds; ratios of dynacount to each) and throughput (req/s)");
  const runtimes: [keyof typeof CONTENDERS, string, string[]][] = [
    ["node", process.execPath, ["--import", "tsx", "bench/load.ts"]],
    ["bun", bin("bun"), ["bench/load.ts"]],
    ["deno", bin("deno"), ["run", "-A", "--no-lock", "bench/load.ts"]],
  ];
  const out: Record<string, unknown> = {};
  for (const [runtime, command, prefix] of runtimes) {
    const libs = CONTENDERS[runtime];
    for (const server of quick ? servers.slice(0, 1) : servers) {
      for (const concurrency of quick ? [1] : [1, 32]) {
        const requests = quick ? 20 : concurrency === 1 ? 600 : 2000;
        const cpu: Record<string, number[]> = Object.fromEntries(libs.map((l) => [l, []]));
        const rate: Record<string, number[]> = Object.fromEntries(libs.map((l) => [l, []]));
        for (let round = 0; round < (quick ? 1 : 5); round++) {
          for (const lib of [...libs.slice(round % libs.length), ...libs.slice(0, round % libs.length)]) {
            const r = lastJson<{ cpuUsPerRequest: number; perSecond: number }>(
              await runProcess(command, [...prefix, lib, server.endpoint, table, String(concurrency), String(requests)]),
            );
            cpu[lib]!.push(r.cpuUsPerRequest);
            rate[lib]!.push(r.perSecond);
          }
        }
        const c = Object.fromEntries(libs.map((l) => [l, stat(cpu[l]!)])) as Record<string, Stat>;
        const t = Object.fromEntries(libs.map((l) => [l, stat(rate[l]!)])) as Record<string, Stat>;
        const cell = `${runtime} · ${server.name} · c=${concurrency}`;
        const ours = c.dynacount!.median;
        log(`  ${cell}: cpu ${libs.map((l) => `${l} ${fmt(c[l]!.median)}`).join(" / ")} µs`);
        row(
          cell,
          `CPU ${libs.map((l) => `${CONTENDER_LABEL[l]} ${fmt(c[l]!.median)}`).join(" · ")} µs`,
          libs
            .filter((l) => l !== "dynacount")
            .map((l) => `${ratio(ours, c[l]!.median)} ${CONTENDER_LABEL[l]}`)
            .join(", "),
          `req/s ${libs.map((l) => fmt(t[l]!.median)).join(" / ")}`,
        );
        out[cell] = { cpuUsPerRequest: c, requestsPerSecond: t };
      }
    }
  }
  results.clientLoad = out;
}

/** 3b. Node cold start: a fresh process imports the package, constructs a client and does one increment. */
async function nodeColdStart(endpoint: string, table: string) {
  section("Node cold start: fresh process → import, construct, first increment answered (ms, in-process; CPU ms)");
  const script = (lib: string) => `
    const cpu = process.cpuUsage(); const started = performance.now();
    const options = { endpoint: ${JSON.stringify(endpoint)}, region: "us-east-1", credentials: ${JSON.stringify(credentials)} };
    if (${JSON.stringify(lib)} === "dynacount") {
      const { CounterClient } = await import("dynacount");
      await new CounterClient({ ...options, env: {}, tableName: ${JSON.stringify(table)} }).increment("cold");
    } else {
      const { DynamoDBClient, UpdateItemCommand } = await import("@aws-sdk/client-dynamodb");
      await new DynamoDBClient(options).send(new UpdateItemCommand({ TableName: ${JSON.stringify(table)}, Key: { id: { S: "cold" } },
        UpdateExpression: "ADD #c :by", ExpressionAttributeNames: { "#c": "lastValue" }, ExpressionAttributeValues: { ":by": { N: "1" } }, ReturnValues: "UPDATED_NEW" }));
    }
    const used = process.cpuUsage(cpu);
    console.log(JSON.stringify({ ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000 }));`;
  const libs = ["dynacount", "sdk"] as const;
  const ms: Record<string, number[]> = { dynacount: [], sdk: [] };
  const cpu: Record<string, number[]> = { dynacount: [], sdk: [] };
  for (let round = 0; round < (quick ? 1 : 12); round++) {
    for (const lib of round % 2 ? [...libs].reverse() : libs) {
      const r = lastJson<{ ms: number; cpuMs: number }>(await runProcess(process.execPath, ["--input-type=module", "-e", script(lib)]));
      ms[lib]!.push(r.ms);
      cpu[lib]!.push(r.cpuMs);
    }
  }
  const m = { dynacount: stat(ms.dynacount!), sdk: stat(ms.sdk!) };
  const c = { dynacount: stat(cpu.dynacount!), sdk: stat(cpu.sdk!) };
  row(
    "dynacount",
    range(m.dynacount, " ms", 1),
    `CPU ${range(c.dynacount, " ms", 1)}`,
    `vs SDK v3 ${ratio(m.dynacount.median, m.sdk.median)} (goal ≤ 0.50×)`,
  );
  row("AWS SDK v3", range(m.sdk, " ms", 1), `CPU ${range(c.sdk, " ms", 1)}`, "");
  results.nodeColdStart = { ms: m, cpuMs: c };
}

/** CPU seconds used so far by the workerd processes this process started (Linux /proc). */
function workerdCpuSeconds(): number {
  const tick = 100; // USER_HZ
  let total = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const name = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      if (name.startsWith("workerd") && Number(fields[1]) === process.pid) total += (Number(fields[11]) + Number(fields[12])) / tick;
    } catch {
      // the process ended meanwhile
    }
  }
  return total;
}

/** 4. CPU per request inside workerd. */
async function workerdCpu(endpoint: string, table: string) {
  section("CPU per request inside workerd (one increment + one get per request), µs of the workerd process");
  const requests = quick ? 10 : 600;
  const per = { dynacount: [], sdk: [], aws4fetch: [] } as Record<Lib, number[]>;
  const scripts = {} as Record<Lib, string>;
  for (const lib of LIBS) scripts[lib] = await bundleWorker(`bench/workers/increment-${lib}.ts`);
  for (let round = 0; round < (quick ? 1 : 5); round++) {
    for (const lib of rotated(round)) {
      const mf = startMiniflare(scripts[lib], {
        bindings: {
          AWS_ENDPOINT_URL_DYNAMODB: endpoint,
          AWS_REGION: "us-east-1",
          AWS_ACCESS_KEY_ID: credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
          TABLE_NAME: table,
        },
      });
      for (let i = 0; i < 20; i++) await (await mf.dispatchFetch(`http://bench/?key=w${i % 10}`)).text(); // warm-up
      const before = workerdCpuSeconds();
      for (let i = 0; i < requests; i++) await (await mf.dispatchFetch(`http://bench/?key=w${i % 10}`)).text();
      per[lib].push(((workerdCpuSeconds() - before) * 1e6) / requests);
      await mf.dispose();
    }
  }
  const stats = Object.fromEntries(LIBS.map((l) => [l, stat(per[l])])) as Record<Lib, Stat>;
  for (const lib of LIBS)
    row(LABEL[lib], range(stats[lib], " µs"), `vs SDK v3 ${ratio(stats[lib].median, stats.sdk.median)}`, "workerd's own CPU time, /proc");
  results.workerdCpuUsPerRequest = stats;
}

/** 5. Buffers: add() throughput, requests per 100,000 adds, Durable Object adds/s. */
async function buffers(endpoint: string) {
  section("Buffers");
  const client = new CounterClient({ endpoint: "http://127.0.0.1:9", env: {}, credentials });
  const n = quick ? 20_000 : 5_000_000;
  const keys = Array.from({ length: 1000 }, (_, i) => `page:/articles/${i}`);
  const ours: number[] = [];
  const map: number[] = [];
  for (let r = 0; r < (quick ? 1 : 7); r++) {
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
  const adds = stat(ours);
  const plain = stat(map);
  row(
    "CounterBuffer.add, 1,000 keys, Node",
    `${range(adds, " adds/s")}`,
    `${ratio(adds.median, plain.median)} a plain Map (${fmt(plain.median)}/s)`,
    "goal ≥ 5M/s",
  );

  let requests = 0;
  const counting = new CounterClient({
    endpoint,
    env: {},
    credentials,
    tableName: "BenchBuffer",
    fetch: (input, init) => {
      requests++;
      return fetch(input, init);
    },
  });
  await counting.createTable();
  requests = 0;
  const total = quick ? 2_000 : 100_000;
  const buffer = new CounterBuffer(counting, { maxKeys: 1_000_000, flushIntervalMs: 3_600_000, concurrency: 32, writerId: "bench" });
  for (let i = 0; i < total; i++) buffer.add(`k${i % 1000}`);
  await buffer.close();
  row(
    `DynamoDB requests per ${fmt(total)} adds, 1,000 keys`,
    `${requests}`,
    `${ratio(total, requests)} fewer than a write per add`,
    "goal = distinct keys",
  );

  const script = await bundleWorker("bench/workers/do-bench.ts");
  const mf = startMiniflare(script, {
    durableObjects: { BENCH: "BenchCounter" },
    bindings: { AWS_ENDPOINT_URL_DYNAMODB: "http://127.0.0.1:9", AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" },
  });
  const doRates: Record<string, Stat> = {};
  try {
    const count = quick ? 200 : 20_000;
    for (const mode of ["sequential", "parallel"]) {
      const rates: number[] = [];
      for (let r = 0; r < (quick ? 1 : 5); r++) {
        const t = performance.now();
        const res = await mf.dispatchFetch(`http://bench/?n=${count}&keys=1000&mode=${mode}&do=${mode}${r}`);
        const body = await res.text();
        if (res.status !== 200) throw new Error(`Durable Object bench failed: ${body}`);
        rates.push(count / ((performance.now() - t) / 1000));
      }
      doRates[mode] = stat(rates);
    }
  } finally {
    await mf.dispose();
  }
  row(
    "DurableCounterBuffer.add in workerd, 1 object",
    `${range(doRates.sequential!, " adds/s")} awaited one by one`,
    `${range(doRates.parallel!, " adds/s")} concurrent`,
    "each add stored before it resolves",
  );
  results.buffers = {
    addsPerSecond: adds,
    plainMapPerSecond: plain,
    requestsPerAdds: { adds: total, requests },
    durableObjectAddsPerSecond: doRates,
  };
}

/** 6. Memory: heap per 10,000 pending keys. */
async function memory() {
  section("Memory");
  const measure = async (kind: string) => {
    const runs: number[] = [];
    for (let r = 0; r < (quick ? 1 : 5); r++)
      runs.push(
        lastJson<{ bytes: number }>(await runProcess(process.execPath, ["--expose-gc", "--import", "tsx", "bench/memory.ts", kind])).bytes,
      );
    return stat(runs);
  };
  const buffer = await measure("buffer");
  const map = await measure("map");
  row(
    "heap per 10,000 pending keys",
    `${(buffer.median / 1024).toFixed(0)} KB in a CounterBuffer`,
    `${ratio(buffer.median, map.median)} a plain Map<string, number> (${(map.median / 1024).toFixed(0)} KB)`,
    "fresh process each, keys ~24 chars",
  );
  results.memory = { bufferBytes: buffer, mapBytes: map };
}

/** 7. Where a Node increment's CPU goes, per operation. */
async function breakdown() {
  section("Where the time goes on Node, CPU µs per operation");
  const { AwsClient } = await import("aws4fetch");
  const aws = new AwsClient({ ...credentials, service: "dynamodb", region: "us-east-1", retries: 0 });
  const { dynamoKey, DEFAULT_LAYOUT } = await import("../src/core/keys.ts");
  const { amountToWire } = await import("../src/core/numbers.ts");
  const n = quick ? 50 : 5000;
  const cpu = async (fn: () => unknown) => {
    for (let i = 0; i < Math.min(n, 200); i++) await fn();
    const c = process.cpuUsage();
    for (let i = 0; i < n; i++) await fn();
    const u = process.cpuUsage(c);
    return (u.user + u.system) / n;
  };
  const body = () =>
    JSON.stringify({
      TableName: "AtomicCounters",
      Key: dynamoKey(DEFAULT_LAYOUT, "page:/home"),
      UpdateExpression: "ADD #c :by",
      ExpressionAttributeNames: { "#c": "lastValue" },
      ExpressionAttributeValues: { ":by": { N: amountToWire(1, "by") } },
      ReturnValues: "UPDATED_NEW",
    });
  const ours = await cpu(body);
  const sign = await cpu(() =>
    aws.sign("http://127.0.0.1:9/", {
      method: "POST",
      headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.UpdateItem" },
      body: body(),
    }),
  );
  const parse = await cpu(() => JSON.parse('{"Attributes":{"lastValue":{"N":"12345"}}}'));
  row("validation + request body (ours)", `${ours.toFixed(1)} µs`, "", "");
  row("SigV4 signing (aws4fetch, WebCrypto)", `${sign.toFixed(1)} µs`, "", "Node's crypto.subtle is the slow part on Node");
  row("answer JSON.parse", `${parse.toFixed(1)} µs`, "", "");
  results.breakdownUs = { oursValidationAndBody: ours, signing: sign, parse };
}

/** 8. Rate limiting through a 30 ms delay proxy: requests per call, latency, admitted vs the exact limit. */
async function rateLimiting(servers: { name: string; endpoint: string }[]) {
  section("Rate limiting through a 30 ms delay proxy (edge to region): DynamoDB requests per call, limit() p50/p99 ms, admitted / exact");
  const rows = await rateLimitBench(servers, quick);
  results.rateLimiting = rows;
  let workload = "";
  for (const r of rows) {
    if (`${r.server} ${r.workload}` !== workload) row(`${(workload = `${r.server} ${r.workload}`)}`);
    row(
      `  ${r.implementation}`,
      `${r.requestsPerCall.toFixed(3)} req/call`,
      `p50 ${r.p50Ms.toFixed(2)} · p99 ${r.p99Ms.toFixed(1)} ms`,
      `${r.admitted} / ${r.exact}${r.failedOpen ? ` (${r.failedOpen} failed open)` : ""}${r.storedCount !== undefined ? `; its stored count reached ${r.storedCount}` : ""}`,
    );
  }
}

/** 9. Three limits per call through the same proxy: limitAll vs three limit() calls vs RateLimiterUnion. */
async function severalLimits(servers: { name: string; endpoint: string }[]) {
  section(
    "Three limits per call (10 minutes 40, hour 30, day 25 per user; 100 users × 40 calls, 32 in flight) through a 30 ms delay proxy",
  );
  const rows = await limitAllBench(servers, quick);
  results.severalLimits = rows;
  let server = "";
  for (const r of rows) {
    if (r.server !== server) row((server = r.server));
    row(
      `  ${r.implementation}`,
      `${r.requestsPerCall.toFixed(2)} req · ${r.wcuPerCall.toFixed(2)} WCU per call`,
      `p50 ${r.p50Ms.toFixed(1)} · p99 ${r.p99Ms.toFixed(1)} ms`,
      `${r.admitted} / ${r.exact} admitted; ${r.wronglyCharged} denied calls charged other limits (${r.extraUnits} units past the admitted calls')`,
    );
  }
}

/** 10. Page views in workerd: the tracker and its objects beside one write per view and one RPC per view. */
async function pageViews(endpoint: string) {
  const r = await pageViewsBench({ endpoint, quick, workerdCpuSeconds, log });
  const pages = r.rows.map((x) => x.workload).filter((w, i, a) => a.indexOf(w) === i);
  section(
    `Page views in workerd, DynamoDB Local behind a counting proxy: ${pages.join(" / ")}, every view a new visitor; views arrive at ${fmt(r.ratePerSecond)}/s in one isolate, objects flush every ${r.flushIntervalMs / 1000} s (per 100,000 views; CPU µs per view of the workerd process)`,
  );
  const NAME = {
    tracker: "PageViewTracker → DurablePageViews",
    increment: "naive (a): client.increment per view",
    do: "naive (b): RPC per view, DurableCounterBuffer",
  } as const;
  const pct = (e: number, t: number) => `${e >= t ? "+" : ""}${(((e - t) / t) * 100).toFixed(2)} %`;
  for (const x of r.rows) {
    const hot = x.pages === 1;
    const tracker = x.path === "tracker";
    const rpc = `${x.rpcsPerView.toFixed(3)} RPC/view${tracker && hot ? ` (goal ≤ 0.05 ${x.rpcsPerView <= 0.05 ? "✓" : "✗"})` : ""}`;
    // Day, month and lifetime items and the sketch: 4 writes per page per flush at most, however many views.
    const perFlush =
      x.writesPerPagePerFlush === undefined
        ? "1 write per view"
        : `${x.writesPerPagePerFlush.toFixed(2)} writes/page/flush, ${x.flushes} flushes${tracker ? ` (goal: per page per flush ${x.writesPerPagePerFlush <= 4 ? "✓" : "✗"})` : ""}`;
    const cpu = `CPU Worker ${x.workerCpuUs.toFixed(1)}${x.objectCpuUs !== undefined ? ` · objects ${x.objectCpuUs.toFixed(1)}` : ""} µs`;
    const uniques = x.uniques
      ? `uniques ${x.uniques.estimated} / ${x.uniques.true} (${pct(x.uniques.estimated, x.uniques.true)}: one sample of the sketch's error, below); views read back ${x.totalRead}, arrived at ${fmt(x.viewsPerSecond)}/s`
      : `measured on ${fmt(x.views)} views (${fmt(x.viewsPerSecond)}/s), scaled`;
    row(`${x.workload} · ${NAME[x.path]}`, `${rpc} · ${fmt(x.writesPer100k)} writes · ${fmt(x.wcuPer100k)} WCU`, perFlush, cpu, uniques);
  }
  row(
    "1 page · tracker, real HTTP page loads (fetch → ctx.waitUntil(track))",
    `${(r.http.rpcs / r.http.views).toFixed(3)} RPC/view`,
    `${r.http.views} page loads at ${fmt(r.http.requestsPerSecond)} req/s, 32 in flight`,
    "",
    "checks the in-Worker loop against real requests",
  );
  const e = r.sketchError;
  row(
    `uniques: the sketch's error over ${e.sketches} sketches of ${fmt(e.visitors)} visitors`,
    `${e.rmsPercent.toFixed(2)} % RMS (goal: standard error ≤ 2 % ${e.rmsPercent <= 2 ? "✓" : "✗"})`,
    `mean ${e.meanPercent >= 0 ? "+" : ""}${e.meanPercent.toFixed(2)} %`,
    `${e.within2Percent} of ${e.sketches} within 2 %`,
    "2^12 registers: 1.04/√4096 = 1.6 % expected",
  );
  results.pageViews = r;
}

function svg(): string {
  const load = results.clientLoad as Record<string, { cpuUsPerRequest: Record<string, Stat> }>;
  const shown = ["dynacount", "sdk", "floor-fetch"] as const;
  const cells = Object.entries(load);
  const barH = 14;
  const rowH = barH * 3 + 14;
  const width = 760;
  const left = 190;
  const max = Math.max(...cells.flatMap(([, v]) => shown.map((l) => v.cpuUsPerRequest[l]!.median)));
  const colors: Record<(typeof shown)[number], string> = { dynacount: "#f6821f", sdk: "#7d8a99", "floor-fetch": "#3b82f6" };
  const height = 60 + cells.length * rowH + 30;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Client CPU per increment (µs, median; shorter is better)</text>`,
    `<text x="10" y="38" fill="#555">${(results.machine as { summary: string }).summary}</text>`,
  ];
  shown.forEach((lib, i) =>
    parts.push(
      `<rect x="${left + i * 150}" y="46" width="10" height="10" fill="${colors[lib]}"/><text x="${left + i * 150 + 14}" y="55">${CONTENDER_LABEL[lib]}</text>`,
    ),
  );
  cells.forEach(([name, v], i) => {
    const y = 66 + i * rowH;
    parts.push(`<text x="10" y="${y + barH * 1.8}">${name}</text>`);
    shown.forEach((lib, j) => {
      const value = v.cpuUsPerRequest[lib]!.median;
      const w = Math.max(1, ((width - left - 70) * value) / max);
      parts.push(
        `<rect x="${left}" y="${y + j * barH}" width="${w.toFixed(1)}" height="${barH - 2}" fill="${colors[lib]}"/><text x="${left + w + 4}" y="${y + j * barH + barH - 4}">${Math.round(value)}</text>`,
      );
    });
  });
  const b = results.bundleBytes as Record<Lib, number>;
  parts.push(
    `<text x="10" y="${height - 12}" fill="#333">Worker bundle (increment + get, gzip): ${LIBS.map((l) => `${LABEL[l]} ${(b[l] / 1024).toFixed(1)} KB`).join(" · ")}</text>`,
  );
  parts.push("</svg>");
  return parts.join("\n");
}

const versions = {
  node: process.version,
  bun: (await runProcess(bin("bun"), ["--version"])).trim(),
  deno: (await runProcess(bin("deno"), ["--version"])).split("\n")[0]!.trim(),
  workerd: JSON.parse(readFileSync(path.join(root, "node_modules/workerd/package.json"), "utf8")).version as string,
};
results.machine = {
  date: new Date().toISOString(),
  cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}`,
  memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  versions,
  quick,
  summary: `${new Date().toISOString().slice(0, 10)} · ${os.cpus().length} cores · Node ${versions.node} · ${versions.bun ? `Bun ${versions.bun}` : ""} · ${versions.deno} · workerd ${versions.workerd}`,
};

log(`dynacount bench${quick ? " (quick: harness check only, numbers mean nothing)" : ""}: starting servers…`);
const running = await startServers();
try {
  const setup = new CounterClient({ endpoint: running.servers[0]!.endpoint, env: {}, credentials, tableName: "BenchLoad" });
  await setup.createTable();
  await new CounterClient({ endpoint: running.servers[1]!.endpoint, env: {}, credentials, tableName: "BenchLoad" }).createTable();
  if (want("bundles")) await bundles();
  if (want("workerd-cold")) log("cold start…"), await coldStart(running.servers[0]!.endpoint, "BenchLoad");
  if (want("load")) log("client load…"), await clientLoad(running.servers, "BenchLoad");
  if (want("cold")) log("Node cold start…"), await nodeColdStart(running.servers[0]!.endpoint, "BenchLoad");
  if (want("workerd-cpu")) log("workerd CPU…"), await workerdCpu(running.servers[0]!.endpoint, "BenchLoad");
  if (want("buffers")) log("buffers…"), await buffers(running.servers[0]!.endpoint);
  if (want("memory")) await memory();
  if (want("breakdown")) await breakdown();
  if (want("ratelimit")) log("rate limiting…"), await rateLimiting(running.servers);
  if (want("limitall")) log("several limits…"), await severalLimits(running.servers);
  if (want("pageviews")) log("page views…"), await pageViews(running.servers[1]!.endpoint);
} finally {
  await running.stop();
}

const widths = [0, 1, 2, 3].map((i) => Math.max(...table.filter((r) => r.length > 1).map((r) => r[i]?.length ?? 0)));
console.log(`\ndynacount bench — ${(results.machine as { summary: string }).summary}${quick ? " — QUICK MODE, numbers mean nothing" : ""}`);
for (const r of table) console.log(r.length === 1 ? `\n${r[0]}` : `  ${r.map((c, i) => c.padEnd(widths[i]!)).join("  ")}`);
if (!quick && !only) {
  writeFileSync(path.join(root, "bench/results.json"), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(root, "bench/results.svg"), svg());
  console.log("\nwrote bench/results.json and bench/results.svg");
}
