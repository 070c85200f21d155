import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { after, describe, it } from "node:test";
import { CounterBuffer, CounterError, type FlushResult } from "../src/index.ts";
import { markerAttribute } from "../src/buffer/engine.ts";
import { startFaultProxy } from "./support/fault-proxy.ts";
import { clientFor, freshTable, rejection, servers, uniqueTable } from "./support/harness.ts";
import { root } from "./support/workers.ts";

/** A promise for the next `onFlush` call of a buffer built with `flushed.onFlush`. */
function flushEvents() {
  const waiting: ((r: FlushResult) => void)[] = [];
  return {
    onFlush: (r: FlushResult) => waiting.shift()?.(r),
    next: () => new Promise<FlushResult>((resolve) => waiting.push(resolve)),
  };
}

for (const server of await servers()) {
  describe(`CounterBuffer on ${server.name}`, () => {
    it("four adds of 5 on one key make 20, in one request", async () => {
      const client = await freshTable(server.endpoint);
      const buffer = new CounterBuffer(client, { flushIntervalMs: 60_000 });
      for (let i = 0; i < 4; i++) buffer.add("k", 5);
      assert.equal(buffer.pending, 1);
      assert.deepEqual(await buffer.flush(), { keys: 1, requests: 1, total: 20 });
      assert.equal(buffer.pending, 0);
      assert.equal(await client.get("k"), 20);
    });

    it("keys A and B in one table stay apart", async () => {
      const client = await freshTable(server.endpoint);
      const buffer = new CounterBuffer(client, { flushIntervalMs: 60_000 });
      buffer.add("A", 1);
      buffer.add("B", 10);
      buffer.add("A", 2);
      assert.deepEqual(await buffer.flush(), { keys: 2, requests: 2, total: 13 });
      assert.equal(await client.get("A"), 3);
      assert.equal(await client.get("B"), 10);
    });

    it("the same key in two tables, and in two count attributes, stays apart", async () => {
      const one = await freshTable(server.endpoint);
      const two = await freshTable(server.endpoint);
      const buffer = new CounterBuffer(one, { flushIntervalMs: 60_000 });
      const other = { tableName: two.table.tableName };
      buffer.add("k", 1);
      buffer.add("k", 100, other);
      buffer.add("k", 1000, { countAttribute: "alt" });
      buffer.add("k", 2);
      buffer.add("k", 200, { tableName: two.table.tableName }); // a different options object, same table
      assert.equal(buffer.pending, 3);
      await buffer.flush();
      assert.equal(await one.get("k"), 3);
      assert.equal(await two.get("k"), 300);
      assert.equal(await one.get("k", { countAttribute: "alt" }), 1000);
    });

    it("composite keys coalesce per (id, sort)", async () => {
      const client = await freshTable(server.endpoint, { sortKeyAttribute: "day" });
      const buffer = new CounterBuffer(client, { flushIntervalMs: 60_000 });
      buffer.add({ id: "p", sort: "mon" });
      buffer.add({ id: "p", sort: "tue" }, 2);
      buffer.add({ id: "p", sort: "mon" }, 3);
      buffer.add({ id: "p1", sort: "" + "mon" });
      assert.equal(buffer.pending, 3);
      await buffer.flush();
      assert.equal(await client.get({ id: "p", sort: "mon" }), 4);
      assert.equal(await client.get({ id: "p", sort: "tue" }), 2);
      assert.equal(await client.get({ id: "p1", sort: "mon" }), 1);
    });

    it("reaching maxKeys flushes without waiting for the timer", async () => {
      const client = await freshTable(server.endpoint);
      const events = flushEvents();
      const buffer = new CounterBuffer(client, { maxKeys: 3, flushIntervalMs: 3_600_000, onFlush: events.onFlush });
      const flushed = events.next();
      buffer.add("a");
      buffer.add("b");
      assert.equal(buffer.pending, 2);
      buffer.add("c");
      assert.deepEqual(await flushed, { keys: 3, requests: 3, total: 3 });
      assert.equal(await client.get("c"), 1);
    });

    it("the timer flushes flushIntervalMs after the first add", async () => {
      const client = await freshTable(server.endpoint);
      const events = flushEvents();
      const buffer = new CounterBuffer(client, { flushIntervalMs: 20, onFlush: events.onFlush });
      const flushed = events.next();
      // The buffer's timer is unref'd by design; a ref'd handle keeps this test's event loop alive meanwhile.
      const keepAlive = setInterval(() => undefined, 1000);
      buffer.add("t", 7);
      try {
        assert.deepEqual(await flushed, { keys: 1, requests: 1, total: 7 });
      } finally {
        clearInterval(keepAlive);
      }
      assert.equal(await client.get("t"), 7);
      assert.equal(buffer.pending, 0);
    });

    it("close() writes everything and later add() throws Closed", async () => {
      const client = await freshTable(server.endpoint);
      const buffer = new CounterBuffer(client, { flushIntervalMs: 60_000 });
      buffer.add("x", 2);
      buffer.add("y", 3);
      assert.deepEqual(await buffer.close(), { keys: 2, requests: 2, total: 5 });
      assert.equal(await client.get("x"), 2);
      assert.throws(() => buffer.add("x"), (e: unknown) => e instanceof CounterError && e.code === "Closed");
    });

    it("100,000 adds over 1,000 keys: exactly 1,000 UpdateItem requests in one flush, exact totals", async () => {
      const direct = await freshTable(server.endpoint);
      const proxy = await startFaultProxy(server.endpoint);
      after(() => proxy.close());
      const client = clientFor(proxy.endpoint, { tableName: direct.table.tableName });
      const buffer = new CounterBuffer(client, { maxKeys: 5000, flushIntervalMs: 60_000, concurrency: 32 });
      const expected = new Map<string, number>();
      for (let i = 0; i < 100_000; i++) {
        const key = `k${(i * 7919) % 1000}`;
        const by = (i % 3) + 1;
        buffer.add(key, by);
        expected.set(key, (expected.get(key) ?? 0) + by);
      }
      const result = await buffer.flush();
      assert.equal(result.requests, 1000);
      assert.equal(result.keys, 1000);
      assert.equal(proxy.seen.get("UpdateItem"), 1000);
      assert.equal(result.total, [...expected.values()].reduce((a, b) => a + b, 0));
      const values = await Promise.all([...expected.keys()].map(async (k) => [k, await direct.get(k)] as const));
      for (const [k, v] of values) assert.equal(v, expected.get(k), k);
    });

    it("concurrent flush() calls never double-apply", async () => {
      const client = await freshTable(server.endpoint);
      const buffer = new CounterBuffer(client, { flushIntervalMs: 60_000, maxKeys: 10_000 });
      for (let i = 0; i < 50; i++) buffer.add(`c${i % 10}`, 1);
      const results = await Promise.all([buffer.flush(), buffer.flush(), buffer.flush()]);
      buffer.add("c0", 1);
      results.push(await buffer.flush());
      assert.equal(results.reduce((a, r) => a + Number(r.total), 0), 51);
      assert.equal(await client.get("c0"), 6);
      assert.equal(await client.get("c9"), 5);
    });

    it("a failed flush keeps its batch and retries it first; nothing lost", async () => {
      const direct = await freshTable(server.endpoint);
      const proxy = await startFaultProxy(server.endpoint, () => "throttle");
      after(() => proxy.close());
      const errors: CounterError[] = [];
      const client = clientFor(proxy.endpoint, { tableName: direct.table.tableName, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 } });
      const buffer = new CounterBuffer(client, { flushIntervalMs: 60_000, writerId: "w-retry", onError: (e) => errors.push(e) });
      buffer.add("a", 1);
      buffer.add("b", 2);
      const error = await rejection(buffer.flush());
      assert.ok(error instanceof CounterError && error.code === "Throttled");
      assert.equal(errors.length, 1);
      assert.equal(buffer.pending, 2);
      buffer.add("a", 10);
      proxy.setFault(() => "pass");
      const result = await buffer.flush();
      assert.equal(result.total, 13);
      assert.equal(result.requests, 3, "the old batch (a, b), then the new one (a)");
      assert.equal(await direct.get("a"), 11);
      assert.equal(await direct.get("b"), 2);
      await buffer.close();
    });

    for (const mode of ["exactly-once", "at-least-once"] as const) {
      it(`${mode}: 20,000 adds on 100 keys through 20% faults (${mode === "exactly-once" ? "every value exact" : "nothing lost"})`, async () => {
        const direct = await freshTable(server.endpoint);
        let state = 12345 + (mode === "exactly-once" ? 0 : 1) + (server.name === "ddblocal" ? 2 : 0);
        const random = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
        const faults = ["drop-after", "error500-after", "error500", "throttle", "reset", { delayMs: 150 }] as const;
        const proxy = await startFaultProxy(server.endpoint, (info) =>
          info.operation === "UpdateItem" && random() < 0.2 ? faults[Math.floor(random() * faults.length)]! : "pass",
        );
        after(() => proxy.close());
        const client = clientFor(proxy.endpoint, { tableName: direct.table.tableName, timeoutMs: 100, retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 4 } });
        let failedFlushes = 0;
        const buffer = new CounterBuffer(client, {
          flushIntervalMs: 60_000,
          maxKeys: 1000,
          concurrency: 25,
          ...(mode === "exactly-once" ? { writerId: `proxy-test-${server.name}` } : {}),
          onError: () => failedFlushes++,
        });
        const expected = new Map<string, number>();
        for (let round = 0; round < 40; round++) {
          for (let i = 0; i < 500; i++) {
            const key = `k${Math.floor(random() * 100)}`;
            buffer.add(key, 1);
            expected.set(key, (expected.get(key) ?? 0) + 1);
          }
          await buffer.flush().catch(() => undefined);
        }
        for (let i = 0; buffer.pending > 0; i++) {
          assert.ok(i < 50, "the buffer never drained");
          await buffer.flush().catch(() => undefined);
        }
        await buffer.close();
        const total = [...expected.values()].reduce((a, b) => a + b, 0);
        assert.equal(total, 20_000);
        assert.ok((proxy.injected.get("drop-after") ?? 0) > 10, "faults after apply were injected");
        for (const [key, sum] of expected) {
          const value = await direct.get(key);
          if (mode === "exactly-once") assert.equal(value, sum, `${key}: ${value} != ${sum}`);
          else assert.ok(value >= sum, `${key} lost increments: ${value} < ${sum}`);
        }
        // at-least-once adds no marker attributes; exactly-once has exactly one, named after the writer
        const item = await client.send<{ Item?: Record<string, unknown> }>("GetItem", { TableName: direct.table.tableName, Key: { id: { S: "k1" } } }, { idempotent: true });
        const names = Object.keys(item.Item ?? {}).sort();
        assert.deepEqual(names, mode === "exactly-once" ? [markerAttribute(`proxy-test-${server.name}`), "id", "lastValue"].sort() : ["id", "lastValue"]);
        console.log(`  ${server.name} ${mode}: faults ${JSON.stringify(Object.fromEntries(proxy.injected))}, failed flushes ${failedFlushes}`);
      });
    }
  });
}

