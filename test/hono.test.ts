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
