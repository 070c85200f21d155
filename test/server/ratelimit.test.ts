// RateLimiter against both real servers: denied calls cost nothing, exact under concurrency, token bucket,
// refunds, leases across instances, bounded items, failures.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterError, RateLimiter, type CounterClient, type RateLimiterOptions } from "../../src/index.ts";
import { freePort } from "../support/servers.ts";
import { clientFor, servers, throughProxy, uniqueTable } from "../support/harness.ts";

const WINDOW = 60_000;
const ALGORITHMS = ["sliding-window", "fixed-window", "token-bucket"] as const;
type Item = Record<string, { N?: string; S?: string }>;

/** A clock the test moves. */
const clock = (start: number) => {
  const c = { now: start, fn: () => c.now };
  return c;
};

/** The item a limiter keeps for `id`: by default `ratelimit:<name>:<algorithm>:<windowMs>:<id>`. */
async function itemOf(direct: CounterClient, limiter: RateLimiter, id: string): Promise<Item | undefined> {
  const key = `ratelimit:${limiter.name}:${limiter.algorithm}:${limiter.windowMs}:${id}`;
  const out = await direct.send<{ Item?: Item }>(
    "GetItem",
    { TableName: direct.table.tableName, Key: { id: { S: key } }, ConsistentRead: true },
    { idempotent: true },
  );
  return out.Item;
}

const requests = (seen: Map<string, number>) => (seen.get("UpdateItem") ?? 0) + (seen.get("GetItem") ?? 0);

