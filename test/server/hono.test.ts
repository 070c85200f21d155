// dynacount/hono with a real Hono app: on Node (app.request) against both servers, and inside workerd (miniflare).
// Real HTTP servers on Node and Bun, forged headers and proxies: test/server/hono-http.test.ts.
import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { Hono } from "hono";
import { ConcurrencyLimiter, CounterError, RateLimiter } from "../../src/index.ts";
import { clientAddress, rateLimit, type MultiRateLimitVariables, type RateLimitVariables } from "../../src/hono.ts";
import { servers, throughProxy } from "../support/harness.ts";
import { bundleWorker, startMiniflare } from "../support/workers.ts";

const WINDOW = 60_000;

/** What @hono/node-server passes as `c.env` (node:http's request, whose socket knows the peer), for `app.request`. */
const nodeEnv = (remoteAddress: string) => ({ incoming: { socket: { remoteAddress } } });

/** A test case's env for a message (a hostile one throws when read). */
function shown(env: unknown): string {
  try {
    return JSON.stringify(env)?.slice(0, 80) ?? "undefined";
  } catch {
    return "(an env that throws)";
  }
}

for (const server of await servers()) {
  describe(`dynacount/hono on Node against ${server.name}`, () => {
    it("allowed answers carry the headers and the result; denied ones are 429 with Retry-After and the handler does not run", async () => {
      const { client } = await throughProxy(server.endpoint);
      const now = 50 * WINDOW + 15_000;
      const limiter = new RateLimiter(client, { limit: 2, windowMs: WINDOW, algorithm: "fixed-window", now: () => now });
      let ran = 0;
      const app = new Hono<{ Variables: RateLimitVariables }>();
      app.use("/api/*", rateLimit(limiter));
      app.get("/api/orders", (c) => {
        ran++;
        return c.json({ remaining: c.get("rateLimit").remaining });
      });
      // A forged cf-connecting-ip is not believed off Cloudflare: the connection's address counts.
      const call = () => app.request("/api/orders", { headers: { "cf-connecting-ip": `198.51.100.${ran}` } }, nodeEnv("203.0.113.9"));
      const first = await call();
      assert.equal(first.status, 200);
      assert.deepEqual(await first.json(), { remaining: 1 });
      assert.equal(first.headers.get("RateLimit-Policy"), `"default";q=2;w=60`);
      assert.match(first.headers.get("RateLimit")!, /^"default";r=1;t=\d+$/);
      assert.equal((await call()).status, 200);
      const denied = await call();
      assert.equal(denied.status, 429);
      assert.equal(await denied.text(), "Too Many Requests");
      assert.match(denied.headers.get("RateLimit")!, /^"default";r=0;t=\d+$/);
      assert.ok(Number(denied.headers.get("Retry-After")) >= 1);
      assert.equal(ran, 2, "the handler did not run for the denied request");
      const other = await app.request("/api/orders", { headers: { "x-forwarded-for": "203.0.113.9" } }, nodeEnv("203.0.113.10"));
      assert.equal(other.status, 200, "another connection has its own budget, whatever X-Forwarded-For says");
    });

    it("options: identifier, cost, draft-6 headers, onDenied; unknown options are Validation errors", async () => {
      const { client } = await throughProxy(server.endpoint);
      const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW, algorithm: "token-bucket" });
      const app = new Hono();
      app.use(
        "*",
        rateLimit(limiter, {
          identifier: (c) => c.req.header("x-api-key") ?? "anonymous",
          cost: (c) => (c.req.method === "POST" ? 3 : 1),
          headers: "draft-6",
          onDenied: (c, result) => c.json({ error: "slow down", remaining: result.remaining }, 429),
        }),
      );
      app.post("/work", (c) => c.text("done"));
      const post = () => app.request("/work", { method: "POST", headers: { "x-api-key": "k1" } });
      const ok = await post();
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("RateLimit-Remaining"), "2");
      assert.equal(ok.headers.get("RateLimit-Limit"), "5");
      const denied = await post();
      assert.equal(denied.status, 429);
      assert.deepEqual(await denied.json(), { error: "slow down", remaining: 2 });
      assert.equal(denied.headers.get("RateLimit-Remaining"), "2");
      assert.ok(denied.headers.get("Retry-After"));
      assert.throws(
        () => rateLimit(limiter, { identifer: () => "x" } as never),
        (e: unknown) => e instanceof CounterError && e.code === "Validation" && /identifier/.test(e.message),
      );
      const invalid: [object, RegExp][] = [
        [{ trustProxies: -1 }, /"trustProxies": must be an integer of at least 0/],
        [{ trustProxies: 1.5 }, /"trustProxies"/],
        [{ trustProxies: "1" }, /"trustProxies": must be an integer of at least 0/],
        [{ trustProxy: 1 }, /"trustProxy": is not an option; did you mean "trustProxies"\?/],
        [{ ipv6Subnet: 0 }, /"ipv6Subnet": must be an integer from 1 to 128, or false/],
        [{ ipv6Subnet: true }, /"ipv6Subnet"/],
        [{ connInfo: "getConnInfo" }, /"connInfo": must be a function/],
      ];
      for (const [options, message] of invalid) {
        assert.throws(
          () => rateLimit(limiter, options as never),
          (e: unknown) => e instanceof CounterError && e.code === "Validation" && message.test(e.message),
          JSON.stringify(options),
        );
      }
      const c = { req: { header: () => undefined, raw: new Request("http://x/") }, env: undefined } as never;
      assert.throws(
        () => clientAddress(c, { trustProxies: -2 }),
        (e: unknown) => e instanceof CounterError && e.code === "Validation" && /clientAddress option "trustProxies"/.test(e.message),
      );
    });

    /** A fixed-window limiter of `limit` that records each identifier it is asked about (through its `key` option). */
    async function recording(limit: number, key = (id: string) => `hono:${id}`) {
      const { client } = await throughProxy(server.endpoint);
      const seen: string[] = [];
      const limiter = new RateLimiter(client, {
        limit,
        windowMs: WINDOW,
        algorithm: "fixed-window",
        key: (id) => (seen.push(id), key(id)),
      });
      return { limiter, seen };
    }

    it("the default identifier: the connection's address; X-Forwarded-For only as trustProxies says; cf-connecting-ip never off Cloudflare", async () => {
      const { limiter, seen } = await recording(1000);
      type Case = [options: object, headers: Record<string, string>, env: object | undefined, expected: string | RegExp];
      const cases: Case[] = [
        // No proxy trusted: headers are the client's to write, so none is read.
        [{}, {}, nodeEnv("203.0.113.1"), "203.0.113.1"],
        [{}, { "x-forwarded-for": "198.51.100.1", "cf-connecting-ip": "198.51.100.2" }, nodeEnv("203.0.113.1"), "203.0.113.1"],
        [{}, { "x-forwarded-for": "198.51.100.1" }, undefined, "unknown"],
        [{}, { "cf-connecting-ip": "198.51.100.2" }, undefined, "unknown"],
        // One proxy that appends: the last entry is what it saw; entries left of it are the client's own.
        [{ trustProxies: 1 }, { "x-forwarded-for": "6.6.6.6, 198.51.100.7" }, nodeEnv("10.0.0.1"), "198.51.100.7"],
        [{ trustProxies: 1 }, { "x-forwarded-for": "198.51.100.7" }, undefined, "198.51.100.7"],
        // Two: the second from the end; fewer entries than proxies: the first (the farthest any proxy saw).
        [{ trustProxies: 2 }, { "x-forwarded-for": "6.6.6.6, 198.51.100.8, 10.0.0.2" }, nodeEnv("10.0.0.1"), "198.51.100.8"],
        [{ trustProxies: 2 }, { "x-forwarded-for": "198.51.100.9" }, nodeEnv("10.0.0.1"), "198.51.100.9"],
        // No X-Forwarded-For at all (the proxy was bypassed or does not append): the connection's address.
        [{ trustProxies: 1 }, {}, nodeEnv("203.0.113.3"), "203.0.113.3"],
        [{ trustProxies: 1 }, { "x-forwarded-for": " , ," }, nodeEnv("203.0.113.3"), "203.0.113.3"],
        [{ trustProxies: 1 }, { "x-forwarded-for": "" }, undefined, "unknown"],
        // Empty entries are no hops; spaces and tabs around entries are cut.
        [{ trustProxies: 1 }, { "x-forwarded-for": " ,\t, 198.51.100.7 ,\t" }, undefined, "198.51.100.7"],
        [{ trustProxies: 2 }, { "x-forwarded-for": "198.51.100.1, , 10.0.0.9" }, nodeEnv("10.0.0.1"), "198.51.100.1"],
        [{ trustProxies: 1 }, { "x-forwarded-for": `${",".repeat(3000)}9.9.9.9` }, undefined, "9.9.9.9"],
        // One spelling per client: ports cut, IPv4-mapped IPv6 unwrapped, IPv6 by /64 (or ipv6Subnet).
        [{ trustProxies: 1 }, { "x-forwarded-for": "198.51.100.7:51234" }, undefined, "198.51.100.7"],
        [{ trustProxies: 1 }, { "x-forwarded-for": "[2001:db8:1:2:3:4:5:6]:443" }, undefined, "2001:db8:1:2::/64"],
        [{}, {}, nodeEnv("::ffff:203.0.113.4"), "203.0.113.4"],
        [{}, {}, nodeEnv("2001:DB8:0:0:abcd::1"), "2001:db8::/64"],
        [{ ipv6Subnet: 48 }, {}, nodeEnv("2001:db8:7:8::1"), "2001:db8:7::/48"],
        [{ ipv6Subnet: 60 }, {}, nodeEnv("2001:db8:7:8fff::1"), "2001:db8:7:8ff0::/60"],
        [{}, {}, nodeEnv("fe80::1%eth0"), "fe80::/64"],
        // Never grouped: IPv4-mapped space in hex (every IPv4 client), NAT64 (an IPv4 client inside), non-addresses.
        [{}, {}, nodeEnv("::ffff:cb00:7104"), "::ffff:cb00:7104"],
        [{}, {}, nodeEnv("64:ff9b::203.0.113.5"), "64:ff9b::203.0.113.5"],
        [{}, {}, nodeEnv("1::2::3"), "1::2::3"],
        [{ ipv6Subnet: false }, {}, nodeEnv("2001:DB8:0:0:abcd::1"), "2001:db8:0:0:abcd::1"],
        [{ ipv6Subnet: 128 }, {}, nodeEnv("2001:db8::1"), "2001:db8::1"],
        // Odd entries from a misconfigured proxy never make a 500: used as they are, or hashed when long.
        [{ trustProxies: 1 }, { "x-forwarded-for": "\x01\x7f\x1b[31m" }, undefined, "\x01\x7f\x1b[31m"],
        [{ trustProxies: 1 }, { "x-forwarded-for": "é\xff\xa0ü" }, undefined, "é\xff\xa0ü"],
        [{ trustProxies: 1 }, { "x-forwarded-for": "1".repeat(3000) }, undefined, /^sha256:[0-9a-f]{64}$/],
        [{ trustProxies: 1 }, { "x-forwarded-for": "é".repeat(300) }, undefined, /^sha256:[0-9a-f]{64}$/],
        [{}, {}, nodeEnv("1".repeat(3000)), /^sha256:[0-9a-f]{64}$/],
        // Other servers' objects, read the way Hono's getConnInfo helpers read them.
        [{}, {}, { server: nodeEnv("203.0.113.20") }, "203.0.113.20"],
        [{}, {}, { requestIP: () => ({ address: "203.0.113.21", family: "IPv4", port: 1 }) }, "203.0.113.21"],
        [{}, {}, { requestIP: () => null }, "unknown"],
        [
          {},
          {},
          {
            requestIP: () => {
              throw new TypeError("not this server's request");
            },
          },
          "unknown",
        ],
        [{}, {}, { remoteAddr: { transport: "tcp", hostname: "203.0.113.22", port: 1 } }, "203.0.113.22"],
        [{}, {}, { requestContext: { identity: { sourceIp: "203.0.113.23" } } }, "203.0.113.23"],
        [{}, {}, { requestContext: { http: { sourceIp: "203.0.113.24" } } }, "203.0.113.24"],
        [{}, {}, { event: { Records: [{ cf: { request: { clientIp: "203.0.113.25" } } }] } }, "203.0.113.25"],
        [{}, {}, { context: { ip: "203.0.113.26" } }, "203.0.113.26"],
        [{}, {}, { incoming: { socket: { remoteAddress: undefined } } }, "unknown"],
        [
          {},
          {},
          new Proxy(
            {},
            {
              get: () => {
                throw new Error("hostile env");
              },
            },
          ),
          "unknown",
        ],
        // connInfo: Hono's ConnInfo or an address; it replaces the built-in detection, and a throw counts as none.
        [{ connInfo: () => ({ remote: { address: "203.0.113.30", addressType: "IPv4" } }) }, {}, nodeEnv("10.0.0.1"), "203.0.113.30"],
        [{ connInfo: () => "203.0.113.31" }, { "cf-connecting-ip": "198.51.100.2" }, undefined, "203.0.113.31"],
        [{ connInfo: () => ({ remote: {} }) }, {}, nodeEnv("10.0.0.1"), "unknown"],
        [
          {
            connInfo: () => {
              throw new TypeError("env has to include the 2nd argument of fetch.");
            },
          },
          {},
          undefined,
          "unknown",
        ],
        [{ connInfo: () => "10.0.0.1", trustProxies: 1 }, { "x-forwarded-for": "6.6.6.6, 198.51.100.40" }, undefined, "198.51.100.40"],
      ];
      const warn = mock.method(console, "warn", () => {});
      try {
        for (const [options, headers, env, expected] of cases) {
          const app = new Hono();
          app.use("*", rateLimit(limiter, options));
          app.get("/", (c) => c.text("ok"));
          const what = `${JSON.stringify(options)} ${JSON.stringify(headers).slice(0, 60)} ${shown(env)}`;
          seen.length = 0;
          const res = await app.request("/", { headers }, env);
          assert.equal(res.status, 200, `${what}: ${await res.text()}`);
          assert.equal(seen.length, 1, what);
          if (typeof expected === "string") assert.equal(seen[0], expected, what);
          else assert.match(seen[0]!, expected, what);
          if (!(options as { connInfo?: unknown }).connInfo) {
            // clientAddress is the same answer for identifiers of one's own (undefined where the middleware says "unknown").
            const direct = await new Promise<string | undefined>((resolve) => {
              const probe = new Hono();
              probe.get("/", (c) => (resolve(clientAddress(c, options)), c.text("")));
              void probe.request("/", { headers }, env);
            });
            if (expected === "unknown") assert.equal(direct, undefined, what);
            else if (typeof expected === "string") assert.equal(direct, expected, what);
          }
        }
      } finally {
        warn.mock.restore();
      }
    });

    it("no address found, or a private peer with X-Forwarded-For and no trustProxies: one warning per limiter that names the option", async () => {
      const warn = mock.method(console, "warn", () => {});
      try {
        const { limiter } = await recording(1000);
        const app = new Hono();
        // Built per request, as the README's lazily created limiter does: still one warning for the limiter.
        app.use("*", (c, next) => rateLimit(limiter)(c, next));
        app.get("/", (c) => c.text("ok"));
        for (let i = 0; i < 3; i++) assert.equal((await app.request("/")).status, 200);
        assert.equal(warn.mock.callCount(), 1);
        assert.match(String(warn.mock.calls[0]!.arguments[0]), /"unknown" budget.*"trustProxies", "connInfo" or "identifier"/s);
        for (let i = 0; i < 3; i++)
          assert.equal((await app.request("/", { headers: { "x-forwarded-for": "198.51.100.1" } }, nodeEnv("10.1.2.3"))).status, 200);
        assert.equal(warn.mock.callCount(), 2);
        assert.match(String(warn.mock.calls[1]!.arguments[0]), /private address carry X-Forwarded-For.*set "trustProxies"/s);
        assert.doesNotMatch(String(warn.mock.calls[1]!.arguments[0]), /198\.51\.100\.1/, "nothing the client wrote is logged");
        // Neither warning with an address from a public peer, or with trustProxies set, or with an identifier of one's own.
        const quiet = (await recording(1000)).limiter;
        const calls = warn.mock.callCount();
        for (const [options, headers, env] of [
          [{}, { "x-forwarded-for": "198.51.100.1" }, nodeEnv("203.0.113.1")],
          [{ trustProxies: 1 }, { "x-forwarded-for": "198.51.100.1" }, nodeEnv("10.1.2.3")],
          [{ identifier: () => "" }, {}, undefined],
        ] as const) {
          const other = new Hono();
          other.use("*", rateLimit(quiet, options));
          other.get("/", (c) => c.text("ok"));
          assert.equal((await other.request("/", { headers }, env)).status, 200);
        }
        assert.equal(warn.mock.callCount(), calls);
      } finally {
        warn.mock.restore();
      }
    });

    it("two different long addresses are limited separately, each the same every time", async () => {
      const app = new Hono();
      app.use("*", rateLimit((await recording(1)).limiter, { trustProxies: 1 }));
      app.get("/", (c) => c.text("ok"));
      const call = async (xff: string) => (await app.request("/", { headers: { "x-forwarded-for": xff } })).status;
      const [longA, longB] = ["1".repeat(3000), `${"1".repeat(2999)}2`];
      assert.deepEqual([await call(longA), await call(longB), await call(longA), await call(longB)], [200, 200, 429, 429]);
      // The same with a user identifier over the whole header (entries that differ only past the first).
      const whole = new Hono();
      whole.use("*", rateLimit((await recording(1)).limiter, { identifier: (c) => c.req.header("x-forwarded-for") ?? "" }));
      whole.get("/", (c) => c.text("ok"));
      const callWhole = async (xff: string) => (await whole.request("/", { headers: { "x-forwarded-for": xff } })).status;
      const [a, b] = ["a", "b"].map((last) => `${"203.0.113.1, ".repeat(300)}${last}`);
      assert.deepEqual([await callWhole(a!), await callWhole(b!), await callWhole(a!), await callWhole(b!)], [200, 200, 429, 429]);
    });

    it("an identifier function's odd results never make a 500 either", async () => {
      const returns: unknown[] = ["", undefined, null, "x".repeat(3000), "lone \ud800 surrogate", 42, " "];
      const expected = ["unknown", "unknown", "unknown", /^sha256:[0-9a-f]{64}$/, /^sha256:[0-9a-f]{64}$/, "42", " "];
      const { limiter, seen } = await recording(100);
      let next = 0;
      const app = new Hono();
      app.use("*", rateLimit(limiter, { identifier: () => returns[next] as string }));
      app.get("/", (c) => c.text("ok"));
      for (next = 0; next < returns.length; next++) {
        seen.length = 0;
        const res = await app.request("/");
        assert.equal(res.status, 200, `${String(returns[next]).slice(0, 40)}: ${await res.text()}`);
        const want = expected[next]!;
        if (typeof want === "string") assert.equal(seen[0], want);
        else assert.match(seen[0]!, want);
      }
      // A limiter whose key the identifier makes too long for DynamoDB (2048 bytes): its hash is used instead.
      const tooLong = await recording(100, (id) => `hono:${id.repeat(10)}`);
      const keyed = new Hono();
      keyed.use("*", rateLimit(tooLong.limiter));
      keyed.get("/", (c) => c.text("ok"));
      const res = await keyed.request("/", {}, nodeEnv("1".repeat(250)));
      assert.equal(res.status, 200, await res.text());
      assert.deepEqual([tooLong.seen[0], tooLong.seen.at(-1)?.slice(0, 7)], ["1".repeat(250), "sha256:"]);
    });

    it("several limits: a request one limit denies takes nothing from the others; one policy per limit in the headers", async () => {
      const { client } = await throughProxy(server.endpoint);
      const now = 70 * WINDOW + 1000;
      const perUser = new RateLimiter(client, { name: "user", limit: 3, windowMs: WINDOW, algorithm: "fixed-window", now: () => now });
      const global = new RateLimiter(client, { name: "global", limit: 2, windowMs: WINDOW, algorithm: "fixed-window", now: () => now });
      const app = new Hono<{ Variables: MultiRateLimitVariables }>();
      app.use(
        "*",
        rateLimit([
          { limiter: perUser, identifier: (c) => c.req.header("x-user") ?? "anonymous" },
          { limiter: global, identifier: () => "all", cost: (c) => (c.req.method === "POST" ? 2 : 1) },
        ]),
      );
      app.all("/", (c) => c.json(c.get("rateLimit").results.map((r) => [r.name, r.remaining])));
      const ok = await app.request("/", { headers: { "x-user": "ann" } });
      assert.equal(ok.status, 200);
      assert.deepEqual(await ok.json(), [
        ["user", 2],
        ["global", 1],
      ]);
      assert.equal(ok.headers.get("RateLimit-Policy"), `"user";q=3;w=60, "global";q=2;w=60`);
      const denied = await app.request("/", { method: "POST", headers: { "x-user": "ann" } });
      assert.equal(denied.status, 429, "global has 1 unit left, the POST costs 2");
      assert.match(denied.headers.get("RateLimit")!, /"user";r=2;t=\d+, "global";r=1;t=\d+/);
      assert.equal((await app.request("/", { headers: { "x-user": "bob" } })).status, 200, "the denied POST took nothing from global");
      assert.equal((await app.request("/", { headers: { "x-user": "bob" } })).status, 429);
      const ann = await perUser.remaining("ann");
      assert.equal(ann.remaining, 2, "the denied POST took nothing from ann's own limit");
    });

    it("several limits: bad checks are Validation errors naming the check; the single form's options are not taken", async () => {
      const { client } = await throughProxy(server.endpoint);
      const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW });
      const invalid: [unknown, object, RegExp][] = [
        [[], {}, /at least one/],
        [[{ limiter: {} }], {}, /check 0: "limiter" must be a RateLimiter/],
        [[{ limiter, identifer: () => "x" }], {}, /check 0 option "identifer": is not an option; did you mean "identifier"\?|identifer/],
        [[{ limiter }], { identifier: () => "x" }, /"identifier": is not an option/],
        [[{ limiter }], { policy: "p" }, /"policy"/],
        [[{ limiter }], { concurrency: {} }, /"concurrency".*ConcurrencyLimiter/],
        [[{ limiter }], { concurrency: { limiter: new ConcurrencyLimiter(client, { limit: 1 }), identity: () => "x" } }, /"identity"/],
      ];
      for (const [checks, options, message] of invalid) {
        assert.throws(
          () => rateLimit(checks as never, options as never),
          (e: unknown) => e instanceof CounterError && e.code === "Validation" && message.test(e.message),
          message.source,
        );
      }
    });

    it("concurrency: a slot is held while the handler runs and renewed while it takes long; a request turned away spends no rate quota", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint);
      const T = 80 * WINDOW;
      let now = T;
      const limiter = new RateLimiter(client, { name: "calls", limit: 10, windowMs: WINDOW, algorithm: "fixed-window", now: () => now });
      const slots = new ConcurrencyLimiter(client, { limit: 1, leaseMs: 90, name: "exports", now: () => now });
      let finish!: () => void;
      let renewed!: () => void;
      const renewal = new Promise<void>((resolve) => (renewed = resolve));
      proxy.setFault((info) => {
        // The acquire (its lease ends at T + 90) is on its way: the clock moves 60 ms, so the renewal writes T + 150.
        if (info.body.includes("SET #h = :me") && now === T) now += 60;
        if (info.body.includes("#h = :me AND #e <= :exp")) renewed();
        return "pass";
      });
      const slot = async () => {
        const out = await direct.send<{ Item?: Record<string, { N?: string }> }>(
          "GetItem",
          { TableName: direct.table.tableName, Key: { id: { S: "concurrency:exports:ann" } }, ConsistentRead: true },
          { idempotent: true },
        );
        return out.Item?.e0?.N;
      };
      const app = new Hono();
      app.use("*", rateLimit(limiter, { identifier: () => "ann", concurrency: slots }));
      app.get("/slow", async (c) => {
        await new Promise<void>((resolve) => (finish = resolve));
        return c.text("done");
      });
      app.get("/fail", () => {
        throw new Error("handler failed");
      });
      app.onError((_error, c) => c.text("failed", 500));
      app.get("/", (c) => c.text("ok"));
      const slow = app.request("/slow");
      // Every leaseMs / 3 while the handler runs (bounded, so a missing renewal fails rather than hangs).
      await Promise.race([
        renewal,
        new Promise((_, reject) => setTimeout(() => reject(new Error("no renewal within 10 s")), 10_000).unref()),
      ]);
      await waitFor(async () => (await slot()) === String(T + 150), "the renewal landed");
      now = T + 100;
      const busy = await app.request("/");
      assert.equal(busy.status, 429, "past the first lease's end, held by its renewal");
      assert.ok(Number(busy.headers.get("Retry-After")) >= 1);
      assert.equal(busy.headers.get("RateLimit"), null, "turned away before the rate limit: no policy fields");
      finish();
      assert.equal((await slow).status, 200);
      // The release is handed to the background (executionCtx.waitUntil on Workers), not awaited by the answer.
      await waitFor(async () => (await slot()) === undefined, "released once the handler answered");
      assert.equal((await app.request("/fail")).status, 500);
      await waitFor(async () => (await slot()) === undefined, "a handler that throws releases its slot too");
      assert.equal((await app.request("/")).status, 200);
      const { remaining } = await limiter.remaining("ann");
      assert.equal(remaining, 10 - 3, "three requests reached the rate limit: the one turned away took nothing");
    });

    it("hostile identifiers in the several-limits and concurrency forms: only the identifier a limiter rejects is hashed, a client's own 'sha256:' is hashed too, never a 500", async () => {
      const { client } = await throughProxy(server.endpoint);
      const now = 90 * WINDOW + 1000;
      const perIp = new RateLimiter(client, { name: "ip", limit: 3, windowMs: WINDOW, algorithm: "fixed-window", now: () => now });
      // A key that makes a long (but under 256 characters) identifier too long for DynamoDB: that identifier is hashed.
      const perUser = new RateLimiter(client, {
        name: "user",
        limit: 100,
        windowMs: WINDOW,
        key: (id) => `quota:${id}:${id}:${id}`,
        now: () => now,
      });
      const slots = new ConcurrencyLimiter(client, { limit: 5, name: "h", key: (id) => `slots:${id}:${id}:${id}`, now: () => now });
      const app = new Hono();
      app.use(
        "*",
        rateLimit(
          [
            { limiter: perIp, identifier: (c) => c.req.header("x-ip") ?? "" },
            { limiter: perUser, identifier: (c) => c.req.query("user") ?? "" },
          ],
          { concurrency: { limiter: slots, identifier: (c) => c.req.query("user") ?? "" } },
        ),
      );
      app.get("/", (c) => c.text("ok"));
      const long = "€".repeat(250);
      const statuses = [];
      for (let i = 0; i < 6; i++)
        statuses.push(
          (await app.request(`/?user=${encodeURIComponent(i % 2 ? long : "alice")}`, { headers: { "x-ip": "198.51.100.7" } })).status,
        );
      assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429], "one per-IP budget, whatever the user identifier does");
      const forged = `sha256:${"€".repeat(249)}`;
      const single = new Hono();
      single.use("*", rateLimit(perUser, { identifier: () => forged, concurrency: slots }));
      single.get("/", (c) => c.text("ok"));
      assert.equal((await single.request("/")).status, 200, "a client's own sha256: identifier is hashed like any other");
    });

    it("denials answered by onDenied with immutable headers (a redirect) get their fields on a copy, not a 500; a caller known to be over its limit takes no concurrency slot", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      const now = 95 * WINDOW + 1000;
      const limiter = new RateLimiter(client, { name: "r", limit: 1, windowMs: WINDOW, algorithm: "fixed-window", now: () => now });
      const slots = new ConcurrencyLimiter(client, { limit: 1, name: "r", now: () => now });
      const app = new Hono();
      app.use(
        "*",
        rateLimit(limiter, {
          identifier: () => "blocked",
          onDenied: () => Response.redirect("https://example.com/slow-down", 302),
          concurrency: { limiter: slots, identifier: () => "everyone", onDenied: () => Response.redirect("https://example.com/busy", 302) },
        }),
      );
      app.get("/", (c) => c.text("ok"));
      assert.equal((await app.request("/")).status, 200);
      const denied = await app.request("/");
      assert.deepEqual([denied.status, denied.headers.get("location")], [302, "https://example.com/slow-down"]);
      assert.match(denied.headers.get("RateLimit") ?? "", /"default";r=0/);
      assert.ok(Number(denied.headers.get("Retry-After")) >= 1);
      // Now blocked in this instance's memory: further requests send nothing and take no slot.
      await waitFor(async () => (await slots.acquire("probe")).success, "the first request's slot is released");
      const sent = [...proxy.seen.values()].reduce((a, b) => a + b, 0);
      for (let i = 0; i < 5; i++) assert.equal((await app.request("/")).status, 302);
      assert.equal(
        [...proxy.seen.values()].reduce((a, b) => a + b, 0),
        sent,
        "answered from memory: no acquire, no release, no take",
      );
      const busy = await slots.acquire("everyone");
      assert.equal(busy.success, true, "the shared slot stayed free for others");
      assert.throws(
        () => rateLimit([{ limiter }, { limiter: new RateLimiter(client, { name: "r", limit: 5, windowMs: WINDOW }) }]),
        (e: unknown) => e instanceof CounterError && e.code === "Validation" && /two limiters named "r"/.test(e.message),
      );
    });
  });
}

