import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { CounterClient, CounterError } from "../../src/index.ts";
import { errorFromResponse } from "../../src/core/errors.ts";
import type { Fault } from "../support/fault-proxy.ts";
import { freePort } from "../support/servers.ts";
import { clientFor, credentials, rejection, servers, SECRET, SESSION_TOKEN, throughProxy } from "../support/harness.ts";

/** {@link throughProxy} with fast retries, unless the test sets its own. */
const proxied = (endpoint: string, options: Parameters<typeof throughProxy>[1] = {}) =>
  throughProxy(endpoint, { retry: { baseDelayMs: 1, maxDelayMs: 5 }, ...options });

/** Faults for the first `count` requests of `operation`, then pass. */
const firstN = (operation: string, count: number, fault: Fault) => {
  let left = count;
  return (info: { operation: string }): Fault => (info.operation === operation && left-- > 0 ? fault : "pass");
};

function assertNoSecrets(error: unknown) {
  assert.ok(error instanceof Error);
  const texts = [
    error.message,
    error.stack ?? "",
    JSON.stringify(error),
    String((error as { cause?: unknown }).cause ?? ""),
    JSON.stringify((error as { cause?: unknown }).cause ?? null),
    (error as { cause?: Error }).cause?.stack ?? "",
  ];
  for (const text of texts) {
    assert.ok(!text.includes(SECRET), `secret access key leaked: ${text.slice(0, 200)}`);
    assert.ok(!text.includes(SESSION_TOKEN), `session token leaked: ${text.slice(0, 200)}`);
  }
}

