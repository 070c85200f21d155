import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterError, IdAllocator, RateLimiter, ShardedCounter } from "../src/index.ts";
import { freePort } from "./support/servers.ts";
import { clientFor, freshTable, servers, throughProxy, uniqueTable } from "./support/harness.ts";
import { seededRandom, type Fault } from "./support/fault-proxy.ts";


const WINDOW = 60_000;

for (const server of await servers()) {
  describe(`RateLimiter on ${server.name}`, () => {
    for (const algorithm of ["fixed-window", "sliding-window"] as const) {
      it(`${algorithm}: with limit 10 the 11th call fails, remaining counts down to 0, the next window allows again`, async () => {
        const { client } = await throughProxy(server.endpoint);
        let now = 10 * WINDOW + 1_000; // early in a window
        const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, algorithm, now: () => now });
        const remaining: number[] = [];
        for (let i = 0; i < 10; i++) {
          const r = await limiter.limit("user-1");
          assert.equal(r.success, true);
          assert.equal(r.limit, 10);
          assert.equal(r.reset, 11 * WINDOW);
          remaining.push(r.remaining);
        }
        assert.deepEqual(remaining, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        const eleventh = await limiter.limit("user-1");
        assert.equal(eleventh.success, false);
        assert.equal(eleventh.remaining, 0);
        assert.equal((await limiter.limit("user-2")).success, true, "other identifiers are separate");
        now = algorithm === "fixed-window" ? 11 * WINDOW : 12 * WINDOW; // the sliding window still sees the previous one
        const later = await limiter.limit("user-1");
        assert.equal(later.success, true);
        assert.equal(later.remaining, 9);
      });
    }

    it("sliding window counts the previous window by its overlap", async () => {
      const { client } = await throughProxy(server.endpoint);
      let now = 20 * WINDOW;
      const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, now: () => now });
      assert.equal((await limiter.limit("s", { cost: 10 })).remaining, 0);
      now = 21 * WINDOW + WINDOW / 2; // half of the previous window overlaps: 5 of its 10 still count
      const results = [];
      for (let i = 0; i < 6; i++) results.push(await limiter.limit("s"));
      assert.deepEqual(results.map((r) => r.success), [true, true, true, true, true, false]);
      assert.deepEqual(results.map((r) => r.remaining), [4, 3, 2, 1, 0, 0]);
      now = 21 * WINDOW + (WINDOW * 3) / 4; // now only floor(10 × 0.25) = 2 of them count, plus the 6 made
      assert.deepEqual(await limiter.remaining("s"), { remaining: 2, limit: 10, reset: 22 * WINDOW });
    });

    it("cost > 1 uses that many units", async () => {
      const { client } = await throughProxy(server.endpoint);
      const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, algorithm: "fixed-window", now: () => 5 * WINDOW });
      assert.deepEqual([(await limiter.limit("c", { cost: 4 })).remaining, (await limiter.limit("c", { cost: 4 })).remaining], [6, 2]);
      const over = await limiter.limit("c", { cost: 4 });
      assert.equal(over.success, false);
      await assert.rejects(limiter.limit("c", { cost: 0 }), (e: unknown) => e instanceof CounterError && e.code === "Validation");
    });

    it("200 concurrent calls with limit 50 allow exactly 50 (fixed window)", async () => {
      const { client } = await throughProxy(server.endpoint, { timeoutMs: 30_000 });
      const limiter = new RateLimiter(client, { limit: 50, windowMs: WINDOW, algorithm: "fixed-window", cacheBlocked: false, now: () => 7 * WINDOW });
      const results = await Promise.all(Array.from({ length: 200 }, () => limiter.limit("burst")));
      assert.equal(results.filter((r) => r.success).length, 50);
      assert.equal(results.filter((r) => r.success && r.remaining === 0).length, 1);
    });

    it("a blocked identifier is answered from the cache, without a request, until reset", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      let now = 3 * WINDOW;
      const limiter = new RateLimiter(client, { limit: 2, windowMs: WINDOW, algorithm: "fixed-window", now: () => now });
      for (let i = 0; i < 3; i++) await limiter.limit("b");
      const sent = proxy.seen.get("UpdateItem");
      assert.equal(sent, 3);
      for (let i = 0; i < 5; i++) {
        const r = await limiter.limit("b");
        assert.deepEqual(r, { success: false, limit: 2, remaining: 0, reset: 4 * WINDOW, reason: "cacheBlock" });
      }
      assert.equal(proxy.seen.get("UpdateItem"), 3, "no request while cached");
      now = 4 * WINDOW;
      assert.equal((await limiter.limit("b")).success, true);
      assert.equal(proxy.seen.get("UpdateItem"), 4);
    });

    it("items carry a TTL in epoch seconds, in the future; remaining() and reset() work", async () => {
      const { client, direct } = await throughProxy(server.endpoint);
      const now = Date.now();
      const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW, now: () => now });
      await limiter.limit("ttl", { cost: 2 });
      const item = await direct.send<{ Item: Record<string, { N?: string }> }>(
        "GetItem",
        { TableName: direct.table.tableName, Key: { id: { S: "ratelimit:ttl" } }, ConsistentRead: true },
        { idempotent: true },
      );
      const expiresAt = Number(item.Item.expiresAt?.N);
      assert.ok(expiresAt > now / 1000, "in the future");
      assert.ok(expiresAt <= (now + 2 * WINDOW) / 1000 + 1, "within two windows");
      assert.ok(Number.isInteger(expiresAt) && expiresAt < 1e11, "seconds, not milliseconds");
      assert.equal((await limiter.remaining("ttl")).remaining, 3);
      assert.equal((await limiter.remaining("ttl")).remaining, 3, "remaining() does not count");
      await limiter.reset("ttl");
      assert.equal((await limiter.remaining("ttl")).remaining, 5);
    });
  });

  describe(`IdAllocator on ${server.name}`, () => {
    it("4 allocators × 2,500 concurrent next() calls give 10,000 distinct ids, a request per block", async () => {
      const { client, proxy } = await throughProxy(server.endpoint, { timeoutMs: 30_000 });
      const allocators = Array.from({ length: 4 }, () => new IdAllocator(client, "orders", { blockSize: 100 }));
      const ids = (await Promise.all(allocators.flatMap((a) => Array.from({ length: 2500 }, () => a.next())))) as number[];
      assert.equal(new Set(ids).size, 10_000);
      const reserves = proxy.seen.get("UpdateItem")!;
      assert.ok(reserves >= 100 && reserves <= 108, `${reserves} reservations for 10,000 ids in blocks of 100`);
    });

    it("concurrent next() calls share one reservation, and the next block is prefetched", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      const ids = new IdAllocator(client, "seq", { blockSize: 10 });
      const first = await Promise.all(Array.from({ length: 10 }, () => ids.next()));
      assert.deepEqual(first, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(await ids.next(), 11);
      assert.equal(proxy.seen.get("UpdateItem"), 2, "one block, then one prefetch");
    });

    it("2 allocators × 1,000 concurrent next() through 25% faults: every call succeeds, ids distinct and from delivered blocks", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint, { timeoutMs: 1000, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 } });
      const random = seededRandom(server.name === "dynalite" ? 14 : 41);
      const faults: Fault[] = ["drop-after", "error500-after", "error500", "reset", "throttle", { delayMs: 1500 }];
      proxy.setFault((info) => (info.operation === "UpdateItem" && random() < 0.25 ? faults[Math.floor(random() * faults.length)]! : "pass"));
      const allocators = Array.from({ length: 2 }, () => new IdAllocator(client, "faulty", { blockSize: 10, timeoutMs: 60_000 }));
      const settled = await Promise.allSettled(allocators.flatMap((a) => Array.from({ length: 1000 }, () => a.next())));
      const failures = settled.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []));
      assert.deepEqual(failures, [], "every call succeeds within its deadline");
      const ids = settled.map((s) => (s as PromiseFulfilledResult<number>).value);
      assert.equal(new Set(ids).size, 2000, "no id handed out twice");
      assert.ok((proxy.injected.get("drop-after") ?? 0) + (proxy.injected.get("error500-after") ?? 0) > 0, "reservations applied but not answered happened");
      // Every id lies in a block whose answer actually reached a client.
      const blocks = proxy.delivered
        .filter((d) => d.operation === "UpdateItem")
        .map((d) => Number((JSON.parse(d.body) as { Attributes: { lastValue: { N: string } } }).Attributes.lastValue.N));
      for (const id of ids) assert.ok(blocks.some((last) => id > last - 10 && id <= last), `id ${id} is from no delivered block`);
      const counter = await direct.get("faulty");
      assert.ok(counter >= blocks.length * 10 + 10, `lost answers left gaps: counter ${counter}, ${blocks.length} blocks delivered`);
    });

    it("a dead server: every waiter rejects with Timeout once its deadline passes, none hangs", async () => {
      const { client, proxy } = await throughProxy(server.endpoint, { retry: { attempts: 1, throttle: { attempts: 1 } } });
      proxy.setFault(() => "reset");
      const ids = new IdAllocator(client, "dead", { blockSize: 10, timeoutMs: 400 });
      const started = Date.now();
      const results = await Promise.allSettled(Array.from({ length: 50 }, () => ids.next()));
      const took = Date.now() - started;
      for (const r of results) assert.ok(r.status === "rejected" && r.reason instanceof CounterError && r.reason.code === "Timeout", String((r as PromiseRejectedResult).reason));
      assert.match((results[0] as PromiseRejectedResult).reason.message, /400 ms.*Network/);
      assert.ok(took >= 400 && took < 3000, `rejected after ${took} ms`);
      assert.ok((proxy.seen.get("UpdateItem") ?? 0) >= 2, "the reservation was retried meanwhile");
      assert.ok((proxy.seen.get("UpdateItem") ?? 0) < 50, "one shared reservation loop, not one per caller");
    });

    it("a missing table: every waiter rejects at once with TableNotFound", async () => {
      const client = clientFor(server.endpoint, { tableName: uniqueTable() });
      const ids = new IdAllocator(client, "nope", { timeoutMs: 60_000 });
      const started = Date.now();
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => ids.next()));
      for (const r of results) assert.ok(r.status === "rejected" && r.reason instanceof CounterError && r.reason.code === "TableNotFound");
      assert.ok(Date.now() - started < 5000, "at once, not at the deadline");
    });
  });

  describe(`ShardedCounter on ${server.name}`, () => {
    it("10,000 adds over 10 shards total exactly, every shard used", async () => {
      const direct = await freshTable(server.endpoint, { timeoutMs: 30_000 });
      const likes = new ShardedCounter(direct, "likes", { shards: 10 });
      let left = 10_000;
      await Promise.all(Array.from({ length: 50 }, async () => {
        while (left-- > 0) await likes.add();
      }));
      assert.equal(await likes.total(), 10_000);
      const shards = await Promise.all(Array.from({ length: 10 }, (_, i) => direct.get(`likes#${i}`)));
      assert.equal(shards.reduce((a, b) => a + b, 0), 10_000);
      assert.ok(shards.every((n) => n > 0));
    });

    it("total pages UnprocessedKeys over many shards", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint);
      const counter = new ShardedCounter(client, "wide", { shards: 250 });
      await Promise.all(Array.from({ length: 250 }, (_, i) => direct.increment(`wide#${i}`, { by: i + 1 })));
      let rewritten = 0;
      // As DynamoDB does under load: the server gets only a third of the keys, the rest come back unprocessed.
      proxy.setFault((info) =>
        info.operation === "BatchGetItem" && rewritten < 4
          ? {
              rewrite: (request) => {
                rewritten++;
                const body = JSON.parse(request) as { RequestItems: Record<string, { Keys: unknown[] }> };
                const [table, spec] = Object.entries(body.RequestItems)[0]!;
                const kept = spec.Keys.slice(0, Math.ceil(spec.Keys.length / 3));
                const left = spec.Keys.slice(kept.length);
                body.RequestItems[table] = { ...spec, Keys: kept };
                return {
                  request: JSON.stringify(body),
                  response: (answer) => {
                    const out = JSON.parse(answer) as { UnprocessedKeys?: unknown };
                    out.UnprocessedKeys = left.length > 0 ? { [table]: { ...spec, Keys: left } } : {};
                    return JSON.stringify(out);
                  },
                };
              },
            }
          : "pass",
      );
      assert.equal(await counter.total(), (250 * 251) / 2);
      assert.equal(rewritten, 4);
      assert.ok(proxy.seen.get("BatchGetItem")! > 3, "unprocessed keys were asked again");
    });

    it("keys past the limit with the shard suffix are a Validation error", () => {
      const client = clientFor("http://127.0.0.1:9");
      assert.throws(() => new ShardedCounter(client, "x".repeat(2047), { shards: 10 }), (e: unknown) => e instanceof CounterError && e.code === "Validation");
      assert.throws(() => new ShardedCounter(client, "x", { shards: 0 }), (e: unknown) => e instanceof CounterError && /shards/.test(e.message));
    });
  });
}

describe("RateLimiter when DynamoDB is unreachable", () => {
  it("a missing table is thrown, not failed open: it is a setup error", async () => {
    const [server] = await servers();
    const limiter = new RateLimiter(clientFor(server!.endpoint, { tableName: uniqueTable() }), { limit: 5, windowMs: WINDOW });
    await assert.rejects(limiter.limit("x"), (e: unknown) => e instanceof CounterError && e.code === "TableNotFound");
  });

  for (const failureMode of ["open", "closed"] as const) {
    it(`fails ${failureMode} and says so`, async () => {
      const port = await freePort(); // nothing listens: connections are refused
      const client = clientFor(`http://127.0.0.1:${port}`, { retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 } });
      const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW, failureMode, now: () => WINDOW * 9 });
      const r = await limiter.limit("x");
      assert.equal(r.success, failureMode === "open");
      assert.equal(r.reason, failureMode === "open" ? "failOpen" : "failClosed");
      assert.equal(r.error?.code, "Network");
      assert.equal(r.reset, WINDOW * 10);
    });
  }
});
