// dynacount/hono over real HTTP on @hono/node-server, Bun.serve and Deno.serve: forged headers, reached directly
// and through a proxy that appends to X-Forwarded-For, against both servers.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, describe, it, mock } from "node:test";
import { serve, type HttpBindings } from "@hono/node-server";
import { Hono } from "hono";
import { CounterClient, RateLimiter } from "../../src/index.ts";
import { rateLimit, type RateLimitMiddlewareOptions, type RateLimitVariables } from "../../src/hono.ts";
import { credentials, freshTable, servers } from "../support/harness.ts";
import { root } from "../support/workers.ts";

const LIMIT = 5;
const TRIES = 20;

/** Loopback addresses stand for machines: every 127.0.0.0/8 address reaches this host, each a different peer. */
const CLIENT = "127.0.0.1";
const OTHER_CLIENT = "127.0.0.2";
const PROXY = "127.0.0.3";

interface Answer {
  status: number;
  body: string;
}

/** A GET from `localAddress` (one connection per request, as from different machines). */
function get(url: string, headers: Record<string, string>, localAddress = CLIENT): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, localAddress, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
  });
}

/**
 * A reverse proxy like AWS ALB or nginx with `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`: it
 * appends the address it received the request from to whatever X-Forwarded-For the client sent, and connects to
 * the app from its own address ({@link PROXY}).
 */
