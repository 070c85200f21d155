// createTable on both servers: DescribeTable's eventual consistency after CreateTable, and existing tables whose key schema or TTL differ.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { CounterError } from "../../src/index.ts";
import { startFaultProxy, type Fault, type FaultProxy } from "../support/fault-proxy.ts";
import { clientFor, rejection, servers, uniqueTable } from "../support/harness.ts";

/** A fault proxy in front of `endpoint`, closed after the test file. */
async function proxyTo(endpoint: string): Promise<FaultProxy> {
  const proxy = await startFaultProxy(endpoint);
  after(() => proxy.close());
  return proxy;
}

/** DynamoDB's answer to DescribeTable for a table its metadata does not show yet. */
const NOT_FOUND: Fault = { status: 400, type: "ResourceNotFoundException", message: "Requested resource not found" };

/** A Config error from createTable, with its message. */
async function configError(promise: Promise<unknown>): Promise<string> {
  const error = await rejection(promise);
  assert.ok(error instanceof CounterError, String(error));
  assert.equal(error.code, "Config", error.message);
  assert.equal(error.retryable, false);
  return error.message;
}

for (const server of await servers()) {
  describe(`createTable on ${server.name}`, () => {
    it("rides out DescribeTable answering ResourceNotFoundException right after CreateTable", async () => {
      const proxy = await proxyTo(server.endpoint);
      let describes = 0;
      proxy.setFault(({ operation }) => (operation === "DescribeTable" && ++describes <= 3 ? NOT_FOUND : "pass"));
      const client = clientFor(proxy.endpoint, { tableName: uniqueTable("lag") });
      await client.createTable();
      assert.equal(proxy.injected.get("answer"), 3);
      assert.ok((proxy.seen.get("DescribeTable") ?? 0) >= 4);
      assert.equal(await client.increment("k"), 1);
    });

    it("rides it out too when CreateTable answered ResourceInUseException (someone else created the table)", async () => {
      const tableName = uniqueTable("lag-inuse");
      await clientFor(server.endpoint, { tableName }).createTable();
      const proxy = await proxyTo(server.endpoint);
      let describes = 0;
      proxy.setFault(({ operation }) => (operation === "DescribeTable" && ++describes <= 2 ? NOT_FOUND : "pass"));
      const client = clientFor(proxy.endpoint, { tableName });
      await client.createTable();
      assert.equal(proxy.injected.get("answer"), 2);
      assert.equal(await client.increment("k"), 1);
    });

    it("rejects with a Timeout that says what happened when the table never appears within waitMs", async () => {
      const proxy = await proxyTo(server.endpoint);
      proxy.setFault(({ operation }) => (operation === "DescribeTable" ? NOT_FOUND : "pass"));
      const tableName = uniqueTable("never");
      const client = clientFor(proxy.endpoint, { tableName });
      const started = Date.now();
      const error = await rejection(client.createTable({ waitMs: 400 }));
      const took = Date.now() - started;
      assert.ok(error instanceof CounterError, String(error));
      assert.equal(error.code, "Timeout");
      assert.equal(error.awsType, "ResourceNotFoundException");
      assert.match(error.message, new RegExp(`Table "${tableName}" did not appear within 400 ms`));
      assert.match(error.message, /DescribeTable still answers ResourceNotFoundException/);
      assert.match(error.message, /Call createTable\(\) again, or pass a larger waitMs/);
      assert.ok(error.cause instanceof CounterError && error.cause.code === "TableNotFound");
      // Bounded: waitMs plus one DescribeTable, and it did poll more than once meanwhile.
      assert.ok(took >= 400 && took < 3000, `took ${took} ms`);
      assert.ok((proxy.seen.get("DescribeTable") ?? 0) >= 3, `polled ${proxy.seen.get("DescribeTable")} times`);
    });

    it("an existing table with another partition key is a Config error naming both and the fix", async () => {
      const tableName = uniqueTable("pk");
      await clientFor(server.endpoint, { tableName, keyAttribute: "pk" }).createTable();
      const message = await configError(clientFor(server.endpoint, { tableName }).createTable());
      assert.match(message, new RegExp(`Table "${tableName}" already exists`));
      assert.match(message, /partition key is "pk" but keyAttribute is "id"/);
      assert.match(message, /pass \{ keyAttribute: "pk" \}/);
      assert.match(message, /another tableName/);
      // What the message proposes works.
      await clientFor(server.endpoint, { tableName, keyAttribute: "pk" }).createTable();
    });

    it("an existing table with a sort key, asked without one (and the reverse, and another name), is a Config error", async () => {
      const withSort = uniqueTable("sk");
      await clientFor(server.endpoint, { tableName: withSort, sortKeyAttribute: "day" }).createTable();
      let message = await configError(clientFor(server.endpoint, { tableName: withSort }).createTable());
      assert.match(message, /sort key is "day" but sortKeyAttribute is none/);
      assert.match(message, /pass \{ keyAttribute: "id", sortKeyAttribute: "day" \}/);
      message = await configError(clientFor(server.endpoint, { tableName: withSort }).createTable({ sortKeyAttribute: "month" }));
      assert.match(message, /sort key is "day" but sortKeyAttribute is "month"/);

      const withoutSort = uniqueTable("nosk");
      await clientFor(server.endpoint, { tableName: withoutSort }).createTable();
      message = await configError(clientFor(server.endpoint, { tableName: withoutSort, sortKeyAttribute: "day" }).createTable());
      assert.match(message, /sort key is none but sortKeyAttribute is "day"/);
      assert.match(message, /pass \{ keyAttribute: "id" \} and no sortKeyAttribute/);
    });

    it("an existing table whose partition key is a number is a Config error that proposes another table", async () => {
      const tableName = uniqueTable("num");
      const direct = clientFor(server.endpoint, { tableName });
      await direct.send(
        "CreateTable",
        {
          TableName: tableName,
          AttributeDefinitions: [{ AttributeName: "id", AttributeType: "N" }],
          KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
          BillingMode: "PAY_PER_REQUEST",
        },
        { idempotent: true },
      );
      const message = await configError(direct.createTable());
      assert.match(message, /partition key "id" has type N, not S \(dynacount keys are strings\)/);
      assert.doesNotMatch(message, /as it is/);
      assert.match(message, /another tableName/);
    });

    it("TTL on another attribute is a Config error naming both (dynalite, without a TTL API, goes on as before)", async () => {
      const client = clientFor(server.endpoint, { tableName: uniqueTable("ttl2") });
      await client.createTable({ ttlAttribute: "expiresAt" });
      await client.createTable({ ttlAttribute: "expiresAt" });
      if (!server.ttl) {
        await client.createTable({ ttlAttribute: "ttl" });
        return;
      }
      const message = await configError(client.createTable({ ttlAttribute: "ttl" }));
      assert.match(message, /has TTL ENABLED on "expiresAt", not on ttlAttribute "ttl" \(DynamoDB allows one per table\)/);
      assert.match(message, /ttlAttribute: "expiresAt"/);
      assert.match(message, /disable TTL on "expiresAt"/);
    });

    it("TTL changed by another client between DescribeTimeToLive and UpdateTimeToLive: same attribute is fine, another is Config", async () => {
      const tableName = uniqueTable("ttlrace");
      await clientFor(server.endpoint, { tableName }).createTable({ ttlAttribute: "expiresAt" });
      const proxy = await proxyTo(server.endpoint);
      // The first DescribeTimeToLive answers as it would have before the other client enabled TTL.
      let first = true;
      proxy.setFault(({ operation }) => {
        if (operation !== "DescribeTimeToLive" || !first) return "pass";
        first = false;
        return {
          rewrite: (request) => ({ request, response: () => JSON.stringify({ TimeToLiveDescription: { TimeToLiveStatus: "DISABLED" } }) }),
        };
      });
      const client = clientFor(proxy.endpoint, { tableName });
      await client.createTable({ ttlAttribute: "expiresAt" });
      if (!server.ttl) return; // dynalite: no UpdateTimeToLive, nothing to race with
      assert.equal(proxy.seen.get("UpdateTimeToLive"), 1, "it did try, and DynamoDB refused");
      first = true;
      const message = await configError(client.createTable({ ttlAttribute: "ttl" }));
      assert.match(message, /"expiresAt"/);
      assert.match(message, /"ttl"/);
    });
  });
}
