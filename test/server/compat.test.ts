import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import * as atomicCounter from "../../src/compat.ts";
import { clientOptions, IGNORED_FIELDS } from "../../src/compat/config.ts";
import { MAX_TIMER_MS } from "../../src/core/options.ts";
import { CounterError } from "../../src/index.ts";
import { startFaultProxy } from "../support/fault-proxy.ts";
import { clientFor, credentials, rejection, servers, uniqueTable } from "../support/harness.ts";
import { root } from "../support/workers.ts";

/** underscore.deferred, as the old package and its users mixed it into `_` (it ships no types). */
interface JQueryPromise {
  done(f: (this: unknown, ...values: unknown[]) => void): JQueryPromise;
  fail(f: (this: unknown, ...errors: unknown[]) => void): JQueryPromise;
  always(f: (this: unknown, ...args: unknown[]) => void): JQueryPromise;
  state(): string;
}
const _ = createRequire(import.meta.url)("underscore.deferred") as {
  when(...promises: unknown[]): JQueryPromise;
  Deferred(): JQueryPromise & { resolve(...values: unknown[]): void; promise(): JQueryPromise };
};

/** Resolves with the arguments of the first `done`, or rejects with those of `fail`. */
const settled = (p: JQueryPromise) =>
  new Promise<unknown[]>((resolve, reject) => p.done((...values) => resolve(values)).fail((...errors) => reject(errors)));

const connection = (endpoint: string) => ({
  region: "us-east-1",
  endpoint,
  accessKeyId: credentials.accessKeyId,
  secretAccessKey: credentials.secretAccessKey,
});

