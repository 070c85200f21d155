import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import type { Miniflare } from "miniflare";
import { startFaultProxy, type FaultProxy } from "./support/fault-proxy.ts";
import { freshTable, servers } from "./support/harness.ts";
import { awsBindings, bundleWorker, startMiniflare } from "./support/workers.ts";

const script = await bundleWorker("test/workers/buffer-worker.ts");

interface Options {
  endpoint: string;
  table: string;
  maxKeys?: number;
  flushMs?: number;
  persist?: string;
}

function worker(o: Options): Miniflare {
  return startMiniflare(script, {
    durableObjects: { COUNTER: "TestCounter", LEGACY: "LegacyCounter" },
    bindings: { ...awsBindings(o.endpoint), TABLE: o.table, MAX_KEYS: String(o.maxKeys ?? 100), FLUSH_MS: String(o.flushMs ?? 3_600_000) },
    ...(o.persist ? { durableObjectsPersist: o.persist } : {}),
  });
}

/** A folder for the objects' storage across miniflare instances, removed when the test `t` ends. */
function persistDir(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), "dynacount-do-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function call<T = Record<string, unknown>>(mf: Miniflare, route: string): Promise<T> {
  const res = await mf.dispatchFetch(`http://worker${route}`);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as T;
}

for (const server of await servers()) {
  describe(`DurableCounterBuffer in workerd on ${server.name}`, { timeout: 120_000 }, () => {
    let proxy: FaultProxy;
    before(async () => {
      proxy = await startFaultProxy(server.endpoint);
    });
    after(() => proxy.close());

    for (const style of ["class", "legacy"] as const) {
      it(`${style} style: adds are stored before add resolves, and the alarm flushes them`, async () => {
        const client = await freshTable(server.endpoint);
        const mf = worker({ endpoint: server.endpoint, table: client.table.tableName, flushMs: 50 });
        try {
          const q = `style=${style}`;
          const added = await call<{ pending: number; alarm: number | null }>(mf, `/add?${q}&key=a&by=5&n=4`);
          assert.equal(added.pending, 1);
          assert.ok(added.alarm !== null, "an alarm is set");
          const state = await call<{ keys: string[] }>(mf, `/state?${q}`);
          assert.equal(state.keys.filter((k) => k.startsWith("p:")).length, 1, "the delta is in storage");
          const waited = await call<{ flushes: { keys: number; total: number }[] }>(mf, `/wait?${q}&flushes=1`);
          assert.deepEqual(waited.flushes[0], { keys: 1, requests: 1, total: 20 });
          assert.equal(await client.get("a"), 20);
          const after = await call<{ keys: string[]; pending: number }>(mf, `/state?${q}`);
          assert.equal(after.pending, 0);
          assert.deepEqual(after.keys.filter((k) => k.startsWith("p:") || k.startsWith("b:")), [], "storage is clean after the flush");
          assert.equal((await call<{ total: number }>(mf, `/total?${q}&key=a`)).total, 20);
        } finally {
          await mf.dispose();
        }
      });
    }

    it("total(key) is DynamoDB's value plus what is pending", async () => {
      const client = await freshTable(server.endpoint);
      await client.increment("t", { by: 100 });
      const mf = worker({ endpoint: server.endpoint, table: client.table.tableName });
      try {
        await call(mf, "/add?key=t&by=7&n=3");
        assert.equal((await call<{ total: number }>(mf, "/total?key=t")).total, 121);
        assert.equal(await client.get("t"), 100, "nothing flushed yet");
      } finally {
        await mf.dispose();
      }
    });

    it("reaching maxKeys brings the alarm forward to now", async () => {
      const client = await freshTable(server.endpoint);
      const mf = worker({ endpoint: server.endpoint, table: client.table.tableName, maxKeys: 10, flushMs: 3_600_000 });
      try {
        const first = await call<{ alarm: number }>(mf, "/add?key=x&keys=5&n=5");
        assert.ok(first.alarm > Date.now() + 3_000_000, "an hour away while under maxKeys");
        const second = await call<{ alarm: number }>(mf, "/add?key=y&keys=5&n=5");
        assert.ok(second.alarm <= Date.now(), "due now at maxKeys");
        const waited = await call<{ flushes: { keys: number }[] }>(mf, "/wait?flushes=1");
        assert.equal(waited.flushes[0]!.keys, 10);
        assert.equal(await client.get("y4"), 1);
      } finally {
        await mf.dispose();
      }
    });

    it("pending adds survive disposing miniflare and are flushed exactly once by the next instance", async (t) => {
      const client = await freshTable(server.endpoint);
      const dir = persistDir(t);
      const first = worker({ endpoint: server.endpoint, table: client.table.tableName, persist: dir });
      await call(first, "/add?key=p&by=3&n=10&keys=4");
      await first.dispose(); // before any flush: the hour-long interval has not passed
      assert.equal(await client.get("p0"), 0);
      const second = worker({ endpoint: server.endpoint, table: client.table.tableName, persist: dir, flushMs: 50 });
      try {
        const state = await call<{ pending: number; alarm: number | null }>(second, "/state");
        assert.equal(state.pending, 4, "the new instance found the stored deltas");
        assert.ok(state.alarm !== null, "and the stored alarm");
        await call(second, "/schedule?ms=0"); // due now: workerd fires it
        await call(second, "/wait?flushes=1");
        assert.deepEqual([await client.get("p0"), await client.get("p1"), await client.get("p2"), await client.get("p3")], [9, 9, 6, 6]);
        await call(second, "/alarm?times=2"); // nothing left: no double count
        assert.equal(await client.get("p0"), 9);
      } finally {
        await second.dispose();
      }
    });

    it("restarted in the middle of a flush (its writes landed, the answers never came back): the next instance counts nothing twice", async (t) => {
      const client = await freshTable(server.endpoint);
      const dir = persistDir(t);
      let release!: () => void;
      const hold = new Promise<void>((r) => (release = r));
      let arrived!: () => void;
      const reached = new Promise<void>((r) => (arrived = r));
      let writes = 0;
      proxy.setFault((info) => (info.operation === "UpdateItem" ? (++writes === 3 && arrived(), { hold }) : "pass"));
      try {
        const first = worker({ endpoint: proxy.endpoint, table: client.table.tableName, persist: dir });
        await call(first, "/add?key=m&by=2&n=9&keys=3");
        await call(first, "/schedule?ms=0"); // workerd runs the alarm, whose writes the proxy holds
        await reached; // all three writes are in flight
        await first.dispose(); // the object dies mid-flush
        release(); // ...and its writes reach DynamoDB after all
        await proxy.idle();
        for (let i = 0; i < 3; i++) assert.equal(await client.get(`m${i}`), 6, "applied once by the dead instance");
        const second = worker({ endpoint: server.endpoint, table: client.table.tableName, persist: dir, flushMs: 50 });
        try {
          const state = await call<{ pending: number; keys: string[] }>(second, "/state");
          assert.equal(state.pending, 3, "the writes in progress were found in storage");
          assert.equal(state.keys.filter((k) => k.startsWith("b:")).length, 3);
          await call(second, "/schedule?ms=0");
          await call(second, "/wait?flushes=1");
          for (let i = 0; i < 3; i++) assert.equal(await client.get(`m${i}`), 6, "and not again");
          const after = await call<{ keys: string[]; pending: number }>(second, "/state");
          assert.equal(after.pending, 0);
          assert.deepEqual(after.keys.filter((k) => /^[pbx]:/.test(k)), []);
        } finally {
          await second.dispose();
        }
      } finally {
        proxy.setFault(() => "pass");
      }
    });

    it("a poison entry becomes a stored dead letter (kept across restarts) while every other key is written", async (t) => {
      const client = await freshTable(server.endpoint);
      const dir = persistDir(t);
      const first = worker({ endpoint: server.endpoint, table: client.table.tableName, persist: dir });
      await call(first, "/add?key=bad&by=4&table=No_Such_Table_x");
      await call(first, "/add?key=good&n=5&keys=5");
      await call(first, "/alarm");
      const state = await call<{ pending: number; dead: { key: string; table: string; amount: number; code: string }[]; keys: string[] }>(first, "/state");
      assert.equal(state.pending, 0, "nothing waits behind the poison");
      assert.deepEqual(state.dead, [{ key: "bad", table: "No_Such_Table_x", amount: 4, code: "TableNotFound" }]);
      assert.equal(state.keys.filter((k) => k.startsWith("x:")).length, 1);
      for (let i = 0; i < 5; i++) assert.equal(await client.get(`good${i}`), 1);
      await first.dispose();
      const second = worker({ endpoint: server.endpoint, table: client.table.tableName, persist: dir });
      try {
        const restored = await call<{ dead: { key: string; code: string }[] }>(second, "/state");
        assert.deepEqual(restored.dead.map((d) => [d.key, d.code]), [["bad", "TableNotFound"]]);
      } finally {
        await second.dispose();
      }
    });

    it("while a failed flush backs off, reaching maxKeys does not bring the alarm forward", async () => {
      const client = await freshTable(server.endpoint);
      proxy.setFault(() => "throttle");
      const mf = worker({ endpoint: proxy.endpoint, table: client.table.tableName, maxKeys: 5, flushMs: 3_600_000 });
      try {
        await call(mf, "/add?key=f&keys=5&n=5"); // maxKeys: the alarm is due now
        await call(mf, "/wait?errors=1");
        const backoff = await call<{ alarm: number }>(mf, "/state");
        const requests = proxy.seen.get("UpdateItem");
        const after = await call<{ alarm: number }>(mf, "/add?key=g&keys=20&n=20"); // far past maxKeys
        assert.equal(after.alarm, backoff.alarm, "the retry alarm stayed where the backoff put it");
        assert.equal(proxy.seen.get("UpdateItem"), requests, "no flush started by the adds");
      } finally {
        proxy.setFault(() => "pass");
        await mf.dispose();
      }
    });

    it("with DynamoDB unreachable the alarm keeps rescheduling, then flushes everything", async () => {
      const client = await freshTable(server.endpoint);
      proxy.setFault(() => "reset");
      const mf = worker({ endpoint: proxy.endpoint, table: client.table.tableName, flushMs: 20 });
      try {
        await call(mf, "/add?key=u&n=20&keys=5");
        const down = await call<{ errors: string[]; pending: number }>(mf, "/wait?errors=4"); // four alarms in a row failed
        assert.equal(down.pending, 5);
        assert.match(down.errors[0]!, /^Network/);
        const state = await call<{ alarm: number | null }>(mf, "/state");
        assert.ok(state.alarm !== null, "a retry alarm is set");
        proxy.setFault(() => "pass");
        const up = await call<{ flushes: { keys: number; total: number }[]; pending: number }>(mf, "/wait?flushes=1");
        assert.equal(up.pending, 0);
        for (let i = 0; i < 5; i++) assert.equal(await client.get(`u${i}`), 4);
      } finally {
        proxy.setFault(() => "pass");
        await mf.dispose();
      }
    });

    it("an alarm run again for a batch already applied does not double-count", async () => {
      const client = await freshTable(server.endpoint);
      // Every write reaches DynamoDB but its answer is lost: the batch is applied, yet the flush fails.
      proxy.setFault((info) => (info.operation === "UpdateItem" ? "drop-after" : "pass"));
      const mf = worker({ endpoint: proxy.endpoint, table: client.table.tableName });
      try {
        await call(mf, "/add?key=d&by=2&n=6&keys=3");
        await call(mf, "/alarm");
        const failed = await call<{ errors: string[]; pending: number }>(mf, "/state");
        assert.equal(failed.pending, 3, "the batch is still stored");
        assert.ok(failed.errors.length >= 1);
        for (let i = 0; i < 3; i++) assert.equal(await client.get(`d${i}`), 4, "applied once already");
        proxy.setFault(() => "pass");
        await call(mf, "/alarm?times=2"); // the same batch, twice, concurrently
        assert.equal((await call<{ pending: number }>(mf, "/state")).pending, 0);
        for (let i = 0; i < 3; i++) assert.equal(await client.get(`d${i}`), 4, "and not again");
      } finally {
        proxy.setFault(() => "pass");
        await mf.dispose();
      }
    });
  });
}