for (const server of await servers()) {
  describe(`failures on ${server.name}`, () => {
    it("a server that accepts and never answers gives Timeout within the limit", async () => {
      const { client, proxy } = await proxied(server.endpoint, { timeoutMs: 300, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 } });
      proxy.setFault(() => "hang");
      const started = performance.now();
      const write = await rejection(client.increment("k"));
      const read = await rejection(client.get("k"));
      const elapsed = performance.now() - started;
      assert.ok(write instanceof CounterError && read instanceof CounterError);
      assert.equal(write.code, "Timeout");
      assert.equal(write.ambiguous, true, "an unanswered write may have been applied");
      assert.equal(proxy.seen.get("UpdateItem"), 1, "an ambiguous write is not retried");
      assert.equal(read.code, "Timeout");
      assert.equal(read.ambiguous, false, "a read is never ambiguous");
      assert.equal(proxy.seen.get("GetItem"), 2, "a read is retried up to attempts");
      // 1 write attempt + 2 read attempts of 300 ms each; generous slack for a loaded machine
      assert.ok(elapsed < 900 + 3000, `took ${elapsed} ms`);
      assertNoSecrets(write);
    });

    it("a connection closed after the server applied the write is an ambiguous Network error, applied once", async () => {
      const { client, direct, proxy } = await proxied(server.endpoint);
      proxy.setFault(firstN("UpdateItem", 1, "drop-after"));
      const error = await rejection(client.increment("k", { by: 3 }));
      assert.ok(error instanceof CounterError);
      assert.equal(error.code, "Network");
      assert.equal(error.ambiguous, true);
      assert.equal(error.retryable, true);
      assert.equal(proxy.forwarded.get("UpdateItem"), 1);
      assert.equal(await direct.get("k"), 3, "applied exactly once, not retried");
      assertNoSecrets(error);
    });

    it("a reset before the server saw the write moves the counter at most once", async () => {
      const { client, direct, proxy } = await proxied(server.endpoint);
      proxy.setFault(firstN("UpdateItem", 1, "reset"));
      const error = await rejection(client.increment("k"));
      assert.ok(error instanceof CounterError);
      assert.equal(error.code, "Network");
      assert.equal(error.ambiguous, true);
      assert.equal(await direct.get("k"), 0);
    });

    it("atLeastOnce opts into retrying ambiguous failures", async () => {
      const { client, direct, proxy } = await proxied(server.endpoint);
      proxy.setFault(firstN("UpdateItem", 1, "error500-after"));
      assert.equal(await client.increment("k", { atLeastOnce: true }), 2, "applied twice: the documented risk");
      assert.equal(await direct.get("k"), 2);
    });

    it("with atLeastOnce, a clean rejection after an ambiguous attempt is still reported ambiguous", async () => {
      const { client, direct, proxy } = await proxied(server.endpoint, {
        retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 1, atLeastOnce: true },
      });
      let n = 0;
      proxy.setFault((info) => (info.operation !== "UpdateItem" ? "pass" : n++ === 0 ? "error500-after" : "throttle"));
      const error = await rejection(client.increment("k"));
      assert.ok(error instanceof CounterError);
      assert.equal(error.code, "Throttled");
      assert.equal(error.ambiguous, true, "the first attempt was applied");
      assert.match(error.message, /earlier attempt may have been applied/);
      assert.equal(await direct.get("k"), 1);
    });

    it("5xx on a write is an ambiguous Service error and not retried", async () => {
      const { client, direct, proxy } = await proxied(server.endpoint);
      proxy.setFault(firstN("UpdateItem", 1, "error500-after"));
      const error = await rejection(client.increment("k"));
      assert.ok(error instanceof CounterError);
      assert.equal(error.code, "Service");
      assert.equal(error.status, 500);
      assert.equal(error.ambiguous, true);
      assert.equal(error.requestId, "proxy-1");
      assert.equal(proxy.seen.get("UpdateItem"), 1);
      assert.equal(await direct.get("k"), 1);
    });

    it("5xx on a read is retried and then succeeds", async () => {
      const { client, direct, proxy } = await proxied(server.endpoint);
      await direct.increment("k", { by: 4 });
      proxy.setFault(firstN("GetItem", 2, "error500"));
      assert.equal(await client.get("k"), 4);
      assert.equal(proxy.seen.get("GetItem"), 3);
    });

    it("a 200 with a body that is not JSON is retryable like a 5xx: a read is sent again, a write is ambiguous", async () => {
      const { client, direct, proxy } = await proxied(server.endpoint);
      const garbled: Fault = { rewrite: (request) => ({ request, response: () => "<html>Bad Gateway</html>" }) };
      await direct.increment("k", { by: 4 });
      proxy.setFault(firstN("GetItem", 1, garbled));
      assert.equal(await client.get("k"), 4);
      assert.equal(proxy.seen.get("GetItem"), 2);
      proxy.setFault(firstN("UpdateItem", 1, garbled));
      const error = await rejection(client.increment("k"));
      assert.ok(error instanceof CounterError);
      assert.deepEqual([error.code, error.retryable, error.ambiguous], ["Service", true, true]);
      assert.equal(await direct.get("k"), 5, "applied, once");
    });

    it("throttling is retried with backoff and then succeeds, applied once", async () => {
      const { client, direct, proxy } = await proxied(server.endpoint);
      proxy.setFault(firstN("UpdateItem", 3, "throttle"));
      assert.equal(await client.increment("k"), 1);
      assert.equal(proxy.seen.get("UpdateItem"), 4);
      assert.equal(proxy.forwarded.get("UpdateItem"), 1);
      assert.equal(await direct.get("k"), 1);
    });

    it("throttling has its own budget: past its attempts it surfaces as Throttled, not ambiguous", async () => {
      // One attempt for other failures: throttling retries must not draw on that budget.
      const { client, proxy } = await proxied(server.endpoint, {
        retry: { attempts: 1, throttle: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 } },
      });
      proxy.setFault(() => "throttle");
      const error = await rejection(client.increment("k"));
      assert.ok(error instanceof CounterError);
      assert.equal(error.code, "Throttled");
      assert.equal(error.retryable, true);
      assert.equal(error.ambiguous, false);
      assert.equal(proxy.seen.get("UpdateItem"), 3);
    });

    it("a 300 ms throttling burst is ridden out with the default retry options", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint);
      let until: number | undefined;
      proxy.setFault((info) => {
        until ??= Date.now() + 300;
        return info.operation === "UpdateItem" && Date.now() < until ? "throttle" : "pass";
      });
      assert.equal(await client.increment("burst"), 1);
      assert.ok((proxy.injected.get("throttle") ?? 0) >= 2, "it was throttled more than once");
      assert.equal(await direct.get("burst"), 1, "applied once");
    });

    it("a long throttling burst ends in Throttled within the documented default budget (10 attempts, ≤ 9.15 s of backoff)", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint);
      proxy.setFault((info) => (info.operation === "UpdateItem" ? "throttle" : "pass"));
      const started = Date.now();
      const error = await rejection(client.increment("long"));
      const took = Date.now() - started;
      assert.ok(error instanceof CounterError && error.code === "Throttled" && !error.ambiguous);
      assert.equal(proxy.seen.get("UpdateItem"), 10, "ten attempts");
      assert.ok(took < 9_150 + 2_000, `gave up after ${took} ms`);
      assert.equal(await direct.get("long"), 0);
    });

    for (const type of ["TransactionConflictException", "ReplicatedWriteConflictException"]) {
      it(`${type} (a 400: not applied) is retried, and the increment is applied once`, async () => {
        const { client, direct, proxy } = await proxied(server.endpoint);
        proxy.setFault(firstN("UpdateItem", 2, { status: 400, type, message: "Transaction is ongoing for the item" }));
        assert.equal(await client.increment("k", { by: 5 }), 5);
        assert.equal(proxy.seen.get("UpdateItem"), 3);
        assert.equal(proxy.forwarded.get("UpdateItem"), 1);
        assert.equal(await direct.get("k"), 5);
      });
    }

    it("a forced 403 is AccessDenied", async () => {
      const { client, proxy } = await proxied(server.endpoint);
      proxy.setFault(() => "forbidden");
      const error = await rejection(client.increment("k"));
      assert.ok(error instanceof CounterError);
      assert.equal(error.code, "AccessDenied");
      assert.equal(error.status, 403);
      assert.equal(proxy.seen.get("UpdateItem"), 1, "not retried");
      assertNoSecrets(error);
    });
  });
}

