// Page views on Node against both servers: the sketch's error, buckets, paths, bots, validation, and the recorder
// (DurablePageViews over an in-memory object state) read back through PageViews, createTable({ pageViews }) and WCU.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterError, PageViews, PageViewTracker, type CounterClient, type PageView } from "../../src/index.ts";
import { DurablePageViews, type DurableState, type DurableStorage } from "../../src/durable-object.ts";
import { Sketch, SPARSE_MAX } from "../../src/usecases/pageviews/hll.ts";
import { bucketStarts, dayOf } from "../../src/usecases/pageviews/buckets.ts";
import { decodeSafe, normalizePath } from "../../src/usecases/pageviews/paths.ts";
import { isBot, isPageLoad } from "../../src/usecases/pageviews/bots.ts";
import { hashVisitor } from "../../src/usecases/pageviews/visitor.ts";
import { itemKey, parseKey } from "../../src/usecases/pageviews/layout.ts";
import { checkViews } from "../../src/usecases/pageviews/views.ts";
import { clientFor, rejection, servers, uniqueTable } from "../support/harness.ts";

const SECRET = "test-secret-0123456789abcdef";
const DAY = Date.UTC(2026, 10, 21);
const H = 3_600_000;

/** xorshift32 from a fixed seed: the statistical checks see the same hashes on every run. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

/** A Durable Object's state in memory: storage survives `restart()`, which builds a new state like an eviction does. */
function memoryObject(id = "a".repeat(64)) {
  const data = new Map<string, unknown>();
  let alarm: number | null = null;
  const storage: DurableStorage = {
    get: async <T>(key: string) => structuredClone(data.get(key)) as T | undefined,
    put: async (entries) => {
      if (Object.keys(entries).length > 128) throw new Error("more than 128 keys in one put");
      for (const [k, v] of Object.entries(entries)) data.set(k, structuredClone(v));
    },
    delete: async (keys) => {
      if (keys.length > 128) throw new Error("more than 128 keys in one delete");
      let n = 0;
      for (const k of keys) if (data.delete(k)) n++;
      return n;
    },
    list: async <T>({ prefix }: { prefix: string }) =>
      new Map([...data].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k, structuredClone(v) as T])),
    getAlarm: async () => alarm,
    setAlarm: async (at) => {
      alarm = at;
    },
  };
  const state: DurableState = { id: { toString: () => id }, storage, blockConcurrencyWhile: (fn) => fn() };
  return { data, state, alarm: () => alarm };
}

describe("visitor sketch (HyperLogLog, 2^12 registers)", () => {
  it("standard error ≤ 2 % from 1,000 to 200,000 visitors (fixed seed, 30 sketches per size), near zero bias", () => {
    const next = rng(20261121);
    for (const n of [1_500, 5_000, 20_000, 200_000]) {
      const trials = n >= 200_000 ? 10 : 30;
      let squares = 0;
      let sum = 0;
      for (let t = 0; t < trials; t++) {
        const sketch = new Sketch();
        for (let i = 0; i < n; i++) sketch.add(next(), next());
        const error = (Sketch.decode(sketch.encode()).estimate() - n) / n;
        squares += error * error;
        sum += error;
      }
      const rmse = Math.sqrt(squares / trials);
      assert.ok(rmse <= 0.02, `n = ${n}: relative RMSE ${(rmse * 100).toFixed(2)} %`);
      assert.ok(Math.abs(sum / trials) <= 0.01, `n = ${n}: bias ${((sum / trials) * 100).toFixed(2)} %`);
    }
  });

  it("is exact-looking for small counts, sparse and small (~100 visitors fit in 400 characters)", () => {
    const next = rng(7);
    const sketch = new Sketch();
    for (let n = 1; n <= 1000; n++) {
      sketch.add(next(), next());
      if (n % 50 === 0 || n <= 10) assert.equal(sketch.estimate(), n);
      if (n === 100) assert.equal(sketch.encode().length, 401);
    }
    assert.ok(sketch.sparse);
    for (let n = 0; n < SPARSE_MAX; n++) sketch.add(next(), next());
    assert.equal(sketch.sparse, false, "dense past SPARSE_MAX entries");
    assert.equal(sketch.encode().length, 4097);
  });

  it("adding a visitor twice changes nothing; merging sketches gives the union", () => {
    const next = rng(99);
    const hashes = Array.from({ length: 30_000 }, () => [next(), next()] as const);
    const a = new Sketch();
    const b = new Sketch();
    const all = new Sketch();
    hashes.forEach(([hi, lo], i) => {
      if (i < 20_000) a.add(hi, lo);
      if (i >= 10_000) b.add(hi, lo);
      all.add(hi, lo);
    });
    assert.equal(a.add(...hashes[0]!), false);
    a.merge(b);
    assert.equal(a.encode(), all.encode(), "merge is exactly the sketch of the union");
    const small = new Sketch();
    small.add(1, 2);
    small.add(3, 4);
    const big = Sketch.decode(all.encode());
    big.merge(small);
    assert.ok(Math.abs(big.estimate() - 30_000) / 30_000 < 0.03);
    assert.throws(
      () => Sketch.decode("x123"),
      (e: unknown) => e instanceof CounterError && e.code === "Validation",
    );
  });
});

