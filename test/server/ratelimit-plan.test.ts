// Per-plan limits on both servers: `limit` as a function of the identifier, cached per identifier, applied to the counts already there.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterError, limitAll, RateLimiter, type RateLimiterOptions } from "../../src/index.ts";
import { bucketAlgorithm, SCALE, TAT } from "../../src/usecases/ratelimit/bucket.ts";
import { rejection, servers, throughProxy } from "../support/harness.ts";

const W = 60_000;
const ALGORITHMS = ["fixed-window", "sliding-window", "token-bucket"] as const;

describe("token bucket scale (no server)", () => {
  it("an item kept in another limit's scale is rewritten in this one, the tokens it was missing kept", () => {
    const now = 1_000_000;
    const free = bucketAlgorithm(3, W, "expiresAt");
    const pro = bucketAlgorithm(6, W, "expiresAt");
    // Free used 2 of 3 tokens at `now`: TAT two tokens ahead, in units of ms / 3.
    const item = { [TAT]: { N: String(BigInt(now) * 3n + 2n * BigInt(W)) }, [SCALE]: { N: "3" } };
    assert.equal(free.read(now, 1, item).available, 1);
    assert.equal(pro.read(now, 1, item).available, 4, "read in the pro scale: 2 tokens missing of 6");
    const fix = pro.normalize(now, item)!;
    assert.equal(fix.condition, "#a = :seen AND #s = :was");
    assert.deepEqual([fix.values[":to"], fix.values[":l"]], [{ N: String(BigInt(now) * 6n + 2n * BigInt(W)) }, { N: "6" }]);
    assert.equal(free.normalize(now, item), undefined, "its own scale needs nothing");
    assert.equal(pro.normalize(now, { [TAT]: item[TAT] }), undefined, "an item from before scales were recorded is taken as this limit's");
  });
});