describe("CounterBuffer without a server", () => {
  it("validates input and options before queuing anything", () => {
    const client = clientFor("http://127.0.0.1:9");
    const buffer = new CounterBuffer(client);
    assert.throws(() => buffer.add(""), (e: unknown) => e instanceof CounterError && e.code === "Validation");
    assert.throws(() => buffer.add("k", 0.5), (e: unknown) => e instanceof CounterError && /"by"/.test(e.message));
    assert.throws(() => buffer.add("k", 1, { tableName: "x" }), (e: unknown) => e instanceof CounterError && /tableName/.test(e.message));
    assert.equal(buffer.pending, 0);
    for (const bad of [{ maxKeys: 0 }, { flushIntervalMs: -1 }, { writerId: "" }, { writerId: "has space" }, { concurrency: 0 }, { onError: 1 }]) {
      assert.throws(() => new CounterBuffer(client, bad as object), (e: unknown) => e instanceof CounterError && e.code === "Validation", JSON.stringify(bad));
    }
  });

  it("its timers do not keep a Node process alive", () => {
    // The child adds without flushing or closing; it must exit on its own instead of waiting for the timer.
    const script = `
      import { CounterClient, CounterBuffer } from "dynacount";
      const client = new CounterClient({ endpoint: "http://127.0.0.1:9", env: {}, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
      const buffer = new CounterBuffer(client, { flushIntervalMs: 600000 });
      buffer.add("k");
      console.log("added", buffer.pending);`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
    assert.equal(out.trim(), "added 1");
  });

  for (const runtime of ["bun", "deno"] as const) {
    it(`its timers do not keep ${runtime} alive`, () => {
      const script = `
        import { CounterClient, CounterBuffer } from "${runtime === "bun" ? "dynacount" : "@dynacount/dynacount"}";
        const client = new CounterClient({ endpoint: "http://127.0.0.1:9", env: {}, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
        const buffer = new CounterBuffer(client, { flushIntervalMs: 600000 });
        buffer.add("k");
        console.log("added", buffer.pending);`;
      const bin = path.join(root, "node_modules", ".bin", runtime);
      const args = runtime === "bun" ? ["-e", script] : ["eval", "--config", "jsr.json", script];
      const out = execFileSync(bin, args, { cwd: root, encoding: "utf8", timeout: 30_000, env: { ...process.env, NO_COLOR: "1" } });
      assert.equal(out.trim().split("\n").at(-1), "added 1");
    });
  }

  it("tables unknown to the buffer's client are fine per call", () => {
    const buffer = new CounterBuffer(clientFor("http://127.0.0.1:9"));
    buffer.add("k", 1, { tableName: uniqueTable() });
    assert.equal(buffer.pending, 1);
  });
});