async function appendingProxy(target: string): Promise<string> {
  const to = new URL(target);
  const proxy = http.createServer((req, res) => {
    const sent = req.headers["x-forwarded-for"];
    const peer = req.socket.remoteAddress ?? "";
    const headers = { ...req.headers, "x-forwarded-for": sent ? `${String(sent)}, ${peer}` : peer };
    const upstream = http.request(
      {
        host: to.hostname,
        port: to.port,
        path: `${to.pathname.replace(/\/$/, "")}${req.url ?? "/"}`,
        method: req.method,
        headers,
        localAddress: PROXY,
        agent: false,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  after(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
  return `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

/** A server under test: where its two routes are, and the identifiers its limiters were asked about. */
interface Served {
  /** Default options: reached directly. */
  direct: string;
  /** `trustProxies: 1`: reached through {@link appendingProxy}. */
  proxied: string;
  seen(): Promise<string[]>;
}

/**
 * The same checks on every server: a client rotating forged headers gets `LIMIT` of `TRIES`, directly and
 * through an appending proxy; another client keeps a budget of its own.
 */
function sameChecks(start: () => Promise<Served>) {
  it(`reached directly, a client rotating forged cf-connecting-ip and X-Forwarded-For gets ${LIMIT} of ${TRIES}`, async () => {
    const served = await start();
    const statuses: number[] = [];
    // The X-Forwarded-For from loopback makes the in-process Node server warn about trustProxies (checked below).
    const warn = mock.method(console, "warn", () => {});
    try {
      for (let i = 0; i < TRIES; i++) {
        const forged = { "cf-connecting-ip": `198.51.100.${i}`, "x-forwarded-for": `203.0.113.${i}, 192.0.2.${i}` };
        statuses.push((await get(`${served.direct}/api/hello`, forged)).status);
      }
    } finally {
      warn.mock.restore();
    }
    assert.equal(statuses.filter((s) => s === 200).length, LIMIT, statuses.join(" "));
    assert.deepEqual(new Set(statuses), new Set([200, 429]));
    assert.deepEqual([...new Set(await served.seen())], [CLIENT], "only the connection's address counts");
    const other = await get(`${served.direct}/api/hello`, { "cf-connecting-ip": "198.51.100.0" }, OTHER_CLIENT);
    assert.equal(other.status, 200, "another machine has a budget of its own");
    assert.deepEqual([...new Set(await served.seen())], [CLIENT, OTHER_CLIENT]);
  });

  it(`behind a proxy that appends to X-Forwarded-For (trustProxies: 1), rotating its left-most entry gets ${LIMIT} of ${TRIES}`, async () => {
    const served = await start();
    const proxy = await appendingProxy(served.proxied);
    const statuses: number[] = [];
    for (let i = 0; i < TRIES; i++) {
      const forged = { "x-forwarded-for": `203.0.113.${i}`, "cf-connecting-ip": `198.51.100.${i}` };
      statuses.push((await get(`${proxy}/api/hello`, forged)).status);
    }
    assert.equal(statuses.filter((s) => s === 200).length, LIMIT, statuses.join(" "));
    assert.deepEqual([...new Set(await served.seen())], [CLIENT], "the address the proxy saw, neither the forged one nor the proxy's");
    const other = await get(`${proxy}/api/hello`, { "x-forwarded-for": CLIENT }, OTHER_CLIENT);
    assert.equal(other.status, 200, "another machine behind the same proxy has a budget of its own");
    assert.deepEqual([...new Set(await served.seen())], [CLIENT, OTHER_CLIENT]);
  });
}

/**
 * The limiter's options: a bucket that refills over an hour (no calendar window a run could straddle and be
 * admitted afresh in), whose key records who was asked about.
 */
const limiterOptions = (seen: string[], route: string) => ({
  limit: LIMIT,
  windowMs: 3_600_000,
  algorithm: "token-bucket" as const,
  key: (id: string) => (seen.push(id), `${route}:${id}`),
});

for (const server of await servers()) {
  describe(`dynacount/hono on @hono/node-server against ${server.name}`, () => {
    /** An app as a Node user writes it: the client built from `c.env` (node-server's own object) plus explicit settings. */
    async function nodeServer(): Promise<Served> {
      const { tableName } = (await freshTable(server.endpoint)).table;
      const seen: string[] = [];
      const app = new Hono<{ Bindings: HttpBindings; Variables: RateLimitVariables }>();
      const limiters = new Map<string, RateLimiter>();
      const route = (prefix: string, options: RateLimitMiddlewareOptions) => {
        app.use(`${prefix}/api/*`, (c, next) => {
          let limiter = limiters.get(prefix);
          if (!limiter) {
            limiter = new RateLimiter(
              new CounterClient({ env: c.env, endpoint: server.endpoint, region: "us-east-1", credentials, tableName }),
              limiterOptions(seen, prefix),
            );
            limiters.set(prefix, limiter);
          }
          return rateLimit(limiter, options)(c, next);
        });
        app.get(`${prefix}/api/hello`, (c) => c.json({ remaining: c.get("rateLimit").remaining }));
      };
      route("/direct", {});
      route("/proxied", { trustProxies: 1 });
      const running = await new Promise<ReturnType<typeof serve>>((resolve) => {
        const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
      });
      after(() => new Promise<void>((resolve) => running.close(() => resolve())));
      const base = `http://127.0.0.1:${(running.address() as AddressInfo).port}`;
      return { direct: `${base}/direct`, proxied: `${base}/proxied`, seen: async () => seen };
    }

    sameChecks(nodeServer);

    it("a client reaching the app directly with X-Forwarded-For from a private address: one warning to set trustProxies", async () => {
      const warn = mock.method(console, "warn", () => {});
      try {
        const served = await nodeServer();
        for (let i = 0; i < 3; i++) await get(`${served.direct}/api/hello`, { "x-forwarded-for": `203.0.113.${i}` });
        assert.equal(warn.mock.callCount(), 1);
        assert.match(String(warn.mock.calls[0]!.arguments[0]), /"trustProxies"/);
      } finally {
        warn.mock.restore();
      }
    });
  });

  for (const runtime of ["bun", "deno"] as const) {
    describe(`dynacount/hono on ${runtime === "bun" ? "Bun.serve" : "Deno.serve"} against ${server.name}`, () => {
      sameChecks(async () => {
        const { tableName } = (await freshTable(server.endpoint)).table;
        return startServer(runtime, server.endpoint, tableName);
      });
    });
  }
}

/**
 * A Bun or Deno process serving the app as a user of that runtime writes it: `Bun.serve({ fetch: app.fetch })`
 * (c.env is the Server) or `Deno.serve(app.fetch)` (c.env is the handler info), the client built from `c.env` plus
 * explicit settings. It runs the source (no build needed) from a script written to a temporary folder; Deno
 * with jsr.json's import map and no permission beyond loopback.
 */
async function startServer(runtime: "bun" | "deno", endpoint: string, tableName: string): Promise<Served> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `dynacount-hono-${runtime}-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "server.ts");
  const from = (p: string) => JSON.stringify(path.join(root, p));
  const config = JSON.stringify({ endpoint, tableName, credentials, limit: LIMIT });
  writeFileSync(
    file,
    `import { Hono } from ${runtime === "bun" ? from("node_modules/hono/dist/index.js") : '"hono"'};
import { CounterClient, RateLimiter } from ${from("src/index.ts")};
import { rateLimit } from ${from("src/hono.ts")};
const config = JSON.parse(${runtime === "bun" ? "process.argv[2]" : "Deno.args[0]"});
const seen = [];
const limiters = new Map();
const app = new Hono();
for (const [prefix, options] of [["/direct", {}], ["/proxied", { trustProxies: 1 }]]) {
  app.use(prefix + "/api/*", (c, next) => {
    let limiter = limiters.get(prefix);
    if (!limiter) {
      const client = new CounterClient({ env: c.env, endpoint: config.endpoint, region: "us-east-1", credentials: config.credentials, tableName: config.tableName });
      limiter = new RateLimiter(client, { limit: config.limit, windowMs: 3600000, algorithm: "token-bucket", key: (id) => (seen.push(id), prefix + ":" + id) });
      limiters.set(prefix, limiter);
    }
    return rateLimit(limiter, options)(c, next);
  });
  app.get(prefix + "/api/hello", (c) => c.json({ remaining: c.get("rateLimit").remaining }));
}
app.get("/seen", (c) => c.json(seen));
${
  runtime === "bun"
    ? `const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
console.log("listening " + server.port);`
    : `Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: ({ port }) => console.log("listening " + port) }, app.fetch);`
}
`,
  );
  const [command, args] =
    runtime === "bun"
      ? [path.join(root, "node_modules", ".bin", "bun"), [file, config]]
      : [
          path.join(root, "node_modules", ".bin", "deno"),
          ["run", "--config", "jsr.json", "--no-prompt", "--allow-net=127.0.0.1", file, config],
        ];
  const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  after(() => {
    child.kill();
  });
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    // Deno may first fetch jsr.json's npm imports into its cache.
    const timer = setTimeout(() => reject(new Error(`${runtime} did not start within 60 s: ${output}`)), 60_000);
    child.stderr.on("data", (d: Buffer) => (output += d));
    child.stdout.on("data", (d: Buffer) => {
      output += d;
      const m = /listening (\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${runtime} exited with ${code}: ${output}`));
    });
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    direct: `${base}/direct`,
    proxied: `${base}/proxied`,
    seen: async () => JSON.parse((await get(`${base}/seen`, {})).body) as string[],
  };
}
