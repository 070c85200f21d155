// ConcurrencyLimiter on both servers: at most `limit` holders across instances, leases that run out, fenced releases, renewals, lost answers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConcurrencyLimiter, CounterError, type CounterClient } from "../../src/index.ts";
import { rejection, servers, throughProxy } from "../support/harness.ts";

type Item = Record<string, { N?: string; S?: string }>;

async function itemOf(direct: CounterClient, name: string, id: string): Promise<Item | undefined> {
  const out = await direct.send<{ Item?: Item }>(
    "GetItem",
    { TableName: direct.table.tableName, Key: { id: { S: `concurrency:${name}:${id}` } }, ConsistentRead: true },
    { idempotent: true },
  );
  return out.Item;
}

/** Slots held in an item at `now`: expiry attributes still in the future. */
const held = (item: Item | undefined, now: number) =>
  Object.entries(item ?? {}).filter(([k, v]) => /^e\d+$/.test(k) && Number(v.N) > now).length;
const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

for (const server of await servers()) {
  describe(`ConcurrencyLimiter on ${server.name}`, () => {
    it("60 concurrent acquires over three instances with limit 5: exactly 5 hold a slot; the denied ones changed nothing", async () => {
      const { client, direct } = await throughProxy(server.endpoint, { timeoutMs: 30_000 });
      const now = 1_000_000;
      const instances = [0, 1, 2].map(() => new ConcurrencyLimiter(client, { limit: 5, now: () => now }));
      const slots = await Promise.all(Array.from({ length: 60 }, (_, i) => instances[i % 3]!.acquire("job")));
      assert.equal(slots.filter((s) => s.success).length, 5);
      assert.ok(
        slots.every((s) => !s.reason),
        "all answered by DynamoDB",
      );
      const item = await itemOf(direct, "default", "job");
      assert.equal(held(item, now), 5);
      assert.equal(Object.keys(item!).filter((k) => /^[he]\d+$/.test(k)).length, 10, "five slots of two attributes: nothing else grew");
      const denied = slots.find((s) => !s.success)!;
      assert.deepEqual([denied.remaining, denied.reset], [0, now + 30_000], "denied: when the first slot runs out");
      const before = await itemOf(direct, "default", "job");
      assert.equal((await instances[0]!.acquire("job")).success, false);
      assert.deepEqual(await itemOf(direct, "default", "job"), before, "a denied acquire leaves the item as it was");
    });

    it("release frees the slot for the next holder; a second release sends nothing", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      const limiter = new ConcurrencyLimiter(client, { limit: 2, now: () => 2_000_000 });
      const a = await limiter.acquire("r");
      const b = await limiter.acquire("r");
      assert.deepEqual([a.success, a.remaining, b.success, b.remaining], [true, 1, true, 0]);
      assert.equal((await limiter.acquire("r")).success, false);
      await a.release();
      const sent = total(proxy.seen);
      await a.release();
      assert.equal(total(proxy.seen), sent, "released twice: one request in all");
      assert.equal(await a.renew(), false, "a released slot cannot be renewed");
      const c = await limiter.acquire("r");
      assert.equal(c.success, true, "the released slot is taken again");
    });

    it("a holder that neither releases nor renews frees its slot after leaseMs, and its late release is fenced: it never frees the next holder's slot", async () => {
      const { client, direct } = await throughProxy(server.endpoint);
      let t = 3_000_000;
      const limiter = new ConcurrencyLimiter(client, { limit: 1, leaseMs: 1000, now: () => t });
      const crashed = await limiter.acquire("f");
      assert.deepEqual([crashed.success, crashed.reset], [true, t + 1000]);
      t += 999;
      assert.equal((await limiter.acquire("f")).success, false, "still held 1 ms before its lease ends");
      t += 1;
      const next = await limiter.acquire("f");
      assert.equal(next.success, true, "free once its lease ended");
      await crashed.release(); // late: the slot is next's now
      assert.equal(held(await itemOf(direct, "default", "f"), t), 1, "the late release freed nothing");
      assert.equal((await limiter.acquire("f")).success, false, "next still holds it");
      assert.equal(await crashed.renew(), false, "the crashed holder lost its slot");
      await next.release();
      assert.equal((await limiter.acquire("f")).success, true);
    });

    it("renew extends the lease by leaseMs from now; a slot renewed in time is never taken", async () => {
      const { client } = await throughProxy(server.endpoint);
      let t = 4_000_000;
      const limiter = new ConcurrencyLimiter(client, { limit: 1, leaseMs: 1000, now: () => t });
      const slot = await limiter.acquire("n");
      for (let i = 0; i < 5; i++) {
        t += 800;
        assert.equal(await slot.renew(), true);
        assert.equal(slot.reset, t + 1000);
        assert.equal((await limiter.acquire("n")).success, false, `held after ${(i + 1) * 800} ms`);
      }
      t += 1000;
      assert.equal((await limiter.acquire("n")).success, true, "taken once the last renewal ran out");
      assert.equal(await slot.renew(), false);
    });

    it("a renewal overtaken by a later one never moves the lease back: the slot stays held to the later renewal's end", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      let t = 4_500_000;
      const limiter = new ConcurrencyLimiter(client, { limit: 1, leaseMs: 1000, now: () => t });
      const slot = await limiter.acquire("o");
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      // The early renewal's request (its expiry is in the body) reaches DynamoDB only after the later one landed.
      proxy.setFault((info) => (info.body.includes(String(4_501_100)) ? { hold: gate } : "pass"));
      t += 100;
      const early = slot.renew();
      t += 500;
      assert.equal(await slot.renew(), true);
      open();
      assert.equal(await early, true, "the overtaken renewal still holds the slot");
      assert.equal(slot.reset, 4_501_600, "the later renewal's end");
      t = 4_501_599;
      assert.equal((await limiter.acquire("o")).success, false, "held until the later renewal runs out, not the early one");
      t = 4_501_600;
      assert.equal((await limiter.acquire("o")).success, true);
      assert.equal(await slot.renew(), false);
    });

    it("clocks: an instance whose clock runs S ms ahead takes a slot S ms before its lease ends, never earlier (the documented tolerance)", async () => {
      const { client } = await throughProxy(server.endpoint);
      let t = 5_000_000;
      const S = 300;
      const holder = new ConcurrencyLimiter(client, { limit: 1, leaseMs: 1000, now: () => t });
      const ahead = new ConcurrencyLimiter(client, { limit: 1, leaseMs: 1000, now: () => t + S });
      await holder.acquire("s");
      t += 1000 - S - 1;
      assert.equal((await ahead.acquire("s")).success, false, "exclusive for leaseMs − S");
      t += 1;
      assert.equal((await ahead.acquire("s")).success, true);
    });

    it("an expiry from a clock far ahead is written back: it cannot lock a slot for longer than leaseMs", async () => {
      const { client } = await throughProxy(server.endpoint);
      let t = 6_000_000;
      const future = new ConcurrencyLimiter(client, { limit: 1, leaseMs: 1000, now: () => t + 3_600_000 });
      const correct = new ConcurrencyLimiter(client, { limit: 1, leaseMs: 1000, now: () => t });
      await future.acquire("x"); // then crashes
      assert.equal((await correct.acquire("x")).success, false, "written back to leaseMs from now, not taken");
      t += 1000;
      assert.equal((await correct.acquire("x")).success, true, "free a lease later, not an hour later");
    });

    it("an acquire whose answer is lost is resent and holds one slot; a release whose answer is lost is resent harmlessly", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint, { retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 } });
      const now = 7_000_000;
      const limiter = new ConcurrencyLimiter(client, { limit: 3, now: () => now });
      let lose = 1;
      proxy.setFault((info) => (info.operation === "UpdateItem" && lose-- > 0 ? "drop-after" : "pass"));
      const slot = await limiter.acquire("lost");
      assert.equal(slot.success, true);
      assert.equal(proxy.forwarded.get("UpdateItem"), 2, "sent twice");
      assert.equal(held(await itemOf(direct, "default", "lost"), now), 1, "one slot held, not two");
      lose = 1;
      await slot.release();
      assert.equal(held(await itemOf(direct, "default", "lost"), now), 0);
    });

    it("failures follow failureMode; bad options and identifiers are Validation errors before any request", async () => {
      const { client, proxy } = await throughProxy(server.endpoint, { retry: { attempts: 1 } });
      proxy.setFault(() => "error500");
      const open = await new ConcurrencyLimiter(client, { limit: 1 }).acquire("o");
      assert.deepEqual([open.success, open.reason, open.error?.code], [true, "failOpen", "Service"]);
      assert.equal(await open.renew(), false, "a failOpen answer holds no slot");
      await open.release();
      const closed = await new ConcurrencyLimiter(client, { limit: 1, failureMode: "closed" }).acquire("o");
      assert.deepEqual([closed.success, closed.reason], [false, "failClosed"]);
      proxy.setFault(() => "pass");
      const seen = total(proxy.seen);
      for (const options of [{ limit: 0 }, { limit: 1001 }, { limit: 2, leaseMs: 0 }, { limit: 2, lease: 5 }]) {
        assert.throws(
          () => new ConcurrencyLimiter(client, options as never),
          (e: unknown) => e instanceof CounterError && e.code === "Validation",
        );
      }
      const error = await rejection(new ConcurrencyLimiter(client, { limit: 1 }).acquire(""));
      assert.ok(error instanceof CounterError && error.code === "Validation");
      assert.equal(total(proxy.seen), seen);
    });
  });
}
