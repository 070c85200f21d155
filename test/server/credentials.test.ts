// Credentials from a function: called once, again shortly before expiry, one call at a time under 50 concurrent
// requests; its failures; and the transport's scrubbing following each refresh.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { inspect } from "node:util";
import { CounterClient, CounterError, type ClientOptions } from "../../src/index.ts";
import { refreshing, type Credentials } from "../../src/core/credentials/provider.ts";
import { signer } from "../support/aws-endpoints.ts";
import { startFaultProxy } from "../support/fault-proxy.ts";
import { freshTable, rejection, servers, TRANSPORT } from "../support/harness.ts";

// DynamoDB Local keeps a database per access key id, so rotating keys would each see an empty one: dynalite,
// which ignores them, serves these tests.
const dynalite = (await servers()).find((s) => s.name === "dynalite")!;

/** Numbered temporary credentials that expire `lifeMs` from now. */
const temporary = (n: number, lifeMs: number): Credentials => ({
  accessKeyId: `ASIAFN${String(n).padStart(6, "0")}`,
  secretAccessKey: `fn-secret-${n}-doNotLeak/+=`,
  sessionToken: `fn-token-${n}-doNotLeakEither/+=`,
  expiration: new Date(Date.now() + lifeMs),
});

/** A table on dynalite, a proxy in front that records which key signed each request, and a client through it. */
async function setUp(credentials: NonNullable<ClientOptions["credentials"]>) {
  const direct = await freshTable(dynalite.endpoint);
  const signers: (string | undefined)[] = [];
  const proxy = await startFaultProxy(dynalite.endpoint, (info) => (signers.push(signer(info.headers)), "pass"));
  after(() => proxy.close());
  const client = new CounterClient({
    endpoint: proxy.endpoint,
    region: "us-east-1",
    env: {},
    tableName: direct.table.tableName,
    credentials,
    ...(TRANSPORT && { transport: TRANSPORT }),
  });
  return { client, direct, proxy, signers };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The clock the credential cache reads (`Date.now`), moved forward by `skip` without waiting: a loaded machine
 * takes its time over 50 requests, which real lifetimes of a second would not survive. Signatures still carry
 * the real time (aws4fetch reads `new Date()`).
 */
const realNow = Date.now;
let offset = 0;
Date.now = () => realNow() + offset;
const skip = (ms: number) => void (offset += ms);
after(() => void (Date.now = realNow));
const fifty = (client: CounterClient) => Promise.all(Array.from({ length: 50 }, () => client.increment("k")));

describe("credentials from a function", () => {
  it("is called once for 50 concurrent first requests, then not again while the credentials last", async () => {
    let calls = 0;
    const { client, signers } = await setUp(async () => {
      calls++;
      await sleep(50); // the requests pile up behind the one call
      return temporary(calls, 3_600_000);
    });
    const values = await fifty(client);
    assert.deepEqual(
      [...values].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.equal(calls, 1, "one call for 50 waiting requests");
    await fifty(client);
    assert.equal(calls, 1, "an hour of life left: no call");
    assert.deepEqual(new Set(signers), new Set(["ASIAFN000001"]));
  });

  it("50 concurrent requests around an expiry: one call before it (in the background) and one after it (awaited)", async () => {
    let calls = 0;
    let release: () => void = () => undefined;
    const { client, signers } = await setUp(async () => {
      calls++;
      // The background refresh is held until released, so the test sees requests sign with the old keys meanwhile.
      if (calls === 2) await new Promise<void>((resolve) => (release = resolve));
      return temporary(calls, 3_600_000);
    });
    await fifty(client);
    assert.equal(calls, 1);
    skip(56 * 60_000); // 4 minutes left: inside the last 5, before expiry
    await fifty(client);
    assert.equal(calls, 2, "one background call, however many requests");
    assert.equal(
      signers.filter((s) => s === "ASIAFN000002").length,
      0,
      "the requests did not wait for it: they signed with the current keys",
    );
    release();
    await sleep(20);
    await fifty(client);
    assert.equal(calls, 2, "the refreshed keys are used");
    assert.equal(signers.slice(-50).filter((s) => s === "ASIAFN000002").length, 50);
    skip(61 * 60_000); // past the expiry of the second keys, with no request in between
    await fifty(client);
    assert.equal(calls, 3, "expired: the 50 requests waited for one call");
    assert.equal(signers.slice(-50).filter((s) => s === "ASIAFN000003").length, 50, "and all signed with the new keys");
  });

  it("a short life is refreshed at half of it, a long one 5 minutes before its end", async () => {
    const before = Date.now;
    let now = 1_000_000;
    Date.now = () => now;
    try {
      for (const [life, refreshAfter] of [
        [60_000, 30_000],
        [3_600_000, 3_300_000],
      ] as const) {
        let calls = 0;
        const source = refreshing(() => (calls++, { accessKeyId: "a", secretAccessKey: "b", expiration: new Date(now + life) }));
        const start = now;
        await source();
        now = start + refreshAfter - 1;
        await source();
        assert.equal(calls, 1, `life ${life}: not yet`);
        now = start + refreshAfter;
        await source();
        await Promise.resolve();
        assert.equal(calls, 2, `life ${life}: refreshed ${life - refreshAfter} ms before expiry`);
      }
    } finally {
      Date.now = before;
    }
  });

  it("no expiration: called once for the client's life; keys given as an object are never asked for", async () => {
    let calls = 0;
    const { client } = await setUp(() => (calls++, { accessKeyId: "AKIDSTATIC", secretAccessKey: "static-secret" }));
    for (let i = 0; i < 3; i++) await fifty(client);
    assert.equal(calls, 1);
  });

  it("a failing background refresh keeps the valid keys in use and is tried again by the next request", async () => {
    let calls = 0;
    const { client, signers } = await setUp(async () => {
      calls++;
      if (calls === 2) throw new Error("vault unreachable");
      return temporary(calls, 3_600_000);
    });
    await client.increment("k");
    skip(57 * 60_000);
    await client.increment("k"); // starts the refresh, which fails
    await sleep(20);
    assert.equal(calls, 2);
    await client.increment("k"); // tries again
    await sleep(20);
    assert.equal(calls, 3);
    assert.deepEqual(signers, ["ASIAFN000001", "ASIAFN000001", "ASIAFN000001"]);
    await client.increment("k");
    assert.equal(signers.at(-1), "ASIAFN000003");
  });

  it("a function that throws, or returns no keys: a Config error with the cause; nothing is sent", async () => {
    const { client, proxy } = await setUp(() => {
      throw new Error("vault unreachable");
    });
    const error = await rejection(client.increment("k"));
    assert.ok(error instanceof CounterError);
    assert.equal(error.code, "Config");
    assert.match(error.message, /credentials function failed: Error: vault unreachable/);
    assert.equal(error.retryable, true);
    assert.equal(error.ambiguous, false);
    assert.equal((error.cause as Error).message, "vault unreachable");
    for (const returned of [undefined, {}, { accessKeyId: "a" }, { accessKeyId: "", secretAccessKey: "b" }]) {
      const bad = new CounterClient({
        endpoint: proxy.endpoint,
        env: {},
        credentials: async () => returned as never,
        retry: { attempts: 1 },
      });
      const e = await rejection(bad.get("k"));
      assert.ok(e instanceof CounterError && e.code === "Config", String(e));
      assert.match(e.message, /no accessKeyId and secretAccessKey/);
    }
    assert.equal(proxy.seen.size, 0, "no request reached DynamoDB");
  });

  it("a CounterError from the function reaches the caller as it is", async () => {
    const own = new CounterError("AccessDenied", "not today");
    const { client } = await setUp(() => Promise.reject(own));
    assert.equal(await rejection(client.get("k")), own);
  });

  it("the function is checked by what it returns, keys by the option schema", () => {
    assert.ok(new CounterClient({ env: {}, credentials: () => ({ accessKeyId: "a", secretAccessKey: "b" }) }));
    assert.throws(
      () => new CounterClient({ env: {}, credentials: { accessKeyId: "a" } as never }),
      (e: unknown) => e instanceof CounterError && e.code === "Validation" && /credentials\.secretAccessKey/.test(e.message),
    );
    assert.throws(
      () => new CounterClient({ env: {}, credentials: "a:b" as never }),
      (e: unknown) => e instanceof CounterError && e.code === "Validation",
    );
  });
});

describe("scrubbing follows refreshed credentials", () => {
  it("an echo of the old or the new secret and token, raw or escaped, never reaches an error", async () => {
    // A server that quotes the request's headers back (the security token among them) and the secrets it knows.
    const issuedKeys: Credentials[] = [];
    // Every secret issued so far: a server may still echo an old one after a refresh.
    const known = () => issuedKeys.flatMap((k) => [k.secretAccessKey, k.sessionToken!]);
    const echo = http.createServer((req, res) => {
      req.resume();
      const secrets = known();
      res.writeHead(400, { "content-type": "application/x-amz-json-1.0" });
      const escaped = secrets.map((s) => JSON.stringify(s).slice(1, -1).replace(/\//g, "\\/").replace(/\+/g, "\\u002b"));
      res.end(
        JSON.stringify({
          __type: "com.amazon.coral.service#InvalidSignatureException",
          message: `headers ${JSON.stringify(req.headers)} known ${secrets.join(" ")} ${escaped.join(" ")}`,
        }),
      );
    });
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    after(() => new Promise<void>((resolve) => (echo.closeAllConnections(), echo.close(() => resolve()))));
    let calls = 0;
    const client = new CounterClient({
      endpoint: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`,
      env: {},
      retry: { attempts: 1 },
      ...(TRANSPORT && { transport: TRANSPORT }),
      credentials: () => {
        const keys = temporary(++calls, 3_600_000);
        issuedKeys.push(keys);
        return keys;
      },
    });
    for (let round = 0; round < 3; round++) {
      const error = await rejection(client.increment("k"));
      assert.ok(error instanceof CounterError, String(error));
      const secrets = known();
      assert.equal(secrets.length, 2 * (round + 1));
      const texts = [error.message, error.stack ?? "", JSON.stringify(error), inspect(error, { depth: 10 })];
      for (const text of texts) {
        for (const s of secrets) {
          assert.ok(!text.includes(s), `round ${round}: leaked ${s}`);
          assert.ok(!text.includes(s.replace(/\//g, "\\/")), `round ${round}: leaked escaped ${s}`);
        }
      }
      assert.match(error.message, /\[redacted\]/);
      skip(3_600_001); // expired: the next request gets new keys
    }
    assert.equal(calls, 3);
  });
});