/** Reads until `condition` holds (each try one request to DynamoDB): for work the middleware leaves in the background. */
async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) if (await condition()) return;
  assert.fail(what);
}

describe("dynacount/hono inside workerd (miniflare)", () => {
  it("on Cloudflare the client is cf-connecting-ip: 200 with headers, then 429, whatever X-Forwarded-For says", async () => {
    const [server] = await servers();
    const { direct } = await throughProxy(server!.endpoint);
    const mf = startMiniflare(await bundleWorker("test/workers/hono-worker.ts"), {
      compatibilityFlags: [],
      bindings: { ENDPOINT: server!.endpoint, TABLE_NAME: direct.table.tableName },
    });
    try {
      const statuses = [];
      let last: Response | undefined;
      for (let i = 0; i < 6; i++) {
        // A client rotating the X-Forwarded-For it sends (the Worker trusts "one proxy"): Cloudflare's header decides.
        const headers = { "cf-connecting-ip": "192.0.2.1", "x-forwarded-for": `198.51.100.${i}, 203.0.113.${i}` };
        last = (await mf.dispatchFetch("http://worker/api/hello", { headers })) as unknown as Response;
        statuses.push(last.status);
        if (i === 0) assert.deepEqual(await last.json(), { hello: "world", remaining: 2 });
        else await last.text();
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429]);
      assert.equal(last!.headers.get("RateLimit-Policy"), `"default";q=3;w=60`);
      assert.ok(["19", "20"].includes(last!.headers.get("Retry-After")!), "the next token of 3 per minute");
      const other = await mf.dispatchFetch("http://worker/api/hello", {
        headers: { "cf-connecting-ip": "192.0.2.2", "x-forwarded-for": "192.0.2.1" },
      });
      assert.equal(other.status, 200, "another cf-connecting-ip has its own budget");
      await other.text();
      const free = await mf.dispatchFetch("http://worker/");
      assert.deepEqual([free.status, free.headers.get("RateLimit")], [200, null], "routes outside the middleware are not limited");
      await free.text();
      const ip = await mf.dispatchFetch("http://worker/ip", {
        headers: { "cf-connecting-ip": "2001:db8:0:1:aaaa::7", "x-forwarded-for": "6.6.6.6, 7.7.7.7" },
      });
      assert.deepEqual(await ip.json(), { address: "2001:db8:0:1::/64", trusting: "2001:db8:0:1::/64", cf: "object" });
    } finally {
      await mf.dispose();
    }
  });
});

