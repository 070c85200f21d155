import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { before, describe, it } from "node:test";
import * as atomicCounter from "../src/compat.ts";
import { CounterError } from "../src/index.ts";
import { clientFor, credentials, servers, uniqueTable } from "./support/harness.ts";
import { root } from "./support/workers.ts";

// The cases of dynamodb-atomic-counter's own examples, against real servers.
for (const server of await servers()) {
  describe(`dynacount/compat on ${server.name}`, () => {
    const tableName = uniqueTable("AtomicCounters");
    const myCounters = uniqueTable("MyCounters");
    before(async () => {
      atomicCounter.config.update({ region: "us-east-1", endpoint: server.endpoint, accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey });
      await clientFor(server.endpoint, { tableName }).createTable();
      await clientFor(server.endpoint, { tableName: myCounters, keyAttribute: "name" }).createTable();
    });

    it("callbacks in the options object fire once each", async () => {
      const calls: string[] = [];
      let completed!: () => void;
      const complete = new Promise<void>((r) => (completed = r));
      const value = await atomicCounter.increment("users", {
        tableName,
        success: (v) => calls.push(`success ${v}`),
        error: () => calls.push("error"),
        complete: (v) => (calls.push(`complete ${String(v)}`), completed()),
      });
      await complete;
      assert.equal(value, 1);
      assert.deepEqual(calls, ["success 1", "complete 1"]);
    });

    it("callbacks on the returned promise see consecutive values", async () => {
      const seen: number[] = [];
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve) => {
          atomicCounter.increment("consecutive", { tableName }).done((v) => seen.push(v)).always(() => resolve());
        });
      }
      assert.deepEqual(seen, [1, 2, 3]);
    });

    it("overridden table, key attribute, count attribute and increment 12 give multiples of 12, with this = context", async () => {
      const context = { values: [] as number[] };
      const options = {
        tableName: myCounters,
        keyAttribute: "name",
        countAttribute: "count",
        increment: 12,
        context,
        success(this: typeof context, value: number) {
          this.values.push(value);
        },
      };
      for (let i = 0; i < 3; i++) await atomicCounter.increment("dozens", options);
      assert.deepEqual(context.values, [12, 24, 36]);
      let self: unknown;
      await atomicCounter.getLastValue("dozens", { ...options, success() { self = this; } }).done(function (this: typeof context, v) {
        assert.equal(this, context);
        assert.equal(v, 36);
      });
      assert.equal(self, context);
    });

    it("10 concurrent increments are distinct", async () => {
      const values = await Promise.all(Array.from({ length: 10 }, () => atomicCounter.increment("parallel", { tableName })));
      assert.deepEqual([...values].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    });

    it("getLastValue of a missing counter is 0, and increment: 0 means 0", async () => {
      assert.equal(await atomicCounter.getLastValue("never", { tableName }), 0);
      await atomicCounter.increment("zero", { tableName, increment: 5 });
      assert.equal(await atomicCounter.increment("zero", { tableName, increment: 0 }), 5);
      assert.equal(await atomicCounter.getLastValue("zero", { tableName }), 5);
    });

    it("an error reaches error, fail and always, for increment and getLastValue", async () => {
      for (const call of [atomicCounter.increment, atomicCounter.getLastValue]) {
        const seen: string[] = [];
        const context = { name: "ctx" };
        await new Promise<void>((resolve) => {
          call("x", {
            tableName: "NoSuchTable",
            context,
            error(this: typeof context, e) {
              seen.push(`error ${e.code} ${this.name}`);
            },
          })
            .fail(function (this: typeof context, e) {
              seen.push(`fail ${e.code} ${this.name}`);
            })
            .always((e) => {
              seen.push(`always ${(e as CounterError).code}`);
              resolve();
            });
        });
        assert.deepEqual(seen, ["error TableNotFound ctx", "fail TableNotFound ctx", "always TableNotFound"]);
      }
    });

    it("a rejected promise with only callbacks attached does not crash the process", async () => {
      // A child with --unhandled-rejections=strict dies on any unhandled rejection: its exit tells, no waiting.
      const script = `
        const atomicCounter = require("dynacount/compat");
        atomicCounter.config.update({ region: "us-east-1", endpoint: ${JSON.stringify(server.endpoint)}, accessKeyId: "a", secretAccessKey: "b" });
        atomicCounter.increment("x", { tableName: "NoSuchTable", error: (e) => console.log("error callback", e.code) });`;
      // Asynchronous: dynalite answers from this very process.
      const { stdout } = await promisify(execFile)(process.execPath, ["--unhandled-rejections=strict", "-e", script], { cwd: root, encoding: "utf8", timeout: 20_000 });
      assert.equal(stdout.trim(), "error callback TableNotFound");
    });
  });
}