describe("failures without a server in the way", () => {
  it("connection refused is a Network error that was certainly not sent, retried", async () => {
    const port = await freePort();
    let calls = 0;
    const client = clientFor(`http://127.0.0.1:${port}`, {
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
      fetch: (input, init) => {
        calls++;
        return fetch(input, init);
      },
    });
    const error = await rejection(client.increment("k"));
    assert.ok(error instanceof CounterError);
    assert.equal(error.code, "Network");
    assert.equal(error.ambiguous, false);
    assert.equal(calls, 3, "refused writes are safe to retry");
    assertNoSecrets(error);
  });

  it("DynamoDB's transient conflicts are retryable and not ambiguous; other 400s are final", () => {
    const answer = (type: string, status = 400) =>
      errorFromResponse(
        status,
        { __type: `com.amazonaws.dynamodb.v20120810#${type}`, message: "m" },
        { requestId: "r", mayHaveApplied: true },
      );
    for (const type of ["TransactionConflictException", "ReplicatedWriteConflictException"]) {
      const error = answer(type);
      assert.deepEqual(
        [error.code, error.retryable, error.ambiguous, error.status, error.awsType, error.requestId],
        ["Service", true, false, 400, type, "r"],
        type,
      );
      assert.match(error.message, new RegExp(`${type}: m; it was not applied`));
    }
    for (const type of ["ConditionalCheckFailedException", "TransactionCanceledException", "ItemCollectionSizeLimitExceededException"]) {
      const error = answer(type);
      assert.deepEqual([error.code, error.retryable, error.ambiguous], ["Service", false, false], type);
    }
    const failed = answer("InternalServerError", 500);
    assert.deepEqual([failed.retryable, failed.ambiguous], [true, true], "a 5xx of a write may have been applied");
  });

  it("wrong credentials on DynamoDB Local (which checks the key id) are AccessDenied", async () => {
    const local = (await servers()).find((s) => s.name === "ddblocal")!;
    const client = new CounterClient({
      endpoint: local.endpoint,
      env: {},
      credentials: { accessKeyId: "not_a-valid/key", secretAccessKey: SECRET, sessionToken: SESSION_TOKEN },
    });
    const error = await rejection(client.get("k"));
    assert.ok(error instanceof CounterError);
    assert.equal(error.code, "AccessDenied");
    assert.equal(error.awsType, "UnrecognizedClientException");
    assert.match(error.message, /AWS_ACCESS_KEY_ID/);
    assertNoSecrets(error);
  });

  it("secrets echoed back by a server are scrubbed from errors", async () => {
    // A server that quotes the whole request, headers included, in its error message.
    const http = await import("node:http");
    const echo = http.createServer((req, res) => {
      res.writeHead(400, { "content-type": "application/x-amz-json-1.0" });
      res.end(
        JSON.stringify({
          __type: "com.amazon.coral.service#InvalidSignatureException",
          message: `headers: ${JSON.stringify(req.headers)} key ${SECRET}`,
        }),
      );
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    after(() => new Promise<void>((r) => echo.close(() => r())));
    const { port } = echo.address() as import("node:net").AddressInfo;
    const client = clientFor(`http://127.0.0.1:${port}`);
    const error = await rejection(client.increment("k"));
    assert.ok(error instanceof CounterError);
    assert.equal(error.code, "AccessDenied");
    assert.match(error.message, /\[redacted\]/);
    assertNoSecrets(error);
  });

  it("secrets echoed back escaped (\\/, \\u002b, \\u003d, all \\u) are scrubbed too, on both transports", async () => {
    // Real AWS secrets and session tokens are base64: '/', '+' and '=' are where JSON's escapes may differ.
    const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLE=KEY";
    const token = "IQoJb3JpZ2luX2VjEPz//////////wEaCXVzLWVhc3QtMSJHMEUC+IQD/token+with=padding==";
    const slashes = (s: string) => s.replace(/\//g, "\\/");
    const hex = (c: string, upper = false) =>
      `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")[upper ? "toUpperCase" : "toLowerCase"]()}`;
    const some = (s: string) => s.replace(/[+=]/g, (c) => hex(c)).replace(/\//g, "\\/");
    const every = (s: string, upper = false) => s.replace(/[\s\S]/g, (c) => hex(c, upper));
    // JSON string contents (between the quotes) that each spell the token, then the secret, differently.
    const spellings = [slashes, some, every, (s: string) => every(s, true), (s: string) => slashes(JSON.stringify(s).slice(1, -1))];
    // A quoted header inside a message: escaped twice, so one level of escapes survives JSON.parse.
    const twice = (s: string) => JSON.stringify(JSON.stringify({ "x-amz-security-token": slashes(s) })).slice(1, -1);
    const bodies = [
      ...spellings.map(
        (spell) => `{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"token ${spell(token)} key ${spell(secret)}"}`,
      ),
      ...spellings.map(
        (spell) =>
          `{"__type":"com.amazon.coral.validate#${spell(token)}","message":"${spell(secret)}","Item":{"t":{"S":"${spell(token)}"}}}`,
      ),
      `{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"headers: ${twice(token)} ${twice(secret)}"}`,
      // Not JSON (a proxy's page): the raw text is scrubbed, escaped spellings included.
      `<html>token ${some(token)} or ${every(token)}; key ${slashes(secret)}</html>`,
    ];
    const http = await import("node:http");
    const { inspect } = await import("node:util");
    let next = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(400, { "content-type": "application/x-amz-json-1.0", "x-amzn-requestid": `id-${token}` });
      res.end(bodies[next]);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    after(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
    const endpoint = `http://127.0.0.1:${(server.address() as import("node:net").AddressInfo).port}`;
    /** `text` with every JSON escape undone, however deeply nested. */
    const unescaped = (text: string) => {
      for (let before = ""; before !== text; ) {
        before = text;
        text = text.replace(/\\+u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\\+\//g, "/");
      }
      return text;
    };
    for (const transport of ["auto", "fetch"] as const) {
      const client = clientFor(endpoint, {
        transport,
        retry: { attempts: 1 },
        credentials: { accessKeyId: "AKIDTESTLOCAL", secretAccessKey: secret, sessionToken: token },
      });
      for (next = 0; next < bodies.length; next++) {
        const error = await rejection(client.increment("k"));
        assert.ok(error instanceof CounterError, String(error));
        const what = `${transport}, answer ${next}: ${error.message.slice(0, 300)}`;
        assert.match(error.message, /\[redacted\]/, `the echo was scrubbed, not lost: ${what}`);
        const texts = [error.message, error.stack ?? "", JSON.stringify(error), String(error.cause), inspect(error, { depth: 10 })];
        for (const text of texts) {
          for (const s of [secret, token]) {
            assert.ok(!unescaped(text).includes(s), `leaked, raw or escaped: ${what}\n${text.slice(0, 500)}`);
            for (const spell of spellings) assert.ok(!text.includes(spell(s)), `leaked escaped: ${what}`);
          }
        }
      }
    }
  });

  it("Config and Validation errors carry no secrets either", async () => {
    const client = clientFor("http://127.0.0.1:9", { credentials });
    for (const error of [
      await rejection(client.increment("")),
      await rejection(client.increment("k", { by: 1.5 })),
      await rejection(
        Promise.resolve().then(() => new CounterClient({ env: {}, credentials: { accessKeyId: "", secretAccessKey: SECRET } })),
      ),
    ]) {
      assert.ok(error instanceof CounterError);
      assertNoSecrets(error);
    }
  });
});