// Found by review: a cost a call cannot take was retried under the identifier's hash (another plan's budget: a free
// user's 5-unit calls were admitted against the paid limit), or answered 500; headers used the host's clock, not
// the limiter's.
for (const server of await servers()) {
  describe(`dynacount/hono with costs a call cannot take, on ${server.name}`, () => {
    it("a cost over the caller's own limit is 429 (failClosed, nothing taken), never another identifier's budget", async () => {
      const { client } = await throughProxy(server.endpoint);
      const free = new Set(["alice"]);
      const asked = new Set<string>();
      const limiter = new RateLimiter(client, {
        name: "plan",
        windowMs: WINDOW,
        limit: (id) => (asked.add(id), free.has(id) ? 3 : 50),
      });
      const app = new Hono<{ Variables: RateLimitVariables }>();
      app.use("*", rateLimit(limiter, { identifier: (c) => c.req.header("x-user") ?? "anon", cost: 5 }));
      app.get("*", (c) => c.json({ reason: c.get("rateLimit").reason }));
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await app.request("/", { headers: { "x-user": "alice" } })).status);
      assert.deepEqual(statuses, [429, 429, 429, 429]);
      assert.deepEqual([...asked], ["alice"], "no hash of alice was ever asked for a plan");
      const paid = await app.request("/", { headers: { "x-user": "bob" } });
      assert.equal(paid.status, 200);
      assert.equal((await limiter.remaining("alice")).remaining, 3, "nothing was taken from alice");
    });

    it("a request-derived cost that is not a whole number of units, or more than the limit, is 429, never 500", async () => {
      const { client } = await throughProxy(server.endpoint);
      const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, name: "units" });
      const other = new RateLimiter(client, { limit: 10, windowMs: WINDOW, name: "other" });
      const cost = (c: { req: { header(name: string): string | undefined } }) => Number(c.req.header("x-cost"));
      const single = new Hono();
      single.use("*", rateLimit(limiter, { identifier: () => "k", cost }));
      single.get("*", (c) => c.text("ok"));
      const multi = new Hono();
      multi.use(
        "*",
        rateLimit([
          { limiter: other, identifier: () => "k" },
          { limiter, identifier: () => "m", cost },
        ]),
      );
      multi.get("*", (c) => c.text("ok"));
      for (const bad of ["abc", "1.5", "-1", "11"]) {
        for (const app of [single, multi]) {
          const res = await app.request("/", { headers: { "x-cost": bad } });
          assert.equal(res.status, 429, `cost ${bad}`);
          assert.ok(Number(res.headers.get("Retry-After")) >= 1);
        }
      }
      assert.equal((await single.request("/", { headers: { "x-cost": "2" } })).status, 200);
      assert.equal((await other.remaining("k")).remaining, 10, "a refused check charged no other limit");
    });

    it("one limiter twice in the array form: costs summed past its limit are 429, never 500", async () => {
      const { client } = await throughProxy(server.endpoint);
      const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, name: "twice" });
      const cost = (c: { req: { header(name: string): string | undefined } }) => Number(c.req.header("x-cost"));
      const app = new Hono();
      app.use(
        "*",
        rateLimit([
          { limiter, identifier: () => "same", cost },
          { limiter, identifier: () => "same", cost },
        ]),
      );
      app.get("*", (c) => c.text("ok"));
      assert.equal((await app.request("/", { headers: { "x-cost": "6" } })).status, 429, "6 + 6 > 10");
      assert.equal((await limiter.remaining("same")).remaining, 10, "nothing taken");
      assert.equal((await app.request("/", { headers: { "x-cost": "5" } })).status, 200);
    });

    it("Retry-After and the RateLimit reset are reckoned on the limiter's clock", async () => {
      const { client } = await throughProxy(server.endpoint);
      const behind = Date.now() - 3_600_000;
      const now = Math.floor(behind / WINDOW) * WINDOW + 47_000; // 13 s before its window ends
      const limiter = new RateLimiter(client, { limit: 1, windowMs: WINDOW, algorithm: "fixed-window", now: () => now });
      const app = new Hono();
      app.use("*", rateLimit(limiter, { identifier: () => "k" }));
      app.get("*", (c) => c.text("ok"));
      assert.equal((await app.request("/")).status, 200);
      const denied = await app.request("/");
      assert.equal(denied.status, 429);
      assert.equal(denied.headers.get("Retry-After"), "13");
      assert.match(denied.headers.get("RateLimit")!, /;t=13$/);
    });
  });
}
