// DurableCounterBuffer in real workerd (miniflare) under a lasting failure, on both real servers: one stored
// dead letter per key, amounts summed, warned once per key with keys escaped, the same after a restart (issue 26).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Miniflare } from "miniflare";
import { clientFor, freshTable, servers, uniqueTable } from "../support/harness.ts";
import { awsBindings, bundleWorker, call, persistDir, startMiniflare } from "../support/workers.ts";

const script = await bundleWorker("test/workers/hostile-worker.ts");

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

interface State {
  pending: number;
  keys: string[];
  dead: { key: string; table: string; amount: number; code: string }[];
  warnings: string[];
}

function worker(endpoint: string, table: string, persist: string): Miniflare {
  return startMiniflare(script, {
    durableObjects: { HOSTILE: "HostileCounter" },
    bindings: { ...awsBindings(endpoint), TABLE: table },
    durableObjectsPersist: persist,
  });
}

const deadRecords = (state: State) => state.keys.filter((k) => k.startsWith("x:"));

for (const server of await servers()) {
  describe(`DurableCounterBuffer in workerd under a lasting failure on ${server.name}`, { timeout: 180_000 }, () => {
    it("a key that keeps failing is one stored dead letter (one x: record), amounts summed, warned once, also after a restart; retryDeadLetters writes each total once", async (t) => {
      const client = await freshTable(server.endpoint);
      const missing = uniqueTable("missing");
      const dir = persistDir(t);
      const keys = ["a", "b", "c", "line\nAccessDenied: forged", "ls\u2028forged"];
      const FLUSHES = 10;
      const first = worker(server.endpoint, client.table.tableName, dir);
      try {
        for (let f = 0; f < FLUSHES; f++) {
          await call(first, "/add", { keys, by: 2, table: missing });
          const flushed = await call<{ result?: { keys: number; deadLetters?: number }; error?: string }>(first, "/flush");
          assert.equal(flushed.error, undefined, "dead letters do not fail a flush");
          assert.equal(flushed.result?.keys, 0);
        }
        const state = await call<State>(first, "/state");
        assert.equal(state.pending, 0);
        assert.equal(state.dead.length, keys.length, `one held letter per key, not one per key and flush (${state.dead.length})`);
        assert.equal(deadRecords(state).length, keys.length, `one x: record per key in storage (${deadRecords(state).length})`);
        assert.deepEqual(
          state.dead.map((d) => [d.key, d.amount, d.code]).sort(),
          keys.map((k) => [k, 2 * FLUSHES, "TableNotFound"]).sort(),
        );
        const warned = state.warnings.filter((w) => w.startsWith("dynacount:"));
        assert.equal(warned.length, keys.length, `warned once per key and failure code (${warned.length} lines)`);
        for (const line of warned) assert.doesNotMatch(line, CONTROL, `a raw control character in ${JSON.stringify(line)}`);
      } finally {
        await first.dispose();
      }

      // A new incarnation loads the letters from storage: still one per key, with their sums.
      const second = worker(server.endpoint, client.table.tableName, dir);
      try {
        const restored = await call<State>(second, "/state");
        assert.deepEqual(restored.dead.map((d) => [d.key, d.amount]).sort(), keys.map((k) => [k, 2 * FLUSHES]).sort());
        assert.equal(deadRecords(restored).length, keys.length);
        // Failing again after the restart adds to the same letters and records.
        await call(second, "/add", { keys, by: 1, table: missing });
        await call(second, "/flush");
        const again = await call<State>(second, "/state");
        assert.equal(deadRecords(again).length, keys.length);
        assert.deepEqual(again.dead.map((d) => [d.key, d.amount]).sort(), keys.map((k) => [k, 2 * FLUSHES + 1]).sort());

        // The table created, each key's total is written once and the records are gone.
        const table = clientFor(server.endpoint, { tableName: missing });
        await table.createTable();
        assert.equal((await call<{ retried: number }>(second, "/retry")).retried, keys.length);
        const written = await call<{ result?: { keys: number; requests: number; total: number }; error?: string }>(second, "/flush");
        assert.equal(written.error, undefined);
        assert.deepEqual(written.result && [written.result.keys, written.result.requests, written.result.total], [
          keys.length,
          keys.length,
          keys.length * (2 * FLUSHES + 1),
        ]);
        for (const key of keys) assert.equal(await table.get(key), 2 * FLUSHES + 1, JSON.stringify(key));
        const clean = await call<State>(second, "/state");
        assert.deepEqual([clean.dead.length, deadRecords(clean).length, clean.pending], [0, 0, 0]);
      } finally {
        await second.dispose();
      }
    });

    it("several stored dead letters of one key (written before letters were merged) load as one, and all their records go when it does", async (t) => {
      const client = await freshTable(server.endpoint);
      const missing = uniqueTable("missing");
      const dir = persistDir(t);
      const letter = (id: string, d: number) => ({
        t: [missing, "id", null, "lastValue"],
        id,
        d: String(d),
        e: { code: "TableNotFound", message: `Table "${missing}" does not exist`, ambiguous: false },
      });
      const first = worker(server.endpoint, client.table.tableName, dir);
      try {
        await call(first, "/put", {
          "x:old-1": letter("k", 1),
          "x:old-2": letter("k", 2),
          "x:old-3": letter("k", 3),
          "x:old-4": letter("j", 4),
        });
      } finally {
        await first.dispose();
      }
      const second = worker(server.endpoint, client.table.tableName, dir);
      try {
        const loaded = await call<State>(second, "/state");
        assert.deepEqual(
          loaded.dead.map((d) => [d.key, d.amount]).sort(),
          [
            ["j", 4],
            ["k", 6],
          ],
          "one letter per key, amounts summed",
        );
        const table = clientFor(server.endpoint, { tableName: missing });
        await table.createTable();
        assert.equal((await call<{ retried: number }>(second, "/retry")).retried, 2);
        await call(second, "/flush");
        assert.deepEqual([await table.get("k"), await table.get("j")], [6, 4]);
        assert.deepEqual(deadRecords(await call<State>(second, "/state")), [], "every stored record of a released letter is deleted");
      } finally {
        await second.dispose();
      }
      // And they stay gone in the next incarnation: nothing is written twice.
      const third = worker(server.endpoint, client.table.tableName, dir);
      try {
        const state = await call<State>(third, "/state");
        assert.deepEqual([state.dead.length, deadRecords(state).length, state.pending], [0, 0, 0]);
      } finally {
        await third.dispose();
      }
    });
  });
}