for (const server of await servers()) {
  describe(`RateLimiter on ${server.name}`, () => {
    for (const algorithm of ALGORITHMS) {
      it(`${algorithm}: limit 10 allows 10, remaining counts down, the 11th is denied, other identifiers are separate, later allowed`, async () => {
        const { client } = await throughProxy(server.endpoint);
        const t = clock(100 * WINDOW + 1000);
        const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, algorithm, now: t.fn });
        const remaining: number[] = [];
        for (let i = 0; i < 10; i++) {
          const r = await limiter.limit("user-1");
          assert.equal(r.success, true);
          await r.pending;
          remaining.push(r.remaining);
        }
        assert.deepEqual(remaining, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        const eleventh = await limiter.limit("user-1");
        assert.deepEqual([eleventh.success, eleventh.remaining], [false, 0]);
        assert.ok(eleventh.reset > t.now);
        assert.equal((await limiter.limit("user-2")).success, true, "other identifiers are separate");
        t.now += 2 * WINDOW;
        const later = await limiter.limit("user-1");
        assert.deepEqual([later.success, later.remaining], [true, 9]);
      });

      it(`${algorithm}: denied calls change nothing in DynamoDB and cost one request each`, async () => {
        const { client, direct, proxy } = await throughProxy(server.endpoint);
        const t = clock(200 * WINDOW + 5000);
        const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW, algorithm, cacheBlocked: false, now: t.fn });
        for (let i = 0; i < 5; i++) assert.equal((await limiter.limit("h")).success, true);
        const before = await itemOf(direct, limiter, "h");
        assert.ok(before, "the limiter's item exists");
        const sent = proxy.seen.get("UpdateItem") ?? 0;
        for (let i = 0; i < 20; i++) assert.equal((await limiter.limit("h")).success, false);
        assert.deepEqual(await itemOf(direct, limiter, "h"), before, "the item is exactly as before the denied calls");
        assert.equal((proxy.seen.get("UpdateItem") ?? 0) - sent, 20, "one conditional update per denied call");
        // DynamoDB Local returns the item with the failed condition; dynalite does not, so it is read once more.
        assert.equal(proxy.seen.get("GetItem") ?? 0, server.name === "dynalite" ? 20 : 0);
      });

      it(`${algorithm}: 200 concurrent calls with limit 50 admit exactly 50`, async () => {
        // A generous timeout: on a loaded machine, requests that time out are answered by failureMode ("open"
        // admits), which is not what this test is about.
        const { client } = await throughProxy(server.endpoint, { timeoutMs: 30_000 });
        const limiter = new RateLimiter(client, {
          limit: 50,
          windowMs: WINDOW,
          algorithm,
          cacheBlocked: false,
          now: () => 7 * WINDOW + 10,
        });
        const results = await Promise.all(Array.from({ length: 200 }, () => limiter.limit("burst")));
        assert.equal(results.filter((r) => r.success).length, 50);
        assert.equal((await limiter.remaining("burst")).remaining, 0);
      });
    }

    it("sliding window: hammering after a block does not carry into the next window", async () => {
      const { client } = await throughProxy(server.endpoint);
      const t = clock(300 * WINDOW);
      const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, cacheBlocked: false, now: t.fn });
      assert.equal((await limiter.limit("s", { cost: 10 })).remaining, 0);
      for (let i = 0; i < 50; i++) {
        t.now += 1000;
        assert.equal((await limiter.limit("s")).success, false);
      }
      // Half-way through the next window the previous one weighs 10 × 0.5 = 5: five more fit. Had the 50
      // denied calls counted, it would weigh 30 and deny.
      t.now = 301 * WINDOW + WINDOW / 2;
      const results = [];
      for (let i = 0; i < 6; i++) results.push((await limiter.limit("s")).success);
      assert.deepEqual(results, [true, true, true, true, true, false]);
    });

    it("sliding window: a denied call's reset is when a unit frees up, and the cache answers until then", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      const t = clock(400 * WINDOW);
      const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, now: t.fn });
      await limiter.limit("f", { cost: 10 });
      t.now = 401 * WINDOW; // the previous window weighs 10 × 1
      const denied = await limiter.limit("f");
      assert.equal(denied.success, false);
      // floor(10 × w) ≤ 9 once w < 1: a unit frees up just after the window starts; 10 % of it later, two.
      assert.ok(denied.reset > t.now && denied.reset <= t.now + WINDOW / 10, `reset ${denied.reset - t.now} ms later`);
      const sent = requests(proxy.seen);
      assert.equal((await limiter.limit("f")).reason, "cacheBlock");
      assert.equal(requests(proxy.seen), sent, "answered from memory");
      t.now = denied.reset;
      assert.equal((await limiter.limit("f")).success, true);
    });

    it("token bucket: bursts up to the limit, refills continuously, reset is when the next token comes", async () => {
      const { client } = await throughProxy(server.endpoint);
      const t = clock(500 * WINDOW + 123);
      const limiter = new RateLimiter(client, { limit: 10, windowMs: 10_000, algorithm: "token-bucket", now: t.fn });
      for (let i = 0; i < 10; i++) assert.equal((await limiter.limit("b")).success, true);
      const denied = await limiter.limit("b");
      assert.deepEqual([denied.success, denied.reset - t.now], [false, 1000], "one token a second");
      t.now += 999;
      assert.equal((await limiter.limit("b")).success, false);
      t.now += 1;
      const one = await limiter.limit("b");
      assert.deepEqual([one.success, one.remaining], [true, 0]);
      t.now += 5000;
      assert.equal((await limiter.limit("b", { cost: 5 })).success, true);
      assert.equal((await limiter.limit("b")).success, false);
      t.now += 60_000; // long idle: full, never more than the capacity
      const full = await limiter.limit("b");
      assert.deepEqual([full.success, full.remaining, full.reset - t.now], [true, 9, 1000]);
    });

    for (const algorithm of ALGORITHMS) {
      it(`${algorithm}: refund gives units back, never below zero use, never credit to an unused identifier`, async () => {
        const { client, direct } = await throughProxy(server.endpoint);
        const t = clock(600 * WINDOW + 10);
        const limiter = new RateLimiter(client, { limit: 10, windowMs: WINDOW, algorithm, now: t.fn });
        await limiter.limit("r", { cost: 4 });
        await limiter.refund("r", 3);
        assert.equal((await limiter.remaining("r")).remaining, 9);
        await limiter.refund("r", 5);
        assert.equal((await limiter.remaining("r")).remaining, 10, "no more than was used comes back");
        assert.equal((await limiter.limit("r", { cost: 10 })).success, true);
        assert.equal((await limiter.limit("r")).success, false);
        await limiter.refund("r", 2);
        const after = await limiter.limit("r", { cost: 2 });
        assert.equal(after.success, true, "a blocked identifier refunded is not answered from the cache");
        await limiter.refund("nobody", 5);
        assert.equal(await itemOf(direct, limiter, "nobody"), undefined, "nothing created for an identifier that used nothing");
        // A fresh limiter (another instance, nothing remembered) sees the same.
        const other = new RateLimiter(client, { limit: 10, windowMs: WINDOW, algorithm, now: t.fn });
        await other.refund("r", 100);
        assert.equal((await other.remaining("r")).remaining, 10);
      });
    }

    for (const algorithm of ["sliding-window", "fixed-window"] as const) {
      it(`${algorithm}: a refund without a result gives back to the window it was asked in, never to one that began while it was on its way`, async () => {
        const { client, proxy } = await throughProxy(server.endpoint);
        const t = clock(1200 * WINDOW + WINDOW - 10); // late in window 1200
        const options: RateLimiterOptions = { limit: 3, windowMs: WINDOW, algorithm, cacheBlocked: false, now: t.fn };
        const other = new RateLimiter(client, options);
        // An instance that never answered for the identifier: its refund has no result and nothing remembered.
        const refunder = new RateLimiter(client, options);
        // Its first request is held (a slow network) until window 1201 has begun and another instance has taken
        // all of it; then that request's condition fails and the refund tries again, in window 1201.
        let held = false;
        let filled: boolean | undefined;
        proxy.setFault((info) => {
          if (held || info.operation !== "UpdateItem" || !info.body.includes(":neg")) return "pass";
          held = true;
          return {
            hold: (async () => {
              t.now = 1201 * WINDOW + 10;
              filled = (await other.limit("late", { cost: 3 })).success;
            })(),
          };
        });
        await refunder.refund("late", 3);
        proxy.setFault(() => "pass");
        assert.deepEqual([held, filled], [true, true], "the refund's request was held while window 1201 filled up");
        // Units the refund gives back were taken before it was asked: window 1201 never had them.
        assert.equal((await other.limit("late")).success, false, "window 1201 admits no more than its limit");
        assert.equal((await other.remaining("late")).remaining, 0);
      });

      it(`${algorithm}: a refund without a result from a clock behind the item's gives back to the item's newer window, as that clock's calls count in it`, async () => {
        const { client } = await throughProxy(server.endpoint);
        const k = 1300;
        const options: RateLimiterOptions = { limit: 3, windowMs: WINDOW, algorithm, cacheBlocked: false };
        const ahead = new RateLimiter(client, { ...options, now: () => (k + 1) * WINDOW + 500 });
        // 500 ms behind: still in window k, while the item's newest window is k + 1.
        const lagging = () => new RateLimiter(client, { ...options, now: () => (k + 1) * WINDOW - 500 });
        assert.equal((await ahead.limit("skew", { cost: 2 })).success, true);
        assert.equal((await lagging().limit("skew")).success, true, "joins window k + 1: 3 of 3");
        assert.equal((await ahead.limit("skew")).success, false);
        // Another request or isolate of the lagging host: no result, nothing remembered.
        await lagging().refund("skew", 1);
        assert.equal((await ahead.limit("skew")).success, true, "the unit is back in window k + 1");
        assert.equal((await ahead.limit("skew")).success, false);
      });

      it(`${algorithm}: an item holds at most the windows it needs, whatever the call pattern`, async () => {
        const { client, direct, proxy } = await throughProxy(server.endpoint);
        const t = clock(1000 * WINDOW);
        const limiter = () => new RateLimiter(client, { limit: 5, windowMs: WINDOW, algorithm, now: t.fn });
        const shared = limiter();
        const sizes: number[] = [];
        // Every other window, then every tenth (longer than the span removed in the same request), each
        // through a fresh instance too (nothing remembered).
        for (const step of [2, 2, 2, 2, 10, 10, 3, 1, 1, 25]) {
          t.now += step * WINDOW;
          assert.equal((await shared.limit("g")).success, true);
          assert.equal((await limiter().limit("g")).success, true);
          const item = (await itemOf(direct, shared, "g"))!;
          sizes.push(Object.keys(item).filter((n) => /^w-?\d+$/.test(n)).length);
        }
        assert.ok(Math.max(...sizes) <= (algorithm === "sliding-window" ? 2 : 1), `window counts held: ${sizes.join(",")}`);
        // Two calls per step, plus one rewrite after each long gap (its failed check named the stale counts).
        const gaps = 3;
        assert.ok(requests(proxy.seen) <= 20 + gaps * (server.name === "dynalite" ? 2 : 1), `${requests(proxy.seen)} requests`);
      });
    }

    for (const algorithm of ALGORITHMS) {
      it(`${algorithm}: 8 instances × lease 20 over 3,000 calls: never over the limit, slack within the leases, ≤ 0.05 requests a call`, async () => {
        const { client, proxy } = await throughProxy(server.endpoint);
        const limit = 1000;
        const now = 700 * WINDOW + 10;
        const options: RateLimiterOptions = { limit, windowMs: WINDOW, algorithm, lease: 20, now: () => now };
        const instances = Array.from({ length: 8 }, () => new RateLimiter(client, options));
        const calls = Array.from({ length: 3000 }, (_, i) => instances[i % 8]!.limit("hot"));
        const results = await Promise.all(calls);
        const admitted = results.filter((r) => r.success).length;
        // The calls' requests, before the read below.
        const sent = requests(proxy.seen);
        const used = limit - (await new RateLimiter(client, options).remaining("hot")).remaining;
        assert.ok(admitted <= limit, `admitted ${admitted}`);
        assert.ok(used <= limit, `taken in DynamoDB ${used}`);
        assert.ok(used - admitted <= 8 * 20, `slack ${used - admitted} (unused leased units) within 8 × 20`);
        assert.ok(admitted >= limit - 8 * 20, `admitted ${admitted}`);
        assert.ok(sent <= 0.05 * 3000, `${sent} requests for 3,000 calls`);
        assert.ok(results.filter((r) => r.reason === "lease").length >= admitted - 150);
      });
    }

    it("a lease never outlives its window: the next window asks DynamoDB again", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      const t = clock(800 * WINDOW + 10);
      const limiter = new RateLimiter(client, { limit: 100, windowMs: WINDOW, algorithm: "fixed-window", lease: 10, now: t.fn });
      // Leases follow demand: 1 unit (what the first call needs), then 4, then 10 (the most).
      const reasons = [];
      for (let i = 0; i < 6; i++) reasons.push((await limiter.limit("l")).reason ?? "request");
      assert.deepEqual(reasons, ["request", "request", "lease", "lease", "lease", "request"]);
      assert.equal((await limiter.remaining("l")).remaining, 100 - 15);
      const sent = requests(proxy.seen);
      t.now += WINDOW;
      const next = await limiter.limit("l");
      assert.deepEqual([next.success, next.reason, requests(proxy.seen) - sent], [true, undefined, 1]);
      assert.equal((await limiter.remaining("l")).remaining, 99, "the new window counts only what its first call took");
    });

    for (const algorithm of ALGORITHMS) {
      /** A limiter whose client resends ambiguous failures (retry.atLeastOnce), behind a proxy that loses answers on demand. */
      const lossy = async (t: ReturnType<typeof clock>) => {
        const { client, proxy } = await throughProxy(server.endpoint, {
          retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 2, atLeastOnce: true },
        });
        const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW, algorithm, cacheBlocked: false, now: t.fn });
        // `lose()`: the next UpdateItem reaches DynamoDB and is applied, but its answer is lost (the connection drops).
        let armed = false;
        proxy.setFault((info) => (info.operation === "UpdateItem" && armed ? ((armed = false), "drop-after") : "pass"));
        const updates = () => proxy.forwarded.get("UpdateItem") ?? 0;
        const admitUntilDenied = async () => {
          let admitted = 0;
          for (let i = 0; i < 20; i++) {
            if (!(await limiter.limit("lossy")).success) return admitted;
            admitted++;
          }
          throw new Error("never denied");
        };
        return { limiter, updates, admitUntilDenied, lose: () => (armed = true) };
      };

      it(`${algorithm}: with retry.atLeastOnce, a take whose answer is lost reaches DynamoDB once and counts once`, async () => {
        const { limiter, updates, admitUntilDenied, lose } = await lossy(clock(900 * WINDOW + 10));
        lose();
        const sent = updates();
        const lost = await limiter.limit("lossy");
        assert.equal(updates() - sent, 1, "the take whose answer was lost reached DynamoDB once: not resent");
        assert.equal(lost.error?.ambiguous, true, "reported as ambiguous");
        const admitted = (lost.success ? 1 : 0) + (await admitUntilDenied());
        assert.equal(admitted, 5, "the lost take counted once: the window admitted exactly its limit");
      });

      it(`${algorithm}: with retry.atLeastOnce, a refund whose answer is lost reaches DynamoDB once: a window of 5 with one unit refunded admits 6 calls, not 7`, async () => {
        const { limiter, updates, admitUntilDenied, lose } = await lossy(clock(910 * WINDOW + 10));
        assert.equal(await admitUntilDenied(), 5);
        lose();
        const sent = updates();
        const refund = await limiter.refund("lossy", 1).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.equal(updates() - sent, 1, "the refund whose answer was lost reached DynamoDB once: not resent");
        assert.ok(refund instanceof CounterError && refund.ambiguous, `the refund reports its lost answer as ambiguous: ${String(refund)}`);
        assert.equal(await admitUntilDenied(), 1, "one unit given back (once), so one more call fits");
      });

      it(`${algorithm}: an instance that loses every condition race denies (failClosed, Conflict) even with failureMode "open": it never admits a call nobody counted`, async () => {
        const { client, proxy } = await throughProxy(server.endpoint);
        const now = 950 * WINDOW + 10;
        const options: RateLimiterOptions = {
          limit: 5,
          windowMs: WINDOW,
          algorithm,
          failureMode: "open",
          cacheBlocked: false,
          now: () => now,
        };
        const limiter = new RateLimiter(client, options);
        assert.equal((await limiter.limit("race")).success, true, "the item exists, one unit used");
        // From now on another instance wins every race: each conditional update fails although the item, as
        // DynamoDB returns it, still has room (the condition is made to fail by an extra clause on the key,
        // which every existing item has).
        proxy.setFault((info) =>
          info.operation === "UpdateItem"
            ? {
                rewrite: (request) => {
                  const body = JSON.parse(request) as { ConditionExpression: string; ExpressionAttributeNames: Record<string, string> };
                  body.ConditionExpression = `(${body.ConditionExpression}) AND attribute_not_exists(#lostRace)`;
                  body.ExpressionAttributeNames["#lostRace"] = "id";
                  return { request: JSON.stringify(body) };
                },
              }
            : "pass",
        );
        const sent = proxy.forwarded.get("UpdateItem") ?? 0;
        const r = await limiter.limit("race");
        const rounds = (proxy.forwarded.get("UpdateItem") ?? 0) - sent;
        assert.ok(rounds >= 2, `it tried again after losing a race (${rounds} requests)`);
        assert.deepEqual([r.success, r.reason, r.error?.code], [false, "failClosed", "Conflict"]);
        proxy.setFault(() => "pass");
        assert.equal((await new RateLimiter(client, options).remaining("race")).remaining, 4, "nothing was counted for the denied call");
      });
    }

    it("items carry a TTL in epoch seconds, in the future; remaining() and reset() work", async () => {
      const { client, direct } = await throughProxy(server.endpoint);
      const now = Date.now();
      const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW, now: () => now });
      await limiter.limit("ttl", { cost: 2 });
      const expiresAt = Number((await itemOf(direct, limiter, "ttl"))!.expiresAt?.N);
      assert.ok(expiresAt > now / 1000, "in the future");
      assert.ok(expiresAt <= (now + 2 * WINDOW) / 1000 + 1, "within two windows");
      assert.ok(Number.isInteger(expiresAt) && expiresAt < 1e11, "seconds, not milliseconds");
      assert.equal((await limiter.remaining("ttl")).remaining, 3);
      assert.equal((await limiter.remaining("ttl")).remaining, 3, "remaining() does not count");
      await limiter.reset("ttl");
      assert.equal((await limiter.remaining("ttl")).remaining, 5);
    });
  });
}

