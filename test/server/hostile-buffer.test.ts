// CounterBuffer against hostile input and lasting failures, on both real servers: dead letters stay one per
// key, keys cannot forge log lines, pending keys are bounded in bytes, and the layout cache never mixes two
// layouts (issue 26).
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { CounterBuffer, CounterError, type DeadLetter } from "../../src/index.ts";
import { clientFor, freshTable, rejection, servers, throughProxy, uniqueTable } from "../support/harness.ts";

/** The byte bound option (a function, so that a run against code without the option can drop it). */
const bytesBound = (maxPendingBytes: number) => ({ maxPendingBytes });

/** C0, DEL, C1 and the Unicode line and paragraph separators: what must never reach a log line raw. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Keys that would start a second, forged line if printed raw. */
const HOSTILE_KEYS = ["line\nAccessDenied: forged", "cr\rforged", "ls\u2028forged", "esc\u001b[31mred"];

/**
 * A pattern that finds `text` written with each control character escaped (`\n`, `\u000a`, `\x0a`): the
 * caller's text is still there to read, only not raw.
 */
function escaped(text: string): RegExp {
  const parts = [...text].map((c) => {
    if (!CONTROL.test(c)) return c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const code = c.charCodeAt(0);
    const hex2 = code.toString(16).padStart(2, "0");
    const hex4 = code.toString(16).padStart(4, "0");
    const short = { 10: "n", 13: "r", 9: "t" }[code];
    return `(?:\\\\u${hex4}|\\\\u\\{${code.toString(16)}\\}|\\\\x${hex2}${short ? `|\\\\${short}` : ""})`;
  });
  return new RegExp(parts.join(""), "i");
}

/** Every console.warn call of the test, as the text it would print; console.warn is restored when `t` ends. */
function captureWarnings(t: TestContext): string[] {
  const lines: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  t.after(() => {
    console.warn = original;
  });
  return lines;
}

/** A key of `length` characters, distinct per `i`. */
const longKey = (i: number, length = 2000) => `${i}:`.padEnd(length, "x");

/** How many new keys `buffer` takes before `add` throws BufferFull (at most `max`), and that error. */
function fill(buffer: CounterBuffer, max: number, key: (i: number) => string, options?: { tableName?: string }) {
  for (let i = 0; i < max; i++) {
    try {
      buffer.add(key(i), 1, options);
    } catch (error) {
      return { accepted: i, error };
    }
  }
  return { accepted: max, error: undefined };
}

const isBufferFull = (e: unknown) => e instanceof CounterError && e.code === "BufferFull";