// The cases of dynamodb-atomic-counter's own examples, against real servers.
for (const server of await servers()) {
  describe(`dynacount/compat on ${server.name}`, () => {
    const tableName = uniqueTable("AtomicCounters");
    const myCounters = uniqueTable("MyCounters");
    before(async () => {
      atomicCounter.config.reset();
      atomicCounter.config.update(connection(server.endpoint));
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
          atomicCounter
            .increment("consecutive", { tableName })
            .done((v) => seen.push(v))
            .always(() => resolve());
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
      await atomicCounter
        .getLastValue("dozens", {
          ...options,
          success() {
            self = this;
          },
        })
        .done(function (this: typeof context, v) {
          assert.equal(this, context);
          assert.equal(v, 36);
        });
      assert.equal(self, context);
    });

    it("10 concurrent increments through _.when give 10 distinct numbers, as the old example checked", async () => {
      const promises = Array.from({ length: 10 }, () => atomicCounter.increment("parallel", { tableName }));
      const values = await settled(_.when(promises));
      assert.equal(values.length, 10);
      assert.ok(
        values.every((v) => typeof v === "number"),
        `numbers, not promise objects: ${values.map((v) => typeof v).join()}`,
      );
      assert.deepEqual(
        [...(values as number[])].sort((a, b) => a - b),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      // Also as separate arguments, and Promise.all still works on the same kind of promise.
      const [a, b] = await settled(
        _.when(atomicCounter.increment("parallel", { tableName }), atomicCounter.increment("parallel", { tableName })),
      );
      assert.deepEqual([a, b].sort(), [11, 12]);
      assert.deepEqual(await Promise.all([atomicCounter.increment("parallel", { tableName })]), [13]);
    });

    it("_.when fails with the first failure's error, and done is not called", async () => {
      const doneCalls: unknown[] = [];
      const when = _.when(
        atomicCounter.increment("when-fail", { tableName }),
        atomicCounter.increment("when-fail", { tableName: "NoSuchTable" }),
        atomicCounter.increment("when-fail", { tableName }),
      ).done((...v) => doneCalls.push(v));
      const [error] = (await rejection(settled(when))) as unknown[];
      assert.ok(error instanceof CounterError);
      assert.equal(error.code, "TableNotFound");
      assert.equal(when.state(), "rejected");
      assert.deepEqual(doneCalls, []);
    });

    it("state() is pending before, then resolved or rejected, already so inside the callbacks", async () => {
      const ok = atomicCounter.increment("state", { tableName });
      const bad = atomicCounter.getLastValue("state", { tableName: "NoSuchTable" });
      assert.equal(ok.state(), "pending");
      assert.equal(bad.state(), "pending");
      const inside: string[] = [];
      ok.done(() => inside.push(ok.state()));
      bad.fail(() => inside.push(bad.state()));
      assert.equal(await ok, 1);
      await rejection(bad);
      assert.equal(ok.state(), "resolved");
      assert.equal(bad.state(), "rejected");
      assert.deepEqual(inside.sort(), ["rejected", "resolved"]);
    });

    it("jQuery chaining: then/pipe filters return new promises, with context as this; promise() keeps the interface", async () => {
      const context = { prefix: "user-" };
      const p = atomicCounter.increment("chain", { tableName, context });
      const seen: string[] = [];
      const label = p
        .then(function (this: typeof context, v) {
          return `${this.prefix}${v}`;
        })
        .done((s) => seen.push(`done ${s}`));
      assert.notEqual(label, p); // a new promise, unlike done/fail/always
      assert.equal(await label, "user-1");
      assert.deepEqual(seen, ["done user-1"]);
      // A filter may return another jQuery promise (underscore.deferred's); the chain waits for it.
      const later = _.Deferred();
      const piped = p.pipe(() => later.promise());
      assert.equal(piped.state(), "pending");
      later.resolve("from a Deferred");
      assert.equal(await piped, "from a Deferred");
      // A fail filter turns an error into a value; a throwing filter rejects the next promise with what it threw.
      const failing = atomicCounter.getLastValue("chain", { tableName: "NoSuchTable", context });
      assert.equal(
        await failing.then(null, function (this: typeof context, e) {
          return `${this.prefix}${e.code}`;
        }),
        "user-TableNotFound",
      );
      const thrown = new Error("mine");
      assert.equal(
        await rejection(
          p.then(() => {
            throw thrown;
          }),
        ),
        thrown,
      );
      // promise(): the same interface (what _.when looks for), on itself or copied onto a target.
      assert.equal(p.promise(), p);
      const target = p.promise({ name: "request" });
      assert.equal(target.name, "request");
      assert.equal(await new Promise((resolve) => target.done(resolve)), 1);
      assert.equal(target.state(), "resolved");
      // progress is accepted and chainable (an increment reports none); arrays of callbacks as in jQuery.
      const calls: number[] = [];
      assert.equal(
        p.progress(() => calls.push(-1)),
        p,
      );
      await new Promise<void>((resolve) => p.done([(v) => calls.push(v), (v) => calls.push(v + 1)], () => resolve()));
      assert.deepEqual(calls, [1, 2]);
    });

    it("getLastValue with dynamodb: { ConsistentRead: true } reads the last value; other request parameters are refused before any request", async () => {
      await atomicCounter.increment("consistent", { tableName, increment: 7 });
      const values: number[] = [];
      await atomicCounter.getLastValue("consistent", { tableName, dynamodb: { ConsistentRead: true }, success: (v) => values.push(v) });
      assert.deepEqual(values, [7]);
      const reads: unknown[] = [];
      const proxy = await startFaultProxy(server.endpoint, (info) => (reads.push(JSON.parse(info.body).ConsistentRead), "pass"));
      after(() => proxy.close());
      atomicCounter.config.update({ endpoint: proxy.endpoint });
      try {
        assert.equal(await atomicCounter.getLastValue("consistent", { tableName, dynamodb: { ConsistentRead: false } }), 7);
        assert.equal(await atomicCounter.getLastValue("consistent", { tableName, dynamodb: { ConsistentRead: true } }), 7);
        assert.equal(await atomicCounter.getLastValue("consistent", { tableName }), 7);
        assert.deepEqual(reads, [false, true, true]); // strongly consistent unless asked otherwise
        for (const [call, options] of [
          [atomicCounter.increment, { tableName, dynamodb: { ConditionExpression: "attribute_exists(id)" } }],
          [atomicCounter.increment, { tableName, dynamodb: { ConsistentRead: true } }],
          [atomicCounter.getLastValue, { tableName, dynamodb: { ConsistentRead: "yes" } }],
          [atomicCounter.increment, { tableName, incremnet: 5 }],
          [atomicCounter.increment, { tableName, success: "not a function" }],
        ] as const) {
          const errors: unknown[] = [];
          const error = await rejection(call("consistent", { ...(options as object), error: (e: unknown) => errors.push(e) }));
          assert.ok(error instanceof CounterError && error.code === "Validation", String(error));
          assert.deepEqual(errors, [error]);
        }
        assert.match(
          String(await rejection(atomicCounter.increment("x", { incremnet: 5 } as never))),
          /"incremnet".*did you mean "increment"/,
        );
        assert.equal(proxy.seen.get("GetItem"), 3);
        assert.equal(proxy.seen.get("UpdateItem"), undefined);
      } finally {
        atomicCounter.config.update({ endpoint: server.endpoint });
      }
    });

    it("config.update accepts every AWS.Config field: the applied ones take effect, the others are ignored, a typo is an error", async () => {
      const proxy = await startFaultProxy(server.endpoint, () => "error500");
      after(() => proxy.close());
      // Every field AWS SDK v2's AWS.Config took, with values of the kind it took.
      const ignored = Object.fromEntries(IGNORED_FIELDS.map((name) => [name, name === "logger" ? console : true]));
      try {
        atomicCounter.config.update({
          ...ignored,
          endpoint: proxy.endpoint,
          maxRetries: 2,
          retryDelayOptions: { base: 1, customBackoff: () => 1 },
          httpOptions: { timeout: 1000, connectTimeout: 500, agent: undefined, xhrAsync: true },
          sslEnabled: false,
          dynamodb: { apiVersion: "2012-08-10" },
        });
        // maxRetries 2: three attempts of the (idempotent) read, then the error.
        const error = await rejection(atomicCounter.getLastValue("x", { tableName }));
        assert.equal((error as CounterError).code, "Service");
        assert.equal(proxy.seen.get("GetItem"), 3);
        // dynamodb-specific settings win over the global ones (as AWS SDK v2's service configuration did).
        atomicCounter.config.update({ dynamodb: { maxRetries: 0 } });
        await rejection(atomicCounter.getLastValue("x", { tableName }));
        assert.equal(proxy.seen.get("GetItem"), 4);
        // httpOptions.timeout is the per-attempt limit.
        proxy.setFault(() => "hang");
        atomicCounter.config.update({ httpOptions: { timeout: 200 }, dynamodb: {}, maxRetries: 0 });
        assert.equal(((await rejection(atomicCounter.getLastValue("x", { tableName }))) as CounterError).code, "Timeout");
      } finally {
        atomicCounter.config.reset();
        atomicCounter.config.update(connection(server.endpoint));
      }
      // Names AWS.Config never had, and bad values of applied fields: Validation, at update, nothing changed.
      for (const bad of [
        { regoin: "us-east-1" },
        { httpOptions: { timeOut: 5 } },
        { dynamodb: { sslEnable: true } },
        { maxRetries: -1 },
        { httpOptions: { timeout: "5s" } },
      ]) {
        assert.throws(
          () => atomicCounter.config.update(bad as never),
          (e: unknown) => e instanceof CounterError && e.code === "Validation",
          JSON.stringify(bad),
        );
      }
      assert.throws(() => atomicCounter.config.update({ regoin: "x" } as never), /"regoin".*did you mean "region"/);
      // AWS.Config.update's own second argument: unknown keys ignored.
      atomicCounter.config.update({ someServiceWeDoNotKnow: { x: 1 } } as never, true);
      assert.equal(await atomicCounter.increment("after-config", { tableName }), 1);
    });

    it("httpOptions.timeout: 0 means no time limit, as in AWS SDK v2", async () => {
      // What the client is given: the longest timer there is (a longer one would fire at once).
      assert.equal(clientOptions({ httpOptions: { timeout: 0 } }).timeoutMs, MAX_TIMER_MS);
      assert.equal(clientOptions({ httpOptions: { timeout: 2 ** 40 } }).timeoutMs, MAX_TIMER_MS);
      assert.equal(clientOptions({ dynamodb: { httpOptions: { timeout: 0 } }, httpOptions: { timeout: 100 } }).timeoutMs, MAX_TIMER_MS);
      assert.equal(clientOptions({ httpOptions: { timeout: 1500 } }).timeoutMs, 1500);
      assert.throws(
        () => atomicCounter.config.update({ httpOptions: { timeout: -1 } }),
        (e: unknown) => e instanceof CounterError && e.code === "Validation",
      );
      // And in use: an answer that takes 300 ms arrives.
      const proxy = await startFaultProxy(server.endpoint, () => ({ delayMs: 300 }));
      after(() => proxy.close());
      try {
        atomicCounter.config.update({ endpoint: proxy.endpoint, httpOptions: { timeout: 0 } });
        assert.equal(await atomicCounter.increment("no-timeout", { tableName }), 1);
        assert.equal(proxy.seen.get("UpdateItem"), 1);
      } finally {
        atomicCounter.config.reset();
        atomicCounter.config.update(connection(server.endpoint));
      }
    });

    it("null options are no options, as in dynamodb-atomic-counter (the default table: a number or a CounterError)", async () => {
      for (const call of [atomicCounter.increment("n", null), atomicCounter.getLastValue("n", null)]) {
        const out = await call.then(
          (v) => v,
          (e: unknown) => e,
        );
        assert.ok(typeof out === "number" || (out instanceof CounterError && out.code !== "Validation"), String(out));
      }
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
      const { stdout } = await promisify(execFile)(process.execPath, ["--unhandled-rejections=strict", "-e", script], {
        cwd: root,
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(stdout.trim(), "error callback TableNotFound");
    });
  });
}

// config.update takes the credential sources the AWS SDK v2 users of the old package had: keys, a function with
// an expiry, an AWS.Credentials object (refreshed through getPromise), an AWS.CredentialProviderChain, and by
// default the chain (environment, shared files, web identity, container, instance metadata).
describe("dynacount/compat: config.update credential sources", () => {
  const keyOf = (headers: import("node:http").IncomingHttpHeaders) => /Credential=([^/]+)\//.exec(String(headers.authorization))?.[1];

  /** A table on dynalite (which ignores which key signs) and a proxy recording the signing key of each request. */
  async function setUp() {
    const server = (await servers()).find((s) => s.name === "dynalite")!;
    const tableName = uniqueTable("compatcreds");
    await clientFor(server.endpoint, { tableName }).createTable();
    const signers: (string | undefined)[] = [];
    const proxy = await startFaultProxy(server.endpoint, (info) => (signers.push(keyOf(info.headers)), "pass"));
    after(() => proxy.close());
    return { tableName, signers, endpoint: proxy.endpoint };
  }

  /** An AWS SDK v2 `AWS.Credentials` as it behaves: getPromise() refreshes in place once expireTime is near (15 s). */
  class V2Credentials {
    accessKeyId = "";
    secretAccessKey = "";
    sessionToken: string | null = null;
    expireTime: Date | null = null;
    refreshes = 0;
    async getPromise(): Promise<void> {
      if (this.expireTime === null || this.expireTime.getTime() - Date.now() < 15_000) {
        this.refreshes++;
        Object.assign(this, {
          accessKeyId: `ASIAV2${this.refreshes}`,
          secretAccessKey: `v2-secret-${this.refreshes}`,
          sessionToken: `v2-token-${this.refreshes}`,
          expireTime: new Date(Date.now() + 3_600_000),
        });
      }
    }
  }

  after(() => atomicCounter.config.reset());

  it("a function, called again shortly before the expiration it returns", async () => {
    const { tableName, signers, endpoint } = await setUp();
    let calls = 0;
    atomicCounter.config.reset();
    atomicCounter.config.update({
      region: "us-east-1",
      endpoint,
      credentials: async () => ({
        accessKeyId: `ASIAFN${++calls}`,
        secretAccessKey: "s",
        sessionToken: "t",
        expiration: new Date(Date.now() + 3_600_000),
      }),
    });
    assert.equal(await atomicCounter.increment("k", { tableName }), 1);
    assert.equal(await atomicCounter.increment("k", { tableName }), 2);
    assert.equal(calls, 1);
    assert.deepEqual(signers, ["ASIAFN1", "ASIAFN1"]);
  });

  it("an AWS.Credentials object is asked through getPromise() and refreshed near its expireTime; a CredentialProviderChain is resolved", async () => {
    const { tableName, signers, endpoint } = await setUp();
    const v2 = new V2Credentials();
    atomicCounter.config.reset();
    atomicCounter.config.update({ region: "us-east-1", endpoint, credentials: v2 });
    await atomicCounter.increment("k", { tableName });
    const realNow = Date.now;
    Date.now = () => realNow() + 2 * 3_600_000; // both the cache and the v2 object see the keys expired
    try {
      await atomicCounter.increment("k", { tableName });
    } finally {
      Date.now = realNow;
    }
    assert.equal(v2.refreshes, 2);
    assert.deepEqual(signers, ["ASIAV21", "ASIAV22"]);

    const fromChain = new V2Credentials();
    let resolved = 0;
    atomicCounter.config.reset();
    atomicCounter.config.update({
      region: "us-east-1",
      endpoint,
      credentialProvider: { resolvePromise: async () => (resolved++, fromChain) },
    });
    await atomicCounter.increment("k", { tableName });
    assert.equal(resolved, 1);
    assert.equal(signers.at(-1), "ASIAV21");
  });

  it("nothing given: the chain, here the shared credentials file of the process's HOME", async () => {
    const { tableName, signers, endpoint } = await setUp();
    const { mkdtempSync, mkdirSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const home = mkdtempSync(`${tmpdir()}/dynacount-compat-`);
    mkdirSync(`${home}/.aws`);
    writeFileSync(`${home}/.aws/credentials`, "[default]\naws_access_key_id = AKIDCOMPATFILE\naws_secret_access_key = s\n");
    const saved = { ...process.env };
    for (const name of Object.keys(process.env)) if (name.startsWith("AWS_")) delete process.env[name];
    Object.assign(process.env, { HOME: home, AWS_EC2_METADATA_DISABLED: "true" });
    try {
      atomicCounter.config.reset();
      atomicCounter.config.update({ region: "us-east-1", endpoint });
      assert.equal(await atomicCounter.increment("k", { tableName }), 1);
      assert.deepEqual(signers, ["AKIDCOMPATFILE"]);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });
});