for (const server of await servers()) {
  describe(`per-plan limits on ${server.name}`, () => {
    it("the function is called once per identifier (concurrent first calls share it) and again once its answer is limitCacheMs old", async () => {
      const { client } = await throughProxy(server.endpoint);
      let t = 100 * W;
      const asked: string[] = [];
      const limiter = new RateLimiter(client, {
        limit: async (id) => (asked.push(id), await new Promise((r) => setTimeout(r, 5)), id.startsWith("pro") ? 100 : 10),
        limitCacheMs: 5000,
        windowMs: W,
        now: () => t,
      });
      const first = await Promise.all([limiter.limit("pro:1"), limiter.limit("pro:1"), limiter.limit("free:1")]);
      assert.deepEqual(
        first.map((r) => r.limit),
        [100, 100, 10],
        "each result carries the identifier's limit",
      );
      assert.deepEqual(asked.sort(), ["free:1", "pro:1"]);
      t += 4999;
      await limiter.limit("pro:1");
      assert.equal(asked.length, 2, "cached within limitCacheMs");
      t += 1;
      await limiter.limit("pro:1");
      assert.equal(asked.length, 3, "asked again after limitCacheMs");
      assert.deepEqual(await limiter.remaining("free:1"), { remaining: 9, limit: 10, reset: 101 * W });
    });

    for (const algorithm of ALGORITHMS) {
      it(`${algorithm}: an upgrade applies to what was already used (one item whatever the limit); a downgrade denies at once`, async () => {
        const { client, direct } = await throughProxy(server.endpoint);
        let t = 200 * W + 1000;
        let plan: "free" | "pro" = "free";
        const options: RateLimiterOptions = {
          limit: () => (plan === "free" ? 3 : 6),
          limitCacheMs: 1000,
          windowMs: W,
          algorithm,
          now: () => t,
        };
        const limiter = new RateLimiter(client, options);
        const admit = async () => {
          let n = 0;
          while ((await limiter.limit("u")).success) n++;
          return n;
        };
        assert.equal(await admit(), 3, "free: 3");
        const blocked = await limiter.limit("u");
        assert.equal(blocked.reason, "cacheBlock");
        plan = "pro";
        t += 1000; // the cached limit is a second old: asked again (a bucket refilled 0.05 tokens meanwhile)
        const upgraded = await limiter.limit("u");
        assert.deepEqual([upgraded.success, upgraded.limit], [true, 6], "an upgrade lifts the local block at once");
        assert.equal(1 + (await admit()), 3, "pro: 6 in all, the 3 used on free included");
        // The same item throughout: the key does not depend on the limit.
        const { Count } = await direct.send<{ Count: number }>(
          "Scan",
          { TableName: direct.table.tableName, Select: "COUNT" },
          { idempotent: true },
        );
        assert.equal(Count, 1);
        // Back to free with 6 used: denied at once, by a fresh instance too.
        plan = "free";
        t += 1000;
        const fresh = new RateLimiter(client, options);
        const down = await fresh.limit("u");
        assert.deepEqual([down.success, down.limit, down.remaining], [false, 3, 0]);
      });
    }

    it("a bad answer of the function is a Validation error naming the identifier, before any request; so is a cost over the identifier's limit", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      for (const bad of [0, -1, 1.5, Number.NaN, "10", undefined]) {
        const limiter = new RateLimiter(client, { limit: () => bad as number, windowMs: W });
        const error = await rejection(limiter.limit("who"));
        assert.ok(error instanceof CounterError && error.code === "Validation", String(error));
        assert.match(error.message, /"limit" function answered .* for identifier "who": it must be a positive integer/);
      }
      const small = new RateLimiter(client, { limit: () => 2, windowMs: W });
      const over = await rejection(small.limit("who", { cost: 3 }));
      assert.ok(
        over instanceof CounterError && over.code === "Validation" && /more than "limit" \(2 for this identifier\)/.test(over.message),
        String(over),
      );
      const constructed = (() => {
        try {
          return new RateLimiter(client, { limit: "10" as unknown as number, windowMs: W });
        } catch (error) {
          return error;
        }
      })();
      assert.ok(constructed instanceof CounterError && /positive integer or a function/.test(constructed.message));
      assert.equal(
        [...proxy.seen.values()].reduce((a, b) => a + b, 0),
        0,
        "not one request",
      );
    });

    it("a function that fails: its error reaches the first call; later, the last answer stays in use", async () => {
      const { client } = await throughProxy(server.endpoint);
      let t = 300 * W;
      let fail = true;
      const limiter = new RateLimiter(client, {
        limit: () => {
          if (fail) throw new Error("plans database down");
          return 4;
        },
        limitCacheMs: 1000,
        windowMs: W,
        now: () => t,
      });
      await assert.rejects(limiter.limit("u"), /plans database down/);
      fail = false;
      assert.equal((await limiter.limit("u")).limit, 4);
      fail = true;
      t += 2000;
      const r = await limiter.limit("u");
      assert.deepEqual([r.success, r.limit], [true, 4], "the cached answer is used while the function fails");
    });

    it("limitAll resolves each limiter's limit for its identifier", async () => {
      const { client } = await throughProxy(server.endpoint);
      const now = () => 400 * W + 7;
      const perUser = new RateLimiter(client, {
        name: "user",
        limit: (id) => (id === "pro" ? 5 : 2),
        windowMs: W,
        algorithm: "fixed-window",
        now,
      });
      const global = new RateLimiter(client, { name: "global", limit: 100, windowMs: W, now });
      let admitted = 0;
      while (
        (
          await limitAll([
            { limiter: perUser, identifier: "pro" },
            { limiter: global, identifier: "all" },
          ])
        ).success
      )
        admitted++;
      assert.equal(admitted, 5);
      const free = await limitAll([
        { limiter: perUser, identifier: "free" },
        { limiter: global, identifier: "all" },
      ]);
      assert.deepEqual([free.results[0]!.limit, free.results[0]!.remaining], [2, 1]);
      assert.equal((await global.remaining("all")).remaining, 94, "the global limit was charged for admitted calls only");
    });
  });
}
