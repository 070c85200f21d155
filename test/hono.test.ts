// dynacount/hono with a real Hono app: on Node (app.request) against both servers, and inside workerd.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Hono } from "hono";
import { CounterError, RateLimiter } from "../src/index.ts";
import { rateLimit, type RateLimitVariables } from "../src/hono.ts";
import { servers, throughProxy } from "./support/harness.ts";
import { bundleWorker, startMiniflare } from "./support/workers.ts";

const WINDOW = 60_000;

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
      const call = () => app.request("/api/orders", { headers: { "cf-connecting-ip": "203.0.113.9" } });
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
      const other = await app.request("/api/orders", { headers: { "x-forwarded-for": "198.51.100.4, 10.0.0.1" } });
      assert.equal(other.status, 200, "another client (x-forwarded-for) has its own budget");
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
      assert.throws(() => rateLimit(limiter, { identifer: () => "x" } as never), (e: unknown) => e instanceof CounterError && e.code === "Validation" && /identifier/.test(e.message));
    });

    /** A fixed-window limiter of `limit` that records each identifier it is asked about (through its `key` option). */
    async function recording(limit: number, key = (id: string) => `hono:${id}`) {
      const { client } = await throughProxy(server.endpoint);
      const seen: string[] = [];
      const limiter = new RateLimiter(client, { limit, windowMs: WINDOW, algorithm: "fixed-window", key: (id) => (seen.push(id), key(id)) });
      return { limiter, seen };
    }

    it("headers the client chose never make a 500: empty ones fall through, long ones are hashed", async () => {
      const { limiter, seen } = await recording(100);
      const app = new Hono();
      app.use("*", rateLimit(limiter));
      app.get("/", (c) => c.text("ok"));
      const long = "1".repeat(3000);
      const cases: [Record<string, string>, string | RegExp][] = [
        [{ "x-forwarded-for": "" }, "unknown"],
        [{ "cf-connecting-ip": "" }, "unknown"],
        [{ "cf-connecting-ip": "  " }, "unknown"],
        [{ "x-forwarded-for": ", 1.2.3.4" }, "1.2.3.4"],
        [{ "x-forwarded-for": " , ,", "cf-connecting-ip": "" }, "unknown"],
        [{ "x-forwarded-for": " ,\t, 198.51.100.7 ,10.0.0.1" }, "198.51.100.7"],
        [{ "cf-connecting-ip": "", "x-forwarded-for": "203.0.113.5" }, "203.0.113.5"],
        [{ "cf-connecting-ip": "192.0.2.44", "x-forwarded-for": "203.0.113.5" }, "192.0.2.44"],
        [{ "x-forwarded-for": long }, /^sha256:[0-9a-f]{64}$/],
        [{ "cf-connecting-ip": long }, /^sha256:[0-9a-f]{64}$/],
        [{ "x-forwarded-for": `${",".repeat(3000)}9.9.9.9` }, "9.9.9.9"],
        [{ "x-forwarded-for": "\x01\x7f\x1b[31m" }, "\x01\x7f\x1b[31m"],
        [{ "cf-connecting-ip": "é\xff\xa0ü" }, "é\xff\xa0ü"],
        [{ "cf-connecting-ip": "é".repeat(300) }, /^sha256:[0-9a-f]{64}$/],
        [{}, "unknown"],
      ];
      for (const [headers, expected] of cases) {
        seen.length = 0;
        const res = await app.request("/", { headers });
        assert.equal(res.status, 200, `${JSON.stringify(headers).slice(0, 80)}: ${await res.text()}`);
        assert.equal(seen.length, 1);
        if (typeof expected === "string") assert.equal(seen[0], expected, JSON.stringify(headers).slice(0, 80));
        else assert.match(seen[0]!, expected, JSON.stringify(headers).slice(0, 80));
      }
    });

    it("two different long headers are limited separately, each the same every time", async () => {
      const app = new Hono();
      app.use("*", rateLimit((await recording(1)).limiter));
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
      const res = await keyed.request("/", { headers: { "cf-connecting-ip": "1".repeat(250) } });
      assert.equal(res.status, 200, await res.text());
      assert.deepEqual([tooLong.seen[0], tooLong.seen.at(-1)?.slice(0, 7)], ["1".repeat(250), "sha256:"]);
    });
  });
}

describe("dynacount/hono inside workerd (miniflare)", () => {
  it("a Hono Worker answers 200 with headers, then 429", async () => {
    const [server] = await servers();
    const { direct } = await throughProxy(server!.endpoint);
    const mf = startMiniflare(await bundleWorker("test/workers/hono-worker.ts"), {
      compatibilityFlags: [],
      bindings: { ENDPOINT: server!.endpoint, TABLE_NAME: direct.table.tableName },
    });
    try {
      const statuses = [];
      let last: Response | undefined;
      for (let i = 0; i < 4; i++) {
        last = (await mf.dispatchFetch("http://worker/api/hello", { headers: { "cf-connecting-ip": "192.0.2.1" } })) as unknown as Response;
        statuses.push(last.status);
        if (i === 0) assert.deepEqual(await last.json(), { hello: "world", remaining: 2 });
        else await last.text();
      }
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      assert.equal(last!.headers.get("RateLimit-Policy"), `"default";q=3;w=60`);
      assert.ok(["19", "20"].includes(last!.headers.get("Retry-After")!), "the next token of 3 per minute");
      const free = await mf.dispatchFetch("http://worker/");
      assert.deepEqual([free.status, free.headers.get("RateLimit")], [200, null], "routes outside the middleware are not limited");
      await free.text();
    } finally {
      await mf.dispose();
    }
  });
});
