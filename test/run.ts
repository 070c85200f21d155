// One command for the whole suite: starts dynalite and DynamoDB Local once, runs the main suite on Node and
// the thin per-runtime suites against the same servers, stops the servers, and prints one summary.
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SERVERS_ENV, startServers } from "./support/servers.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const only = process.argv.slice(2);

interface Suite {
  name: string;
  command: string;
  args: string[];
  /** Variables of its own. */
  env?: Record<string, string>;
  /** Pulls pass/fail counts out of the runner's output. */
  counts(output: string): { passed: number; failed: number } | undefined;
}

const nodeCounts = (out: string) => {
  const pass = /^ℹ pass (\d+)/m.exec(out);
  const fail = /^ℹ fail (\d+)/m.exec(out);
  return pass && fail ? { passed: Number(pass[1]), failed: Number(fail[1]) } : undefined;
};

// The Node suite: every tier folder's files (unit: no servers; server: both servers; build: the built package).
const testFiles = ["unit", "server", "build"]
  .flatMap((tier) =>
    readdirSync(path.join(root, "test", tier))
      .filter((f) => f.endsWith(".test.ts"))
      .map((f) => path.join("test", tier, f)),
  )
  .sort();

const bin = (name: string) => path.join(root, "node_modules", ".bin", name);

const suites: Suite[] = [
  {
    // The deterministic simulator: no servers (an in-memory stand-in, proven by test/server/differential.test.ts), its
    // own suite so that its worker threads do not compete with the server suites for the two cores.
    name: "sim",
    command: process.execPath,
    args: ["--import", "tsx", "--test", "--test-reporter=spec", "test/sim/sim.test.ts"],
    counts: nodeCounts,
  },
  {
    name: "node",
    command: process.execPath,
    args: ["--import", "tsx", "--test", "--test-reporter=spec", "--test-concurrency=2", ...testFiles],
    counts: nodeCounts,
  },
  {
    // The client suites again, with every client on fetch instead of Node's default node:http.
    name: "node-fetch",
    command: process.execPath,
    args: [
      "--import",
      "tsx",
      "--test",
      "--test-reporter=spec",
      "--test-concurrency=2",
      "test/server/client.test.ts",
      "test/server/failures.test.ts",
    ],
    env: { DYNACOUNT_TEST_TRANSPORT: "fetch" },
    counts: nodeCounts,
  },
  {
    name: "bun",
    command: bin("bun"),
    args: ["test", "--timeout", "60000", "./test/runtimes/bun.test.ts"],
    counts: (out) => {
      const pass = /^\s*(\d+) pass/m.exec(out);
      const fail = /^\s*(\d+) fail/m.exec(out);
      return pass && fail ? { passed: Number(pass[1]), failed: Number(fail[1]) } : undefined;
    },
  },
  {
    name: "deno",
    command: bin("deno"),
    // Least permissions: loopback only and the one variable; the run fails if the code needs more.
    args: [
      "test",
      "--config",
      "jsr.json",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      `--allow-env=${SERVERS_ENV}`,
      "test/runtimes/deno.test.ts",
    ],
    counts: (out) => {
      // eslint-disable-next-line no-control-regex
      const m = /(\d+) passed.*?\| (\d+) failed/.exec(out.replace(/\x1b\[[0-9;]*m/g, ""));
      return m ? { passed: Number(m[1]), failed: Number(m[2]) } : undefined;
    },
  },
  {
    name: "workerd",
    command: process.execPath,
    args: ["--import", "tsx", "--test", "--test-reporter=spec", "test/runtimes/workerd.test.ts"],
    counts: nodeCounts,
  },
];

function run(suite: Suite, env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(suite.command, suite.args, { cwd: root, env: { ...env, ...suite.env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => {
      output += d;
      process.stdout.write(d);
    });
    child.stderr.on("data", (d: Buffer) => {
      output += d;
      process.stderr.write(d);
    });
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

const started = Date.now();
const running = await startServers();
console.log(`servers: ${running.servers.map((s) => `${s.name} ${s.endpoint}`).join(", ")} (${Date.now() - started} ms)`);
// Deno fetches jsr.json's npm imports itself; with the system's CA store too it works behind TLS-inspecting proxies.
const env = {
  ...process.env,
  [SERVERS_ENV]: JSON.stringify(running.servers),
  DENO_TLS_CA_STORE: process.env.DENO_TLS_CA_STORE ?? "system,mozilla",
};

const results: { name: string; code: number; passed: number; failed: number; ms: number }[] = [];
try {
  for (const suite of suites) {
    if (only.length > 0 && !only.includes(suite.name)) continue;
    console.log(`\n=== ${suite.name} ===`);
    const t0 = Date.now();
    const { code, output } = await run(suite, env);
    const counts = suite.counts(output) ?? { passed: 0, failed: code === 0 ? 0 : 1 };
    results.push({ name: suite.name, code, ...counts, ms: Date.now() - t0 });
  }
} finally {
  await running.stop();
}

console.log("\n=== summary ===");
for (const r of results) {
  const ok = r.code === 0 && r.failed === 0;
  console.log(`${ok ? "PASS" : "FAIL"}  ${r.name.padEnd(10)} ${r.passed} passed, ${r.failed} failed  (${(r.ms / 1000).toFixed(1)} s)`);
}
const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed + (r.code !== 0 && r.failed === 0 ? 1 : 0), 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && results.length > 0 ? 0 : 1);
