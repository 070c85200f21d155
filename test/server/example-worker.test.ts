// The example Worker (wrangler.toml's main) in workerd: the page-view counter's routes and the rate-limited API.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { startFaultProxy } from "../support/fault-proxy.ts";
import { clientFor, freshTable, servers, uniqueTable } from "../support/harness.ts";
import { awsBindings, bundleWorker, root, startMiniflare } from "../support/workers.ts";

// The Worker that wrangler.toml points at, bundled and run in workerd as `wrangler dev` would.
const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
const main = /^main\s*=\s*"([^"]+)"/m.exec(toml)![1]!;
const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)![1]!;
const script = await bundleWorker(main);

for (const server of await servers()) {
  describe(`example Worker (${main}) on ${server.name}`, { timeout: 120_000 }, () => {
    it("1,000 page loads of 4 pages, no DynamoDB write per view; then /stats, the badge and the chart are exact", async () => {
      const client = clientFor(server.endpoint, { tableName: uniqueTable() });
      await client.createTable({ pageViews: true });
      const proxy = await startFaultProxy(server.endpoint);
      after(() => proxy.close());
      const mf = startMiniflare(script, {
        compatibilityDate,
        durableObjects: { PAGE_VIEWS: "PageViewsObject" },
        bindings: {
          ...awsBindings(proxy.endpoint),
          TABLE_NAME: client.table.tableName,
          FLUSH_INTERVAL_MS: "3600000",
          PAGEVIEWS_SECRET: "example-secret-0123456789",
        },
      });
      try {
        const pages = ["/", "/pricing", "/docs/intro", "/blog/2026/hello"];
        // A browser's navigation from one of 40 visitors (address and user agent).
        const visit = (path: string, i: number) =>
          mf.dispatchFetch(`http://example.com${path}`, {
            headers: {
              accept: "text/html",
              "sec-fetch-dest": "document",
              "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
              "cf-connecting-ip": `203.0.113.${i % 40}`,
            },
          });
        for (let batch = 0; batch < 20; batch++) {
          await Promise.all(
            Array.from({ length: 50 }, async (_, i) => {
              const res = await visit(pages[(batch * 50 + i) % pages.length]!, batch * 50 + i);
              assert.equal(res.status, 200);
              assert.match(await res.text(), /<img src="\/badge\.svg\?page=/);
            }),
          );
        }
        // Not page loads by people: curl, an asset fetch. Answered, not counted.
        for (const headers of [
          { "user-agent": "curl/8.5.0", accept: "*/*" },
          { "user-agent": "Mozilla/5.0", accept: "image/avif,*/*", "sec-fetch-dest": "image" },
        ]) {
          await (await mf.dispatchFetch("http://example.com/pricing", { headers })).text();
        }
        const stats = async (page: string) =>
          (await (await mf.dispatchFetch(`http://example.com/stats?page=${encodeURIComponent(page)}`)).json()) as {
            total: number;
            today: { views: number; uniques: number };
            last24h: Array<{ views: number }>;
            last30d: Array<{ views: number }>;
            top: Array<{ page: string; views: number }>;
          };
        // The views reach their objects after the answers (ctx.waitUntil): flush until all 1,000 are in DynamoDB.
        for (let i = 0; i < 100 && (await Promise.all(pages.map(stats))).reduce((a, s) => a + s.total, 0) < 1000; i++) {
          await (await mf.dispatchFetch("http://example.com/flush", { method: "POST" })).json();
        }
        const writes = ["UpdateItem", "BatchWriteItem", "PutItem", "TransactWriteItems"].reduce(
          (a, op) => a + (proxy.seen.get(op) ?? 0),
          0,
        );
        assert.ok(writes <= 60, `${writes} DynamoDB writes for 1,000 views (a few per page and flush, not one per view)`);
        for (const page of pages) {
          const s = await stats(page);
          const sum = (points: Array<{ views: number }>) => points.reduce((a, p) => a + p.views, 0);
          assert.deepEqual(
            [s.total, s.today.views, s.last24h.length, sum(s.last24h), s.last30d.length, sum(s.last30d)],
            [250, 250, 24, 250, 30, 250],
            page,
          );
          // Each page had 10 visitors (i % 40 over i ≡ page's index mod 4); a sketch is exact at that size.
          assert.equal(s.today.uniques, 10, `${page}: unique visitors`);
          assert.deepEqual(
            s.top.map((t) => t.views),
            [250, 250, 250, 250],
          );
          assert.deepEqual(s.top.map((t) => t.page).sort(), [...pages].sort());
        }
        const badge = await mf.dispatchFetch("http://example.com/badge.svg?page=/pricing");
        assert.equal(badge.headers.get("content-type"), "image/svg+xml; charset=utf-8");
        assert.match(await badge.text(), /<title>views: 250<\/title>/);
        const chart = await (await mf.dispatchFetch("http://example.com/chart.svg?page=/pricing")).text();
        assert.match(chart, /last 24 hours: 250/);
        assert.match(chart, /last 30 days: 250/);
        assert.equal((chart.match(/<rect x=/g) ?? []).length, 24 + 30, "one bar per hour and per day");
        assert.equal((await mf.dispatchFetch("http://example.com/stats?page=pricing")).status, 400, "a page is a path");
        // A page is read as the tracker counts it, however the link spells it; a path of any length is no 500.
        assert.equal((await stats("/pricing/")).total, 250);
        assert.equal((await stats("//docs//intro")).total, 250);
        assert.equal((await stats(`/${"x".repeat(1100)}`)).total, 0);
        const html = await (await mf.dispatchFetch("http://example.com/docs/intro/", { headers: { "user-agent": "curl/8.5.0" } })).text();
        assert.match(html, /badge\.svg\?page=%2Fdocs%2Fintro"/, "the page links to the counts of the page it counts");
        assert.equal(
          (await mf.dispatchFetch("http://example.com/api/x", { headers: { "cf-connecting-ip": "1".repeat(3000) } })).status,
          200,
        );
      } finally {
        await mf.dispose();
      }
    });

    it("rate-limits /api per client IP: RATE_LIMIT answers with RateLimit headers, then 429 with Retry-After", async () => {
      const client = await freshTable(server.endpoint);
      const mf = startMiniflare(script, {
        compatibilityDate,
        durableObjects: { PAGE_VIEWS: "PageViewsObject" },
        bindings: { ...awsBindings(server.endpoint), TABLE_NAME: client.table.tableName, RATE_LIMIT: "5" },
      });
      try {
        const hit = async (ip: string) => {
          const res = await mf.dispatchFetch("http://example.com/api/orders", { headers: { "cf-connecting-ip": ip } });
          await res.text();
          return {
            status: res.status,
            rateLimit: res.headers.get("RateLimit"),
            policy: res.headers.get("RateLimit-Policy"),
            retryAfter: res.headers.get("retry-after"),
          };
        };
        // A token bucket of 5 refilled over a minute: the 6th call within 12 s (one token's time) is denied,
        // whenever the test runs (no window boundary to cross).
        const answers = [];
        for (let i = 0; i < 7; i++) answers.push(await hit("203.0.113.7"));
        assert.deepEqual(
          answers.map((a) => a.status),
          [200, 200, 200, 200, 200, 429, 429],
        );
        assert.deepEqual(
          answers.map((a) => /r=(\d+)/.exec(a.rateLimit ?? "")?.[1]),
          ["4", "3", "2", "1", "0", "0", "0"],
        );
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
