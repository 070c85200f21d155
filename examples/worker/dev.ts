// `npm run dev:worker`: the example Worker under real `wrangler dev`, offline, against an embedded dynalite.
// Starts dynalite on a free loopback port, creates the table, passes the connection as `--var`s (no
// .dev.vars to write), keeps wrangler's Durable Object state in a temporary folder, and stops all of it on
// Ctrl-C. `PORT` picks the Worker's port (default 8787).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { CounterClient } from "dynacount";

// dynalite ships no types: a function of options that returns a node:http server.
const dynalite = createRequire(import.meta.url)("dynalite") as (options: object) => Server;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const port = Number(process.env.PORT ?? 8787);
if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`PORT must be a port number, got "${process.env.PORT}"`);
const credentials = { accessKeyId: "local", secretAccessKey: "local" };
const tableName = "AtomicCounters";

const database = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
await new Promise<void>((resolve) => database.listen(0, "127.0.0.1", resolve));
const endpoint = `http://127.0.0.1:${(database.address() as AddressInfo).port}`;
// With the page-view index (`top`); TTL is not an API dynalite has, so nothing expires here.
await new CounterClient({ endpoint, region: "us-east-1", credentials, env: {}, tableName }).createTable({ pageViews: true });
console.log(`dynalite (embedded) on ${endpoint}, table ${tableName}`);

const state = mkdtempSync(path.join(os.tmpdir(), "dynacount-dev-"));
// A fresh secret per run for hashing visitors (unique counts): in production, `wrangler secret put PAGEVIEWS_SECRET`.
const vars = {
  AWS_ENDPOINT_URL_DYNAMODB: endpoint,
  AWS_ACCESS_KEY_ID: credentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
  PAGEVIEWS_SECRET: crypto.randomUUID(),
};
const wrangler = spawn(
  process.execPath,
  [
    path.join(root, "node_modules/wrangler/bin/wrangler.js"),
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--persist-to",
    state,
    "--show-interactive-dev-session=false",
    ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
  ],
  // Its own process group, so stopping it stops workerd too.
  // Offline for real: no metrics, no version check in the banner, and no fetch of the `request.cf` sample
  // (which prints a stack trace when there is no network; the Worker gets miniflare's placeholder).
  {
    cwd: root,
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      WRANGLER_HIDE_BANNER: "true",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      CLOUDFLARE_API_TOKEN: "",
    },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  },
);

const url = `http://127.0.0.1:${port}`;
let announced = false;
wrangler.stdout.on("data", (chunk: Buffer) => {
  process.stdout.write(chunk);
  if (!announced && /Ready on/.test(String(chunk))) {
    announced = true;
    console.log(`
The example Worker is running on ${url} (wrangler dev, offline; Ctrl-C stops everything).
Try:
  open ${url}/hello in a browser             # a page that counts its own view (bots and curl are not counted)
  curl '${url}/stats?page=/hello'            # views: total, today, uniques, last 24 hours and 30 days, top pages
  ${url}/chart.svg?page=/hello and ${url}/badge.svg?page=/hello
  curl -X POST ${url}/flush                  # write pending views now (the objects flush every 5 s anyway)
  curl -i ${url}/api/orders                  # rate limited: RateLimit headers; 429 after 10 a minute
dev:worker ready ${url}`);
  }
});

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (wrangler.exitCode === null && wrangler.pid !== undefined) {
    const exited = new Promise((resolve) => wrangler.once("exit", resolve));
    try {
      process.kill(-wrangler.pid, "SIGTERM");
    } catch {
      // already gone
    }
    await exited;
  }
  await new Promise((resolve) => database.close(resolve));
  rmSync(state, { recursive: true, force: true });
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
wrangler.on("exit", (code) => void stop(code ?? 1));
