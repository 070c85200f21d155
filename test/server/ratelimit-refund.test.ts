// Refunds and leases that must not create quota, on both real servers (found by review; the simulator checks the
// same: refunds of failOpen results and of buckets refilled since, and a lease unit handed back across windows).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterError, limitAll, RateLimiter } from "../../src/index.ts";
import { freshTable, rejection, servers, throughProxy } from "../support/harness.ts";

const throttled = { status: 400, type: "com.amazonaws.dynamodb.v20120810#ThrottlingException", message: "slow down" };

for (const server of await servers()) {
  describe(`Refunds and leases on ${server.name}`, () => {
    for (const algorithm of ["fixed-window", "sliding-window", "token-bucket"] as const) {
      it(`${algorithm}: refunding a failOpen result gives nothing back (it took nothing)`, async () => {
        const { direct, proxy, client } = await throughProxy(server.endpoint, { retry: { attempts: 1 } });
        const options = { limit: 5, windowMs: 60_000, algorithm } as const;
        const a = new RateLimiter(direct, options);
        const b = new RateLimiter(client, options);
        let admitted = 0;
        for (let i = 0; i < 4; i++) if ((await a.limit("id")).success) admitted++;
        proxy.setFault((r) => (r.operation === "UpdateItem" ? throttled : "pass"));
        const open = await b.limit("id");
        assert.deepEqual([open.success, open.reason], [true, "failOpen"]);
        proxy.setFault(() => "pass");
        await b.refund("id", 1, { result: open }); // its work failed: the README's pattern
        for (let i = 0; i < 5; i++) if ((await a.limit("id")).success) admitted++;
        assert.equal(admitted, 5, "B's failOpen call took nothing, so its refund gave nothing");
      });
    }

    it("token bucket: a refund gives back only the tokens of that take not refilled since", async () => {
      const client = await freshTable(server.endpoint);
      let t = 1_700_000_000_000;
      const bucket = new RateLimiter(client, { limit: 10, windowMs: 1000, algorithm: "token-bucket", now: () => t, cacheBlocked: false });
      const taken = await bucket.limit("u", { cost: 10 });
      assert.equal(taken.success, true);
      t += 5000; // refilled long ago
      let admitted = 0;
      for (let i = 0; i < 10; i++) if ((await bucket.limit("u")).success) admitted++;
      await bucket.refund("u", 10, { result: taken }); // stale: its tokens are back already
      for (let i = 0; i < 10; i++) if ((await bucket.limit("u")).success) admitted++;
      assert.equal(admitted, 10, "a burst of at most 10");
      // A refund soon after its take still gives back what is missing: 4 of 10 tokens after 600 ms.
      const fresh = await bucket.limit("v", { cost: 10 });
      t += 600;
      await bucket.refund("v", 10, { result: fresh });
      let after = 0;
      for (let i = 0; i < 12; i++) if ((await bucket.limit("v")).success) after++;
      assert.equal(after, 10, "6 refilled + 4 given back");
    });

    it("a unit a denied limitAll hands back goes to its own lease, not to one taken in the next window", async () => {
      const { direct, proxy, client } = await throughProxy(server.endpoint);
      const W = 60_000;
      const k = Math.floor(Date.now() / W) + 10;
      let t = k * W + W - 50;
      const base = { algorithm: "fixed-window", windowMs: W, cacheBlocked: false, now: () => t } as const;
      const leased = new RateLimiter(direct, { ...base, name: "leased", limit: 10, lease: 5 });
      const filler = new RateLimiter(direct, { ...base, name: "leased", limit: 10 });
      const other = new RateLimiter(client, { ...base, name: "other", limit: 1, now: () => k * W + W - 50 });
      await leased.limit("p");
      await leased.limit("p"); // a lease: units held for window k
      await other.limit("p"); // the other limit is used up
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let holding = false;
      // The other limit's request (an UpdateItem, or a transaction on servers that have them) waits at the proxy.
      proxy.setFault((r) => (r.body.includes("ratelimit:other:") ? ((holding = true), { hold: held }) : "pass"));
      const denied = limitAll([
        { limiter: leased, identifier: "p" }, // one unit from the lease, in window k
        { limiter: other, identifier: "p" },
      ]);
      while (!holding) await new Promise((r) => setImmediate(r));
      t = (k + 1) * W + 1; // window k + 1: a new lease while the other limit's answer is held
      const inNext: boolean[] = [(await leased.limit("p")).success];
      release();
      assert.equal((await denied).success, false);
      for (let i = 0; i < 20; i++) inNext.push((await leased.limit("p")).success);
      for (let i = 0; i < 20; i++) inNext.push((await filler.limit("p")).success);
      assert.equal(inNext.filter(Boolean).length, 10, "window k + 1 admits its limit, no more");
    });

    it("refund: a result that is not limit()'s is a Validation error", async () => {
      const client = await freshTable(server.endpoint);
      const limiter = new RateLimiter(client, { limit: 5, windowMs: 1000, algorithm: "token-bucket" });
      for (const result of [null, {}, { reset: "soon" }, { reset: Number.NaN }]) {
        const error = await rejection(limiter.refund("u", 1, { result: result as never }));
        assert.ok(error instanceof CounterError && error.code === "Validation", String(error));
      }
    });
  });
}
