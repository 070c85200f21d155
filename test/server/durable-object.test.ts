import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { Miniflare } from "miniflare";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import type { CounterClient } from "../../src/index.ts";
import { freshTable, servers } from "../support/harness.ts";
import { awsBindings, bundleWorker, call, persistDir, startMiniflare } from "../support/workers.ts";

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

interface Dead {
  key: string;
  table: string;
  amount: number;
  code: string;
}

/**
 * Storage records as version 0.1 and before wrote them: one slot per count attribute ("p:" pending delta, "b:"
 * write in progress with its seq), keyed by SHA-256 of the table layout and item key.
 */
function legacyRecords(table: string) {
  const layout = (attr: string) => [table, "id", null, attr] as const;
  const suffix = (attr: string, id: string) =>
    createHash("sha256")
      .update(`${JSON.stringify(layout(attr))}\n${id}`)
      .digest("hex");
  return {
    pending: (id: string, attr: string, d: number) => ({ [`p:${suffix(attr, id)}`]: { t: layout(attr), id, d: String(d) } }),
    sent: (id: string, attr: string, d: number, s: number) => ({ [`b:${suffix(attr, id)}`]: { t: layout(attr), id, d: String(d), s } }),
  };
}

/** An item's count attributes, read directly. */
async function counts(client: CounterClient, id: string, attrs: string[]): Promise<number[]> {
  return Promise.all(attrs.map((countAttribute) => client.get(id, { countAttribute })));
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
        // An hour's interval, so that nothing flushes before the storage is looked at; then the alarm is made due.
        const mf = worker({ endpoint: server.endpoint, table: client.table.tableName });
        try {
          const q = `style=${style}`;
          const added = await call<{ pending: number; alarm: number | null }>(mf, `/add?${q}&key=a&by=5&n=4`);
          assert.equal(added.pending, 1);
          assert.ok(added.alarm !== null, "an alarm is set");
          const state = await call<{ keys: string[] }>(mf, `/state?${q}`);
          assert.equal(state.keys.filter((k) => k.startsWith("p:")).length, 1, "the delta is in storage");
          await call(mf, `/schedule?${q}&ms=0`);
          const waited = await call<{ flushes: { keys: number; total: number }[] }>(mf, `/wait?${q}&flushes=1`);
          assert.deepEqual(waited.flushes[0], { keys: 1, requests: 1, total: 20 });
          assert.equal(await client.get("a"), 20);
          const after = await call<{ keys: string[]; pending: number }>(mf, `/state?${q}`);
          assert.equal(after.pending, 0);
          assert.deepEqual(
            after.keys.filter((k) => k.startsWith("p:") || k.startsWith("b:")),
            [],
            "storage is clean after the flush",
          );
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
          assert.deepEqual(
            after.keys.filter((k) => /^[pbx]:/.test(k)),
            [],
          );
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
      const state = await call<{ pending: number; dead: { key: string; table: string; amount: number; code: string }[]; keys: string[] }>(
        first,
        "/state",
      );
      assert.equal(state.pending, 0, "nothing waits behind the poison");
      assert.deepEqual(state.dead, [{ key: "bad", table: "No_Such_Table_x", amount: 4, code: "TableNotFound" }]);
      assert.equal(state.keys.filter((k) => k.startsWith("x:")).length, 1);
      for (let i = 0; i < 5; i++) assert.equal(await client.get(`good${i}`), 1);
      await first.dispose();
      const second = worker({ endpoint: server.endpoint, table: client.table.tableName, persist: dir });
      try {
        const restored = await call<{ dead: { key: string; code: string }[] }>(second, "/state");
        assert.deepEqual(
          restored.dead.map((d) => [d.key, d.code]),
          [["bad", "TableNotFound"]],
        );
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
        // A long backoff (ten minutes): an alarm brought forward by the adds would fire long before it.
        const backoff = await call<{ alarm: number }>(mf, "/schedule?ms=600000");
        const requests = proxy.seen.get("UpdateItem");
        const after = await call<{ alarm: number }>(mf, "/add?key=g&keys=20&n=20"); // far past maxKeys
        assert.equal(after.alarm, backoff.alarm, "the retry alarm stayed where the backoff put it");
        // Nothing to await here: the promise is that nothing happens. An alarm due now runs within milliseconds
        // (the positive control below); half a second later no flush has started.
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(proxy.seen.get("UpdateItem"), requests, "no flush started by the adds");
        assert.equal((await call<{ errors: string[] }>(mf, "/state")).errors.length, 1, "no flush failed since");
        // Positive control: once the alarm is due, workerd runs it and its writes reach the proxy.
        await call(mf, "/schedule?ms=0");
        await call(mf, "/wait?errors=2");
        assert.ok(proxy.seen.get("UpdateItem")! > requests!, "the due alarm flushed");
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

    it("two count attributes of one item (views, clicks) are both written by the alarm", async () => {
      const client = await freshTable(server.endpoint);
      const mf = worker({ endpoint: server.endpoint, table: client.table.tableName });
      try {
        await call(mf, "/add?key=page:/home&attr=views&by=1");
        await call(mf, "/add?key=page:/home&attr=clicks&by=1");
        await call(mf, "/add?key=page:/home&attr=views&by=2");
        await call(mf, "/alarm");
        assert.deepEqual(await counts(client, "page:/home", ["views", "clicks"]), [3, 1]);
        const state = await call<{ pending: number; dead: Dead[]; errors: string[] }>(mf, "/state");
        assert.deepEqual([state.pending, state.dead, state.errors], [0, [], []]);
      } finally {
        await mf.dispose();
      }
    });

    it("one attribute's write applied with its answer lost, the other attribute added to meanwhile: both exact once faults stop, no Conflict", async () => {
      const client = await freshTable(server.endpoint);
      const mf = worker({ endpoint: proxy.endpoint, table: client.table.tableName });
      try {
        // views: applied, but every answer is lost.
        proxy.setFault((info) => (info.operation === "UpdateItem" ? "drop-after" : "pass"));
        await call(mf, "/add?key=item&attr=views&by=2");
        await call(mf, "/alarm");
        assert.equal((await call<{ pending: number }>(mf, "/state")).pending, 1, "the write is still in doubt");
        assert.deepEqual(await counts(client, "item", ["views", "clicks"]), [2, 0], "applied once");
        // clicks gets a newer add while the write of views keeps failing (not applied this time).
        proxy.setFault((info) => (info.operation === "UpdateItem" && info.body.includes('"views"') ? "error500" : "pass"));
        await call(mf, "/add?key=item&attr=clicks&by=5");
        await call(mf, "/alarm");
        proxy.setFault(() => "pass");
        await call(mf, "/alarm");
        const state = await call<{ pending: number; dead: Dead[] }>(mf, "/state");
        assert.deepEqual(state.dead, [], "no dead letter (no Conflict)");
        assert.equal(state.pending, 0);
        assert.deepEqual(await counts(client, "item", ["views", "clicks"]), [2, 5], "each exactly once");
      } finally {
        proxy.setFault(() => "pass");
        await mf.dispose();
      }
    });

    it("total() counts a write DynamoDB applied but never confirmed (answer lost, retries failed) once", async () => {
      const client = await freshTable(server.endpoint);
      const mf = worker({ endpoint: proxy.endpoint, table: client.table.tableName });
      try {
        proxy.setFault((info) => (info.operation === "UpdateItem" ? "drop-after" : "pass"));
        await call(mf, "/add?key=t&by=5");
        await call(mf, "/alarm");
        const failed = await call<{ pending: number; errors: string[] }>(mf, "/state");
        assert.equal(failed.pending, 1, "the write is still unconfirmed");
        assert.ok(failed.errors.length >= 1, "the flush failed");
        proxy.setFault(() => "pass");
        assert.equal(await client.get("t"), 5, "DynamoDB applied it");
        assert.equal((await call<{ total: number }>(mf, "/total?key=t")).total, 5, "total() counts it once");
        await call(mf, "/add?key=t&by=1");
        assert.equal((await call<{ total: number }>(mf, "/total?key=t")).total, 6, "plus what is pending");
        await call(mf, "/alarm");
        assert.equal(await client.get("t"), 6);
        assert.equal((await call<{ total: number }>(mf, "/total?key=t")).total, 6);
      } finally {
        proxy.setFault(() => "pass");
        await mf.dispose();
      }
    });

    it("storage written by version 0.1 (a slot per count attribute, a write in progress with its seq) is written exactly once after a restart", async (t) => {
      const client = await freshTable(server.endpoint);
      const table = client.table.tableName;
      const dir = persistDir(t);
      const first = worker({ endpoint: server.endpoint, table, persist: dir });
      const { id } = await call<{ id: string }>(first, "/id");
      const marker = `dynacount:do-${id}`;
      const s1 = (Date.now() - 60_000) * 1000;
      const legacy = legacyRecords(table);
      // "a": views +3 was on the wire with s1 and applied (its answer never came back); then views +5 and clicks +4 were added.
      await client.send(
        "PutItem",
        { TableName: table, Item: { id: { S: "a" }, views: { N: "3" }, [marker]: { N: String(s1) } } },
        { idempotent: true },
      );
      // "c": views +2 and clicks +6 were on the wire together with s1, neither applied.
      await call(first, "/put", {
        ...legacy.sent("a", "views", 3, s1),
        ...legacy.pending("a", "views", 5),
        ...legacy.pending("a", "clicks", 4),
        ...legacy.sent("c", "views", 2, s1),
        ...legacy.sent("c", "clicks", 6, s1),
        "dynacount:meta": { seq: s1, failures: 1 },
      });
      await first.dispose();
      const second = worker({ endpoint: server.endpoint, table, persist: dir });
      try {
        assert.equal((await call<{ pending: number }>(second, "/state")).pending, 4, "the stored slots were found");
        await call(second, "/alarm");
        await call(second, "/alarm?times=2"); // nothing left: nothing written twice
        const state = await call<{ pending: number; dead: Dead[]; keys: string[] }>(second, "/state");
        assert.deepEqual(state.dead, [], "no dead letter (no Conflict)");
        assert.equal(state.pending, 0);
        assert.deepEqual(
          state.keys.filter((k) => /^[pbx]:/.test(k)),
          [],
          "storage is clean",
        );
        assert.deepEqual(await counts(client, "a", ["views", "clicks"]), [8, 4], "a: the applied write once, the later adds once");
        assert.deepEqual(await counts(client, "c", ["views", "clicks"]), [2, 6], "c: both attributes of the write in progress");
      } finally {
        await second.dispose();
      }
    });

    for (const applied of [false, true]) {
      // TODO (src bug, reported): the two writes of the item (one per seq) are sent concurrently; when the newer
      // one lands first, the older one finds a newer marker and is held as a Conflict dead letter (views +3
      // never written, or reported in doubt although it was applied). Writing an item's writes in seq order fixes it.
      it(`storage written by version 0.1 with one item's attributes on the wire under two seqs (the older ${applied ? "applied" : "not applied"}): each written exactly once after a restart, no Conflict`, async (t) => {
        const client = await freshTable(server.endpoint);
        const table = client.table.tableName;
        const dir = persistDir(t);
        const first = worker({ endpoint: server.endpoint, table, persist: dir });
        const { id } = await call<{ id: string }>(first, "/id");
        const s1 = (Date.now() - 60_000) * 1000;
        const s2 = s1 + 5_000_000;
        const legacy = legacyRecords(table);
        // Version 0.1: views +3 failed with s1; clicks +4 was added and sent with s2 while views was retried with s1.
        if (applied) {
          await client.send(
            "PutItem",
            { TableName: table, Item: { id: { S: "b" }, views: { N: "3" }, [`dynacount:do-${id}`]: { N: String(s1) } } },
            { idempotent: true },
          );
        }
        await call(first, "/put", {
          ...legacy.sent("b", "views", 3, s1),
          ...legacy.sent("b", "clicks", 4, s2),
          "dynacount:meta": { seq: s2, failures: 1 },
        });
        await first.dispose();
        // The network lets the newer write (clicks, s2) land first if both are on the wire at once: the write of
        // views waits at the proxy until clicks' answer is back (or 300 ms, when it is sent alone).
        let landed!: () => void;
        const clicksLanded = new Promise<void>((r) => (landed = r));
        proxy.setFault((info) => {
          if (info.operation !== "UpdateItem") return "pass";
          if (info.body.includes('"clicks"')) return { rewrite: (request) => ({ request, response: (answer) => (landed(), answer) }) };
          return { hold: Promise.race([clicksLanded, new Promise((r) => setTimeout(r, 300))]) };
        });
        const second = worker({ endpoint: proxy.endpoint, table, persist: dir });
        try {
          await call(second, "/alarm");
          proxy.setFault(() => "pass");
          await call(second, "/alarm");
          const state = await call<{ pending: number; dead: Dead[] }>(second, "/state");
          assert.deepEqual(state.dead, [], "no dead letter (no Conflict)");
          assert.equal(state.pending, 0);
          assert.deepEqual(await counts(client, "b", ["views", "clicks"]), [3, 4]);
        } finally {
          proxy.setFault(() => "pass");
          await second.dispose();
        }
      });
    }
  });
}
