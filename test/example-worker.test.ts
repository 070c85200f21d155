import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { startFaultProxy } from "./support/fault-proxy.ts";
import { freshTable, servers } from "./support/harness.ts";
import { awsBindings, bundleWorker, root, startMiniflare } from "./support/workers.ts";

// The Worker that wrangler.toml points at, bundled and run in workerd as `wrangler dev` would.
const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
const main = /^main\s*=\s*"([^"]+)"/m.exec(toml)![1]!;
const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)![1]!;
const script = await bundleWorker(main);

for (const server of await servers()) {
  describe(`example Worker (${main}) on ${server.name}`, { timeout: 120_000 }, () => {
    it("1,000 page views, then GET /count is exact, before and after a flush, for a handful of requests", async () => {
      const client = await freshTable(server.endpoint);
      const proxy = await startFaultProxy(server.endpoint);
      after(() => proxy.close());
      const mf = startMiniflare(script, {
        compatibilityDate,
        durableObjects: { PAGE_COUNTER: "PageCounter" },
        bindings: { ...awsBindings(proxy.endpoint), TABLE_NAME: client.table.tableName, FLUSH_INTERVAL_MS: "3600000" },
      });
      try {
        const pages = ["/", "/pricing", "/docs/intro", "/blog/2026/hello"];
        for (let batch = 0; batch < 20; batch++) {
          await Promise.all(
            Array.from({ length: 50 }, async (_, i) => {
              const res = await mf.dispatchFetch(`http://example.com${pages[(batch * 50 + i) % pages.length]}`);
              assert.equal(res.status, 200);
              await res.text();
            }),
          );
        }
        assert.equal(proxy.seen.get("UpdateItem") ?? 0, 0, "no DynamoDB write per view");
        const count = async (page: string) => {
          const res = await mf.dispatchFetch(`http://example.com/count?page=${encodeURIComponent(page)}`);
          return ((await res.json()) as { views: number }).views;
        };
        assert.deepEqual(await Promise.all(pages.map(count)), [250, 250, 250, 250], "pending views count");
        for (const page of pages) {
          const res = await mf.dispatchFetch(`http://example.com/flush?page=${encodeURIComponent(page)}`, { method: "POST" });
          assert.deepEqual(await res.json(), { keys: 1, requests: 1 });
        }
        assert.equal(proxy.seen.get("UpdateItem"), 4, "1,000 views, 4 writes");
        assert.deepEqual(await Promise.all(pages.map(count)), [250, 250, 250, 250], "flushed views count");
        assert.deepEqual(await Promise.all(pages.map((p) => client.get(`page:${p}`))), [250, 250, 250, 250]);
      } finally {
        await mf.dispose();
      }
    });

    it("rate-limits /api per client IP: RATE_LIMIT answers with RateLimit headers, then 429 with Retry-After", async () => {
      const client = await freshTable(server.endpoint);
      const mf = startMiniflare(script, {
        compatibilityDate,
        durableObjects: { PAGE_COUNTER: "PageCounter" },
        bindings: { ...awsBindings(server.endpoint), TABLE_NAME: client.table.tableName, RATE_LIMIT: "5" },
      });
      try {
        const hit = async (ip: string) => {
          const res = await mf.dispatchFetch("http://example.com/api/orders", { headers: { "cf-connecting-ip": ip } });
          await res.text();
          return { status: res.status, rateLimit: res.headers.get("RateLimit"), policy: res.headers.get("RateLimit-Policy"), retryAfter: res.headers.get("retry-after") };
        };
        // A token bucket of 5 refilled over a minute: the 6th call within 12 s (one token's time) is denied,
        // whenever the test runs (no window boundary to cross).
        const answers = [];
        for (let i = 0; i < 7; i++) answers.push(await hit("203.0.113.7"));
        assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200, 429, 429]);
        assert.deepEqual(answers.map((a) => /r=(\d+)/.exec(a.rateLimit ?? "")?.[1]), ["4", "3", "2", "1", "0", "0", "0"]);
        assert.equal(answers[0]!.policy, `"default";q=5;w=60`);
        assert.ok(Number(answers[5]!.retryAfter) >= 1 && Number(answers[5]!.retryAfter) <= 12, `retry-after ${answers[5]!.retryAfter}`);
        assert.equal(answers[0]!.retryAfter, null);
        assert.equal((await hit("198.51.100.1")).status, 200, "another IP has its own budget");
      } finally {
        await mf.dispose();
      }
    });
  });
}
