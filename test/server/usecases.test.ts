import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterError, IdAllocator, ShardedCounter } from "../../src/index.ts";
import { clientFor, freshTable, servers, throughProxy, uniqueTable } from "../support/harness.ts";
import { seededRandom, type Fault } from "../support/fault-proxy.ts";

const _WINDOW = 60_000;

for (const server of await servers()) {
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

    it("a short script that takes 60 ids of a 100 block reserves one block; one that keeps going finds each next block ready", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      const script = new IdAllocator(client, "short", { blockSize: 100 });
      for (let i = 1; i <= 60; i++) assert.equal(await script.next(), i);
      await new Promise((resolve) => setTimeout(resolve, 50)); // a prefetch, had one started, would have been sent
      assert.equal(proxy.seen.get("UpdateItem"), 1, "no second block for a short script");
      assert.equal(script.available, 40);

      // A steady caller: the first block is used up before the next is reserved (one wait, at id 101); from the
      // second block on, the next one is fetched once fewer than half are left, before anyone waits for it.
      const steady = new IdAllocator(client, "steady", { blockSize: 10 });
      const waited: number[] = [];
      for (let i = 1; i <= 45; i++) {
        const ready = steady.available > 0;
        assert.equal(await steady.next(), i);
        if (!ready) waited.push(i);
        await new Promise((resolve) => setTimeout(resolve, 5)); // time for a background reservation
      }
      assert.deepEqual(waited, [1, 11], "waits for the first block and the second, never after");
      assert.equal(proxy.seen.get("UpdateItem"), 1 + 5, "steady: blocks 1 and 2 when needed, 3, 4 and 5 fetched ahead (at ids 16, 26, 36)");
    });

    it("2 allocators × 1,000 concurrent next() through 25% faults: every call succeeds, ids distinct and from delivered blocks", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint, {
        timeoutMs: 1000,
        retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
      });
      const random = seededRandom(server.name === "dynalite" ? 14 : 41);
      const faults: Fault[] = ["drop-after", "error500-after", "error500", "reset", "throttle", { delayMs: 1500 }];
      proxy.setFault((info) =>
        info.operation === "UpdateItem" && random() < 0.25 ? faults[Math.floor(random() * faults.length)]! : "pass",
      );
      const allocators = Array.from({ length: 2 }, () => new IdAllocator(client, "faulty", { blockSize: 10, timeoutMs: 60_000 }));
      const settled = await Promise.allSettled(allocators.flatMap((a) => Array.from({ length: 1000 }, () => a.next())));
      const failures = settled.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []));
      assert.deepEqual(failures, [], "every call succeeds within its deadline");
      const ids = settled.map((s) => (s as PromiseFulfilledResult<number>).value);
      assert.equal(new Set(ids).size, 2000, "no id handed out twice");
      assert.ok(
        (proxy.injected.get("drop-after") ?? 0) + (proxy.injected.get("error500-after") ?? 0) > 0,
        "reservations applied but not answered happened",
      );
      // Every id lies in a block whose answer actually reached a client.
      const blocks = proxy.delivered
        .filter((d) => d.operation === "UpdateItem")
        .map((d) => Number((JSON.parse(d.body) as { Attributes: { lastValue: { N: string } } }).Attributes.lastValue.N));
      for (const id of ids)
        assert.ok(
          blocks.some((last) => id > last - 10 && id <= last),
          `id ${id} is from no delivered block`,
        );
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
      for (const r of results)
        assert.ok(
          r.status === "rejected" && r.reason instanceof CounterError && r.reason.code === "Timeout",
          String((r as PromiseRejectedResult).reason),
        );
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
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          while (left-- > 0) await likes.add();
        }),
      );
      assert.equal(await likes.total(), 10_000);
      const shards = await Promise.all(Array.from({ length: 10 }, (_, i) => direct.get(`likes#${i}`)));
      assert.equal(
        shards.reduce((a, b) => a + b, 0),
        10_000,
      );
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
      assert.throws(
        () => new ShardedCounter(client, "x".repeat(2047), { shards: 10 }),
        (e: unknown) => e instanceof CounterError && e.code === "Validation",
      );
      assert.throws(
        () => new ShardedCounter(client, "x", { shards: 0 }),
        (e: unknown) => e instanceof CounterError && /shards/.test(e.message),
      );
    });
  });
}