describe("page views: buckets, keys, paths, bots", () => {
  it("series buckets overlap [from, to), UTC", () => {
    assert.deepEqual(bucketStarts("hour", DAY + 30 * 60_000, DAY + 2 * H + 1), [DAY, DAY + H, DAY + 2 * H]);
    assert.deepEqual(bucketStarts("hour", DAY, DAY + 2 * H), [DAY, DAY + H]);
    assert.deepEqual(bucketStarts("day", DAY + 5, DAY + 5), []);
    assert.equal(dayOf(DAY - 1), "2026-11-20");
  });

  it("keys carry the page last (any character), with or without a sort key", () => {
    const plain = { tableName: "T", keyAttribute: "id", sortKeyAttribute: undefined, countAttribute: "n" };
    const sorted = { ...plain, sortKeyAttribute: "sk" };
    for (const page of ["/a#b/c", "(other)", "/é"]) {
      const k = itemKey(plain, "u", page, "2026-11-21#w1") as string;
      assert.deepEqual(parseKey(k, undefined), { kind: "u", period: "2026-11-21#w1", page });
      const s = itemKey(sorted, "d", page, "2026-11-21") as { id: string; sort: string };
      assert.deepEqual(parseKey(s.id, s.sort), { kind: "d", period: "2026-11-21", page });
    }
    assert.equal(parseKey("page:/home", undefined), undefined);
  });

  it("normalises paths: no query, safe percent-decoding, slashes, trailing slash, case kept, length cap", () => {
    const p = (url: string, o = {}) => normalizePath(new URL(url), o);
    assert.equal(p("https://x.test/Docs/?utm=1#top"), "/Docs");
    assert.equal(p("https://x.test//a///b/"), "/a/b");
    assert.equal(p("https://x.test/"), "/");
    assert.equal(p("https://x.test/caf%C3%A9"), "/café");
    assert.equal(p("https://x.test/caf%c3%a9"), "/café");
    assert.equal(p("https://x.test/a%2fb/%7Euser"), "/a%2Fb/~user", "a reserved character stays encoded, an unreserved one is decoded");
    assert.equal(decodeSafe("/%E2%80%8B%C3"), "/%E2%80%8B%C3", "invisible characters and broken UTF-8 stay encoded");
    assert.equal(p("https://x.test/About/", { lowercase: true }), "/about");
    assert.equal(p("https://x.test/docs/", { trailingSlash: "keep" }), "/docs/");
    assert.equal(p(`https://x.test/${"a".repeat(500)}`).length, 256);
  });

  it("counts page loads by people only", () => {
    const req = (headers: Record<string, string>, method = "GET") => new Request("https://x.test/p", { method, headers });
    const browser = { "user-agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15", "sec-fetch-dest": "document", accept: "text/html" };
    assert.equal(isPageLoad(req(browser)), true);
    assert.equal(isPageLoad(req({ ...browser, "sec-fetch-dest": "script" })), false);
    assert.equal(isPageLoad(req({ accept: "text/html,*/*" })), true);
    assert.equal(isPageLoad(req({ accept: "*/*" })), false);
    assert.equal(isPageLoad(req({ ...browser, "sec-purpose": "prefetch" })), false);
    assert.equal(isPageLoad(req(browser, "POST")), false);
    assert.equal(isPageLoad(req(browser), new Response("", { status: 404 })), false);
    assert.equal(isPageLoad(req(browser), new Response(null, { status: 304 })), true);
    assert.equal(isBot(req(browser)), false);
    for (const ua of [
      "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
      "curl/8.5.0",
      "",
      "python-requests/2.31",
      "Mozilla/5.0 (compatible; bingbot/2.0)",
      "facebookexternalhit/1.1",
    ]) {
      assert.equal(isBot(req({ ...browser, "user-agent": ua })), true, ua);
    }
  });

  it("the tracker batches in windows of batchMs: steady traffic sends one RPC per window, not one per view's timer", async () => {
    let rpcs = 0;
    let views = 0;
    const namespace = {
      idFromName: (name: string) => name,
      get: () => ({ record: async (v: unknown[]) => void (rpcs++, (views += v.length)) }),
    };
    const tracker = new PageViewTracker(namespace, { objects: 1, batchMs: 50 });
    const started = performance.now();
    const pending: Promise<void>[] = [];
    // 200 views, one every 2 ms (as a busy isolate receives them), all for one object.
    for (let i = 0; i < 200; i++) {
      pending.push(tracker.track({ page: "/steady" }));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await Promise.all(pending);
    const windows = (performance.now() - started) / 50;
    assert.equal(views, 200);
    assert.ok(rpcs <= Math.ceil(windows) + 1, `${rpcs} RPCs over ${windows.toFixed(1)} windows of 50 ms`);
    assert.equal(tracker.pageOf("https://x.test/Docs//intro/?ref=1"), "/Docs/intro", "pageOf: the page a URL counts as");
  });

  it("a request's odd headers or path never make a view an object refuses: one client cannot fail the batch of others", async () => {
    const sent: PageView[][] = [];
    const failures: unknown[] = [];
    // The object's own check (DurablePageViews.record runs it on the whole batch first).
    const namespace = {
      idFromName: (name: string) => name,
      get: () => ({ record: async (v: PageView[]) => void (checkViews(v, Date.now()), sent.push(v)) }),
    };
    const tracker = new PageViewTracker(namespace, { objects: 1, paths: { maxLength: 1024 }, onError: (e) => void failures.push(e) });
    const load = (path: string, ua: string) =>
      new Request(`https://x.test${path}`, {
        headers: { accept: "text/html", "sec-fetch-dest": "document", "user-agent": ua, "cf-connecting-ip": "203.0.113.5" },
      });
    await Promise.all([
      tracker.track(load("/a", "Mozilla/5.0 A")),
      tracker.track(load("/b", `Mozilla/5.0 ${"x".repeat(5000)}`)),
      tracker.track(load(`/${"頁".repeat(400)}`, "Mozilla/5.0 C")),
    ]);
    assert.deepEqual(failures, []);
    assert.equal(sent.flat().length, 3, "all three recorded");
    assert.ok(
      new TextEncoder().encode(tracker.pageOf(`https://x.test/${"頁".repeat(400)}`)).length <= 1024,
      "pageOf agrees: at most 1,024 bytes",
    );
  });

  it("hashes a visitor per day: the same day agrees, two days differ, nothing of the visitor is kept", async () => {
    const a = await hashVisitor(SECRET, "2026-11-21", "203.0.113.9\nMozilla");
    assert.match(a, /^~h1:[0-9a-f]{16}$/);
    assert.equal(await hashVisitor(SECRET, "2026-11-21", "203.0.113.9\nMozilla"), a);
    assert.notEqual(await hashVisitor(SECRET, "2026-11-22", "203.0.113.9\nMozilla"), a);
    assert.notEqual(await hashVisitor(`${SECRET}x`, "2026-11-21", "203.0.113.9\nMozilla"), a);
  });
});

describe("page views: validation and configuration, before any request", () => {
  const client = clientFor("http://127.0.0.1:9", { retry: { attempts: 1 } });
  it("uniques on and no secret is a Config error naming secret; unknown options name the closest", () => {
    const { state } = memoryObject();
    assert.throws(
      () => new DurablePageViews(state, client),
      (e: unknown) => e instanceof CounterError && e.code === "Config" && /"secret"/.test(e.message),
    );
    assert.doesNotThrow(() => new DurablePageViews(memoryObject().state, client, { uniques: false }));
    assert.throws(() => new DurablePageViews(memoryObject().state, client, { secret: "short" }), /secret/);
    assert.throws(
      () => new DurablePageViews(memoryObject().state, client, { secret: SECRET, maxPage: 5 } as never),
      /did you mean "maxPages"/,
    );
    assert.throws(
      () => new PageViewTracker({ idFromName: () => 1, get: () => ({ record: async () => undefined }) }, { objcts: 3 } as never),
      /did you mean "objects"/,
    );
  });

  it("bad views, batch ids and reader input are Validation errors, and nothing is sent", async () => {
    const views = new DurablePageViews(memoryObject().state, client, { secret: SECRET });
    const bad: unknown[] = [
      "nope",
      [{ page: "" }],
      [{ page: 5 }],
      [{ page: "/a", at: 1.5 }],
      [{ page: "/a", at: Date.now() + 3 * 86_400_000 }],
      [{ page: "/a", visitor: "" }],
      [{ page: "/a", extra: 1 }],
      [{ page: "x".repeat(1025) }],
      [{ page: "/\uD800" }],
    ];
    for (const input of bad) {
      const error = await rejection(views.record(input as PageView[]));
      assert.ok(error instanceof CounterError && error.code === "Validation", `${JSON.stringify(input)}: ${String(error)}`);
    }
    assert.equal((await rejection(views.record([], ""))) instanceof CounterError, true);
    const reader = new PageViews(client);
    for (const call of [
      () => reader.total(""),
      () => reader.series("/a", { bucket: "week" as never, from: DAY, to: DAY + H }),
      () => reader.series("/a", { bucket: "hour", from: DAY + H, to: DAY }),
      () => reader.series("/a", { bucket: "hour", from: DAY, to: DAY + 20_000 * H }),
      () => reader.uniques("/a", { day: "2026-02-30" }),
      () => reader.top({ day: "2026-11-21", limit: 0 }),
      () => reader.top({ day: "21/11/2026" }),
    ]) {
      const error = await rejection(call());
      assert.ok(error instanceof CounterError && error.code === "Validation", String(error));
    }
  });
});

for (const server of await servers()) {
  describe(`page views on ${server.name}`, { timeout: 120_000 }, () => {
    /** A client on a new table made with createTable({ pageViews: true }). */
    async function table(): Promise<CounterClient> {
      const client = clientFor(server.endpoint, { tableName: uniqueTable("pv") });
      await client.createTable({ pageViews: true });
      return client;
    }

    it("counts per page, hour, day, month and lifetime exactly; series fills zeros; top ranks; uniques merge objects", async () => {
      const client = await table();
      const reader = new PageViews(client);
      const now = Date.now();
      const today = Math.floor(now / 86_400_000) * 86_400_000;
      const day = dayOf(today);
      const a = memoryObject("a".repeat(64));
      const b = memoryObject("b".repeat(64));
      const one = new DurablePageViews(a.state, client, { secret: SECRET });
      const two = new DurablePageViews(b.state, client, { secret: SECRET });
      // "/": 300 views by 120 visitors, split over two objects (a spread page); "/docs": 40 in hour 0 and 2 in
      // hour 1 by 7 visitors; "/pricing": 5 yesterday-evening views.
      const home: PageView[] = Array.from({ length: 300 }, (_, i) => ({ page: "/", visitor: `v${i % 120}`, at: today + (i % 3) * H }));
      await one.record(home.slice(0, 150));
      await two.record(home.slice(150));
      await one.record(Array.from({ length: 42 }, (_, i) => ({ page: "/docs", visitor: `w${i % 7}`, at: today + (i < 40 ? 0 : H) + i })));
      await one.record(Array.from({ length: 5 }, () => ({ page: "/pricing", at: today - 1000 })));
      assert.equal(await reader.total("/"), 0, "nothing before a flush");
      const r1 = await one.flush();
      await two.flush();
      assert.equal(r1.keys, 9, "three items per page: its day, month and lifetime");
      assert.equal(await reader.total("/"), 300);
      assert.equal(await reader.total("/docs"), 42);
      assert.deepEqual(await reader.series("/", { bucket: "hour", from: today - H, to: today + 4 * H }), [
        { start: today - H, views: 0 },
        { start: today, views: 100 },
        { start: today + H, views: 100 },
        { start: today + 2 * H, views: 100 },
        { start: today + 3 * H, views: 0 },
      ]);
      assert.deepEqual(await reader.series("/pricing", { bucket: "day", from: today - 86_400_000, to: today + 1 }), [
        { start: today - 86_400_000, views: 5 },
        { start: today, views: 0 },
      ]);
      assert.equal(await reader.uniques("/", { day }), 120, "two objects' sketches merged: 120 visitors");
      assert.equal(await reader.uniques("/docs", { day }), 7);
      assert.equal(await reader.uniques("/pricing", { day: dayOf(today - 1000) }), 0, "views without visitors");
      assert.deepEqual(await reader.top({ day }), [
        { page: "/", views: 300 },
        { page: "/docs", views: 42 },
      ]);
      assert.deepEqual(await reader.top({ day, limit: 1 }), [{ page: "/", views: 300 }]);
      // A second flush with nothing new writes nothing, not even a sketch.
      assert.deepEqual(await one.flush(), { keys: 0, requests: 0, total: 0 });
      // Raw visitors are nowhere: not in the object's storage, not in DynamoDB.
      const stored = JSON.stringify([...a.data]);
      assert.ok(!stored.includes("v1") && !stored.includes("w1"), "no visitor in object storage");
      const scan = await client.send<{ Items: unknown[] }>("Scan", { TableName: client.table.tableName }, { idempotent: true });
      assert.ok(!JSON.stringify(scan.Items).includes('"v1'), "no visitor in DynamoDB");
    });

    it("a batch sent again with its batchId is recorded once, across a restart too", async () => {
      const client = await table();
      const reader = new PageViews(client);
      const object = memoryObject();
      const first = new DurablePageViews(object.state, client, { secret: SECRET });
      const batch = [{ page: "/x" }, { page: "/x" }, { page: "/y" }];
      await first.record(batch, "batch-1");
      await Promise.all([first.record(batch, "batch-1"), first.record(batch, "batch-1")]);
      const second = new DurablePageViews(object.state, client, { secret: SECRET }); // a restart: storage only
      await second.record(batch, "batch-1");
      await second.record(batch, "batch-2");
      await second.flush();
      assert.equal(await reader.total("/x"), 4);
      assert.equal(await reader.total("/y"), 2);
    });

    it("past maxPages new pages a day, views count as (other); the cap survives a restart", async () => {
      const client = await table();
      const reader = new PageViews(client);
      const object = memoryObject();
      const views = new DurablePageViews(object.state, client, { secret: SECRET, maxPages: 3 });
      await views.record(["/1", "/2", "/3", "/4", "/5", "/1"].map((page) => ({ page })));
      const again = new DurablePageViews(object.state, client, { secret: SECRET, maxPages: 3 });
      await again.record([{ page: "/6" }, { page: "/2" }]);
      await again.flush();
      assert.deepEqual(await Promise.all(["/1", "/2", "/3", "/4", "(other)"].map((p) => reader.total(p))), [2, 2, 1, 0, 3]);
    });

    it("a sketch is written only when it changed, and a page with ~100 visitors costs 1 WCU per item per flush (measured)", async () => {
      const client = await table();
      const object = memoryObject();
      const sent: Array<{ operation: string; body: Record<string, unknown> }> = [];
      const counted = clientFor(server.endpoint, {
        tableName: client.table.tableName,
        fetch: async (input, init) => {
          const operation = String(new Headers(init?.headers).get("x-amz-target")).split(".")[1]!;
          const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
          if (operation === "UpdateItem") body.ReturnConsumedCapacity = "INDEXES";
          const entry: { operation: string; body: Record<string, unknown>; capacity?: unknown } = { operation, body };
          sent.push(entry);
          const res = await fetch(input, { ...init, body: JSON.stringify(body) });
          const text = await res.text();
          if (operation === "UpdateItem") entry.capacity = JSON.parse(text).ConsumedCapacity;
          return new Response(text, { status: res.status, headers: res.headers });
        },
      });
      const views = new DurablePageViews(object.state, counted, { secret: SECRET });
      await views.record(Array.from({ length: 500 }, (_, i) => ({ page: "/popular/page", visitor: `v${i % 100}` })));
      await views.flush();
      const updates = sent.filter((s) => s.operation === "UpdateItem");
      assert.equal(updates.length, 4, "day, month, lifetime, sketch");
      const capacity = updates.map((u) => (u as { capacity?: { CapacityUnits?: number; Table?: { CapacityUnits?: number } } }).capacity);
      console.log(`  ${server.name}: WCU per write of day, month, lifetime items and sketch: ${JSON.stringify(capacity)}`);
      for (const c of capacity) if (c?.Table?.CapacityUnits !== undefined) assert.equal(c.Table.CapacityUnits, 1);
      sent.length = 0;
      await views.record([{ page: "/popular/page", visitor: "v1" }]); // a known visitor: the sketch does not change
      await views.flush();
      const again = sent.filter((s) => s.operation === "UpdateItem");
      assert.equal(again.length, 3, "no sketch write");
      console.log(
        `  ${server.name}: WCU per write of day, month, lifetime items, next flush: ${JSON.stringify(again.map((u) => (u as { capacity?: unknown }).capacity))}`,
      );
    });

    it("top() on a table without the index is a Config error that says how to create it", async () => {
      const client = clientFor(server.endpoint, { tableName: uniqueTable("noidx") });
      await client.createTable();
      const error = await rejection(new PageViews(client).top({ day: "2026-11-21" }));
      assert.ok(
        error instanceof CounterError && error.code === "Config" && /createTable\(\{ pageViews: true \}\)/.test(error.message),
        String(error),
      );
    });

    it("createTable({ pageViews: true }) on an existing table adds the index, or says it cannot", async () => {
      const client = clientFor(server.endpoint, { tableName: uniqueTable("old") });
      await client.createTable();
      await client.increment("kept");
      if (server.name === "dynalite") {
        const error = await rejection(client.createTable({ pageViews: true }));
        assert.ok(error instanceof CounterError && error.code === "Config" && /dynalite/.test(error.message), String(error));
        return;
      }
      await client.createTable({ pageViews: true });
      await client.createTable({ pageViews: true }); // again: harmless
      const views = new DurablePageViews(memoryObject().state, client, { uniques: false });
      await views.record([{ page: "/late" }, { page: "/late" }]);
      await views.flush();
      assert.deepEqual(await new PageViews(client).top({ day: dayOf(Date.now()) }), [{ page: "/late", views: 2 }]);
      assert.equal(await client.get("kept"), 1);
    });
  });
}