for (const server of await servers()) {
  describe(`CounterBuffer under hostile input on ${server.name}`, () => {
    it("a key that keeps failing is one dead letter: amounts summed, onDeadLetter called once per key; retryDeadLetters writes each total once", async () => {
      const client = await freshTable(server.endpoint);
      const missing = uniqueTable("missing");
      const reported: DeadLetter[] = [];
      const buffer = new CounterBuffer(client, { flushIntervalMs: 3_600_000, maxKeys: 10_000, onDeadLetter: (l) => reported.push(l) });
      const KEYS = 20;
      const FLUSHES = 30;
      for (let f = 0; f < FLUSHES; f++) {
        for (let k = 0; k < KEYS; k++) buffer.add(`k${k}`, k + 1, { tableName: missing });
        const result = await buffer.flush();
        assert.equal(result.keys, 0, "nothing can be written to a missing table");
      }
      assert.equal(buffer.pending, 0, "nothing is stuck in pending");
      assert.equal(buffer.deadLetters.length, KEYS, `one held letter per key, not one per key and flush (${buffer.deadLetters.length})`);
      const amounts = new Map(buffer.deadLetters.map((l) => [l.key as string, l.amount]));
      for (let k = 0; k < KEYS; k++) assert.equal(amounts.get(`k${k}`), (k + 1) * FLUSHES, `k${k}: every flush's amount summed`);
      assert.ok(buffer.deadLetters.every((l) => l.error.code === "TableNotFound" && l.tableName === missing));
      assert.equal(reported.length, KEYS, `onDeadLetter once per key and failure code (${reported.length} calls)`);
      assert.deepEqual(new Set(reported.map((l) => l.key)).size, KEYS);

      // The cause fixed, each key's total is written once.
      const table = clientFor(server.endpoint, { tableName: missing });
      await table.createTable();
      assert.equal(await buffer.retryDeadLetters(), KEYS);
      const written = await buffer.flush();
      assert.deepEqual([written.keys, written.requests, written.total], [KEYS, KEYS, ((KEYS * (KEYS + 1)) / 2) * FLUSHES]);
      for (let k = 0; k < KEYS; k++) assert.equal(await table.get(`k${k}`), (k + 1) * FLUSHES);
      assert.equal(buffer.deadLetters.length, 0);
    });

    it("the default dead-letter warning is printed once per key and failure code, however often the key fails", async (t) => {
      const client = await freshTable(server.endpoint);
      const missing = uniqueTable("missing");
      const warnings = captureWarnings(t);
      const buffer = new CounterBuffer(client, { flushIntervalMs: 3_600_000, maxKeys: 10_000 });
      for (let f = 0; f < 10; f++) {
        for (let k = 0; k < 5; k++) buffer.add(`w${k}`, 1, { tableName: missing });
        await buffer.flush();
      }
      assert.equal(warnings.length, 5, `one warning per key, got ${warnings.length}; the first: ${warnings[0]}`);
      assert.ok(warnings.every((w) => /TableNotFound/.test(w)));
      // The same key failing for another reason is worth one more warning: the table exists now, but the count
      // attribute of w0 holds a string.
      const table = clientFor(server.endpoint, { tableName: missing });
      await table.createTable();
      await table.send("PutItem", { TableName: missing, Item: { id: { S: "w0" }, lastValue: { S: "text" } } }, { idempotent: true });
      for (let f = 0; f < 3; f++) {
        buffer.add("w0", 1, { tableName: missing });
        await buffer.flush();
      }
      assert.equal(warnings.length, 6, `one more warning for the new failure code, got ${warnings.length}; the last: ${warnings.at(-1)}`);
      assert.equal(buffer.deadLetters.length, 5, "still one letter per key");
      assert.equal(buffer.deadLetters.find((l) => l.key === "w0")?.amount, 13, "w0: 10 while the table was missing, 3 since");
    });

    it("keys cannot forge log lines: the default dead-letter warning escapes control characters", async (t) => {
      const client = await freshTable(server.endpoint);
      const missing = uniqueTable("missing");
      const warnings = captureWarnings(t);
      const buffer = new CounterBuffer(client, { flushIntervalMs: 3_600_000, maxKeys: 10_000 });
      for (const key of HOSTILE_KEYS) buffer.add(key, 1, { tableName: missing });
      await buffer.flush();
      assert.equal(buffer.deadLetters.length, HOSTILE_KEYS.length);
      assert.equal(warnings.length, HOSTILE_KEYS.length);
      for (const line of warnings) assert.doesNotMatch(line, CONTROL, `a raw control character in ${JSON.stringify(line)}`);
      for (const key of HOSTILE_KEYS) {
        assert.ok(
          warnings.some((line) => escaped(key).test(line)),
          `${JSON.stringify(key)} appears escaped in ${JSON.stringify(warnings)}`,
        );
      }
      // The letters themselves keep the keys as they were given.
      assert.deepEqual(buffer.deadLetters.map((l) => l.key).sort(), [...HOSTILE_KEYS].sort());
    });

    it("keys cannot forge log lines: the crowded-marker warning escapes control characters", async (t) => {
      const client = await freshTable(server.endpoint);
      const warnings = captureWarnings(t);
      const key = HOSTILE_KEYS[0]!;
      // No onFlush: a crowded item is reported with console.warn. Three writers, so the item carries 3 markers.
      for (const writerId of ["w-1", "w-2", "w-3"]) {
        const buffer = new CounterBuffer(client, { flushIntervalMs: 3_600_000, writerId, markerWarnAt: 1 });
        buffer.add(key, 1);
        await buffer.flush();
      }
      assert.equal(await client.get(key), 3);
      const crowded = warnings.filter((w) => /marker/.test(w));
      assert.ok(crowded.length >= 1, `the crowded item is reported: ${JSON.stringify(warnings)}`);
      for (const line of crowded) {
        assert.doesNotMatch(line, CONTROL, `a raw control character in ${JSON.stringify(line)}`);
        assert.match(line, escaped(key));
      }
    });

    it("error messages never span lines because of caller or server text (option names, attribute names, server messages)", async () => {
      const client = await freshTable(server.endpoint);
      const unknown = "flushInterval\nMs";
      const option = await rejection((async () => new CounterBuffer(client, { [unknown]: 1 } as never))());
      assert.ok(option instanceof CounterError && option.code === "Validation", String(option));
      assert.doesNotMatch(option.message, CONTROL, JSON.stringify(option.message));
      assert.match(option.message, escaped(unknown));

      const sortKey = "day\nAccessDenied: forged";
      const withSort = clientFor(server.endpoint, { tableName: client.table.tableName, sortKeyAttribute: sortKey });
      const missingSort = await rejection(withSort.increment("k"));
      assert.ok(missingSort instanceof CounterError && missingSort.code === "Validation", String(missingSort));
      assert.doesNotMatch(missingSort.message, CONTROL, JSON.stringify(missingSort.message));
      assert.match(missingSort.message, escaped(sortKey));

      // Server text may quote the request: what DynamoDB (here a proxy in front of it) says is made printable too.
      const { client: proxied, proxy } = await throughProxy(server.endpoint);
      proxy.setFault(() => ({ status: 400, type: "ValidationException", message: "bad input\nAccessDenied: forged\u2028too" }));
      const fromServer = await rejection(proxied.increment("k"));
      assert.ok(fromServer instanceof CounterError && fromServer.code === "Validation", String(fromServer));
      assert.doesNotMatch(fromServer.message, CONTROL, JSON.stringify(fromServer.message));
      assert.match(fromServer.message, /bad input/);
    });

    it("during an outage, new long keys past maxPendingBytes throw BufferFull; adds to waiting keys are still accepted and nothing is lost", async (t) => {
      const { client, direct, proxy } = await throughProxy(server.endpoint, { retry: { attempts: 1, throttle: { attempts: 1 } } });
      proxy.setFault(() => "throttle");
      let failed!: () => void;
      const firstFailure = new Promise<void>((resolve) => (failed = resolve));
      const BOUND = 1_000_000;
      const buffer = new CounterBuffer(client, {
        maxKeys: 10,
        flushIntervalMs: 3_600_000,
        maxRetryDelayMs: 60_000,
        ...bytesBound(BOUND),
        onError: () => failed(),
      });
      for (let i = 0; i < 10; i++) buffer.add(longKey(i)); // maxKeys: a flush, which fails
      await firstFailure;
      // 2 KB keys chosen by an attacker: far more than the bound holds.
      const { accepted, error } = fill(buffer, 3000, (i) => longKey(10 + i));
      // Whatever the outcome, DynamoDB comes back and the buffer is closed: no retries outlive the test.
      t.after(async () => {
        proxy.setFault(() => "pass");
        await buffer.close({ timeoutMs: 30_000 }).catch(() => undefined);
      });
      assert.ok(isBufferFull(error), `BufferFull once past the bound (${accepted} new keys of 2 KB taken, then ${String(error)})`);
      assert.equal((error as CounterError).retryable, true);
      assert.match((error as CounterError).message, /maxPendingBytes/);
      const held = 10 + accepted;
      assert.ok(held * 2000 <= BOUND, `${held} keys of 2,000 characters each are more than ${BOUND} bytes`);
      assert.ok(held >= 50, `the bound is not absurdly conservative (${held} keys)`);
      // A key already waiting takes more adds.
      buffer.add(longKey(0), 5);
      buffer.add(longKey(10 + accepted - 1), 2);
      assert.equal(buffer.pending, held);
      // DynamoDB back: everything taken is written.
      proxy.setFault(() => "pass");
      await buffer.close({ timeoutMs: 30_000 });
      assert.equal(await direct.get(longKey(0)), 6);
      assert.equal(await direct.get(longKey(10 + accepted - 1)), 3);
      assert.equal(await direct.get(longKey(5)), 1);
    });

    it("pending keys are bounded in bytes by default (32 MiB): a flood of 2 KB keys ends in BufferFull", async () => {
      const client = await freshTable(server.endpoint);
      // No flush runs: the interval is an hour and maxKeys is out of reach.
      const buffer = new CounterBuffer(client, { maxKeys: 1_000_000, maxPendingKeys: 1_000_000, flushIntervalMs: 3_600_000 });
      const MiB32 = 32 * 1024 * 1024;
      const { accepted, error } = fill(buffer, 20_000, (i) => longKey(i));
      assert.ok(isBufferFull(error), `BufferFull after ${accepted} keys of 2 KB (${String(error)})`);
      assert.ok(accepted * 2000 <= MiB32, `${accepted} keys of 2,000 characters are more than 32 MiB`);
      assert.ok(accepted * 2000 * 4 >= MiB32, `${accepted} keys: the default is about 32 MiB, not far less`);
      buffer.add(longKey(0), 1); // a waiting key still coalesces
      assert.equal(buffer.pending, accepted);
    });

    it("held dead letters count against maxPendingBytes, and stop counting once taken", async () => {
      const client = await freshTable(server.endpoint);
      const missing = uniqueTable("missing");
      const BOUND = 100_000;
      const options = { maxKeys: 100_000, flushIntervalMs: 3_600_000, onDeadLetter: () => undefined, ...bytesBound(BOUND) };
      // Without letters: how many new 2 KB keys the bound takes.
      const fresh = new CounterBuffer(client, options);
      const alone = fill(fresh, 1000, (i) => longKey(i));
      assert.ok(isBufferFull(alone.error), `the bound holds (${alone.accepted} keys)`);
      // 20 letters of 2 KB keys, held after their table turned out missing.
      const LETTERS = 20;
      assert.ok(alone.accepted > LETTERS + 2, `the bound takes more than ${LETTERS} keys (${alone.accepted})`);
      const buffer = new CounterBuffer(client, options);
      for (let i = 0; i < LETTERS; i++) buffer.add(longKey(i), 1, { tableName: missing });
      await buffer.flush();
      assert.equal(buffer.deadLetters.length, LETTERS);
      assert.equal(buffer.pending, 0);
      const withLetters = fill(buffer, 1000, (i) => longKey(1000 + i));
      assert.ok(isBufferFull(withLetters.error), String(withLetters.error));
      assert.ok(
        withLetters.accepted <= alone.accepted - LETTERS / 2,
        `with ${LETTERS} letters held the bound takes ${withLetters.accepted} new keys, alone ${alone.accepted}: letters count`,
      );
      // Taken over by the caller, the letters no longer count.
      assert.equal((await buffer.takeDeadLetters()).length, LETTERS);
      const after = fill(buffer, 1000, (i) => longKey(2000 + i));
      assert.ok(after.accepted >= LETTERS / 2, `after takeDeadLetters the freed bytes take new keys (${after.accepted})`);
    });

    it('the layout cache never mixes layouts: an option left out and one named "undefined" are different attributes', async () => {
      const client = await freshTable(server.endpoint);
      const tableName = client.table.tableName;
      const buffer = new CounterBuffer(client, { flushIntervalMs: 3_600_000 });
      // Left out first, then named "undefined"; and the other way round for another key.
      buffer.add("b", 5, { tableName });
      buffer.add("b", 7, { tableName, countAttribute: "undefined" });
      buffer.add("c", 11, { tableName, countAttribute: "undefined" });
      buffer.add("c", 13, { tableName });
      buffer.add("d", 17, { tableName, keyAttribute: "id" });
      buffer.add("d", 19, { tableName, keyAttribute: "id", countAttribute: "undefined" });
      assert.equal(buffer.pending, 6);
      await buffer.flush();
      assert.deepEqual(
        [await client.get("b"), await client.get("b", { countAttribute: "undefined" })],
        [5, 7],
        "b: 5 in lastValue, 7 in the attribute named undefined",
      );
      assert.deepEqual([await client.get("c"), await client.get("c", { countAttribute: "undefined" })], [13, 11]);
      assert.deepEqual([await client.get("d"), await client.get("d", { countAttribute: "undefined" })], [17, 19]);
    });

    it('the layout cache never mixes layouts: the client\'s table and a table named "undefined" stay apart', async () => {
      const client = await freshTable(server.endpoint);
      const named = clientFor(server.endpoint, { tableName: "undefined" });
      await named.createTable(); // harmless when another run made it: every key below is this run's own
      const key = `k-${uniqueTable()}`;
      const buffer = new CounterBuffer(client, { flushIntervalMs: 3_600_000 });
      buffer.add(key, 3, { countAttribute: "n" });
      buffer.add(key, 4, { tableName: "undefined", countAttribute: "n" });
      await buffer.flush();
      assert.deepEqual([await client.get(key, { countAttribute: "n" }), await named.get(key, { countAttribute: "n" })], [3, 4]);
    });

    it("the layout cache never mixes layouts: names holding NUL are not split into other names", async () => {
      // Joined with NUL, { countAttribute: "x\0y" } and { sortKeyAttribute: "undefined\0x", countAttribute: "y" } read
      // the same; the second names a sort key this table does not have, so its add must fail as its own.
      const client = await freshTable(server.endpoint, { sortKeyAttribute: "day" });
      const buffer = new CounterBuffer(client, { flushIntervalMs: 3_600_000, onDeadLetter: () => undefined });
      const key = { id: "p", sort: "mon" };
      buffer.add(key, 5, { countAttribute: "x\u0000y" });
      buffer.add(key, 7, { countAttribute: "a\u0000b" });
      let refused: unknown;
      try {
        buffer.add(key, 100, { sortKeyAttribute: "undefined\u0000x", countAttribute: "y" });
      } catch (error) {
        refused = error; // refusing the layout at once is as good as a dead letter
      }
      await buffer.flush().catch(() => undefined);
      assert.equal(await client.get(key, { countAttribute: "x\u0000y" }), 5, "only its own add");
      assert.equal(await client.get(key, { countAttribute: "a\u0000b" }), 7);
      if (refused === undefined) {
        const letter = buffer.deadLetters.find((l) => l.amount === 100);
        assert.ok(letter, `the add with the other layout is held as its own dead letter: ${JSON.stringify(buffer.deadLetters)}`);
        assert.equal(letter.countAttribute, "y");
      }
    });
  });
}