describe("RateLimiter when DynamoDB fails", () => {
  it("a missing table is thrown, not failed open: it is a setup error", async () => {
    const [server] = await servers();
    const limiter = new RateLimiter(clientFor(server!.endpoint, { tableName: uniqueTable() }), { limit: 5, windowMs: WINDOW });
    await assert.rejects(limiter.limit("x"), (e: unknown) => e instanceof CounterError && e.code === "TableNotFound");
  });

  it("refused credentials are thrown (AccessDenied), whatever the failureMode: they are a setup error", async () => {
    const local = (await servers()).find((s) => s.name === "ddblocal")!;
    const client = clientFor(local.endpoint, { credentials: { accessKeyId: "not_a-valid/key", secretAccessKey: "x".repeat(40) } });
    const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW, failureMode: "open" });
    await assert.rejects(limiter.limit("x"), (e: unknown) => e instanceof CounterError && e.code === "AccessDenied");
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

  it("bad input is a Validation error before any request", async () => {
    const [server] = await servers();
    const { client, proxy } = await throughProxy(server!.endpoint);
    const limiter = new RateLimiter(client, { limit: 5, windowMs: WINDOW });
    for (const call of [
      () => limiter.limit("x", { cost: 0 }),
      () => limiter.limit("x", { cost: 6 }),
      () => limiter.limit("x", { cost: 2, rate: 3 }),
      () => limiter.limit("x", { cots: 2 } as never),
      () => limiter.limit(""),
      () => limiter.refund("x", -1),
    ]) {
      await assert.rejects(call(), (e: unknown) => e instanceof CounterError && e.code === "Validation");
    }
    assert.throws(
      () => new RateLimiter(client, { limit: 5, windowMs: WINDOW, lease: 0 }),
      (e: unknown) => e instanceof CounterError && e.code === "Validation",
    );
    assert.throws(
      () => new RateLimiter(client, { limit: 5, windowMs: WINDOW, algorithm: "leaky" as never }),
      (e: unknown) => e instanceof CounterError && e.code === "Validation",
    );
    assert.equal(requests(proxy.seen), 0);
    assert.equal((await limiter.limit("x", { rate: 5 })).remaining, 0, "rate is cost's other name");
  });
});
