import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { CounterClient, CounterError } from "../../src/index.ts";
import { clientFor, credentials, freshTable, rejection, servers, uniqueTable } from "../support/harness.ts";

for (const server of await servers()) {
  describe(`CounterClient on ${server.name}`, () => {
    it("1,000 concurrent increments on one key return exactly 1..1000", async () => {
      // DynamoDB Local serialises writes to one item; under a loaded CI machine the last of 1,000 can take
      // longer than the default 5 s, and a timeout here would be ambiguous, not a wrong value.
      const client = await freshTable(server.endpoint, { timeoutMs: 60_000 });
      const values = await Promise.all(Array.from({ length: 1000 }, () => client.increment("hot")));
      assert.deepEqual(
        [...values].sort((a, b) => a - b),
        Array.from({ length: 1000 }, (_, i) => i + 1),
      );
      assert.equal(await client.get("hot"), 1000);
    });

    it("increments by 5 four times make 20", async () => {
      const client = await freshTable(server.endpoint);
      for (let i = 0; i < 4; i++) await client.increment("five", { by: 5 });
      assert.equal(await client.get("five"), 20);
    });

    it("accepts negative and zero amounts", async () => {
      const client = await freshTable(server.endpoint);
      assert.equal(await client.increment("k", { by: 0 }), 0);
      assert.equal(await client.increment("k", { by: -7 }), -7);
      assert.equal(await client.increment("k", { by: 10 }), 3);
      assert.equal(await client.increment("k", { by: 0 }), 3);
    });

    it("get of a missing item, or of an item without the attribute, is 0", async () => {
      const client = await freshTable(server.endpoint, { numbers: "bigint" });
      assert.equal(await client.get("never-written"), 0n);
      await client.increment("x", { countAttribute: "other" });
      assert.equal(await client.get("x"), 0n);
    });

    it("a missing table is TableNotFound, naming the table and createTable()", async () => {
      const tableName = uniqueTable("missing");
      const client = clientFor(server.endpoint, { tableName });
      for (const call of [() => client.increment("a"), () => client.get("a"), () => client.reserve("a", 3)]) {
        const error = await rejection(call());
        assert.ok(error instanceof CounterError);
        assert.equal(error.code, "TableNotFound");
        assert.equal(error.awsType, "ResourceNotFoundException");
        assert.equal(error.retryable, false);
        assert.equal(error.ambiguous, false);
        assert.match(error.message, new RegExp(tableName));
        assert.match(error.message, /createTable\(\)/);
      }
    });

    it("reserve ranges from several clients in parallel never overlap", async () => {
      const first = await freshTable(server.endpoint);
      const clients = [first, ...Array.from({ length: 3 }, () => clientFor(server.endpoint, { tableName: first.table.tableName }))];
      const ranges = await Promise.all(
        clients.flatMap((c, i) => Array.from({ length: 25 }, (_, j) => c.reserve("ids", 1 + ((i * 7 + j) % 13)))),
      );
      const taken = new Set<number>();
      let total = 0;
      for (const { first: a, last: b } of ranges) {
        assert.ok(b >= a);
        for (let v = a; v <= b; v++) {
          assert.ok(!taken.has(v), `value ${v} reserved twice`);
          taken.add(v);
        }
        total += b - a + 1;
      }
      assert.equal(await first.get("ids"), total);
      assert.equal(taken.size, total);
      assert.equal(Math.min(...taken), 1);
    });

    it("reserve returns last - first + 1 === count", async () => {
      const client = await freshTable(server.endpoint);
      assert.deepEqual(await client.reserve("r", 10), { first: 1, last: 10 });
      assert.deepEqual(await client.reserve("r", 1), { first: 11, last: 11 });
    });

    it("composite keys keep (id, sort) pairs apart", async () => {
      const client = await freshTable(server.endpoint, { sortKeyAttribute: "day" });
      await client.increment({ id: "page", sort: "mon" }, { by: 2 });
      await client.increment({ id: "page", sort: "tue" }, { by: 3 });
      await client.increment({ id: "other", sort: "mon" }, { by: 5 });
      assert.equal(await client.get({ id: "page", sort: "mon" }), 2);
      assert.equal(await client.get({ id: "page", sort: "tue" }), 3);
      assert.equal(await client.get({ id: "other", sort: "mon" }), 5);
      assert.equal(await client.get({ id: "other", sort: "tue" }), 0);
    });

    it("a non-default layout works, with reserved words as attribute names", async () => {
      const tableName = uniqueTable("layout");
      const client = clientFor(server.endpoint, { tableName, keyAttribute: "name", sortKeyAttribute: "date", countAttribute: "count" });
      await client.createTable();
      await client.createTable(); // harmless the second time
      assert.equal(await client.increment({ id: "a", sort: "b" }, { by: 4 }), 4);
      assert.equal(await client.get({ id: "a", sort: "b" }), 4);
      // per-call table options on a default client reach the same item
      const plain = clientFor(server.endpoint);
      const layout = { tableName, keyAttribute: "name", sortKeyAttribute: "date", countAttribute: "count" };
      assert.equal(await plain.increment({ id: "a", sort: "b" }, layout), 5);
      assert.equal(await plain.get({ id: "a", sort: "b" }, layout), 5);
    });

    it("interoperates with @aws-sdk/client-dynamodb both ways", async () => {
      const client = await freshTable(server.endpoint, { countAttribute: "count" });
      const sdk = new DynamoDBClient({ endpoint: server.endpoint, region: "us-east-1", credentials });
      try {
        const TableName = client.table.tableName;
        await sdk.send(new PutItemCommand({ TableName, Item: { id: { S: "from-sdk" }, count: { N: "41" } } }));
        assert.equal(await client.get("from-sdk"), 41);
        assert.equal(await client.increment("from-sdk"), 42);
        await client.increment("from-us", { by: 9 });
        const out = await sdk.send(new GetItemCommand({ TableName, Key: { id: { S: "from-us" } }, ConsistentRead: true }));
        assert.deepEqual(out.Item, { id: { S: "from-us" }, count: { N: "9" } });
      } finally {
        sdk.destroy();
      }
    });

    it("values beyond 2^53: PrecisionLoss as numbers, exact as bigints", async () => {
      const big = await freshTable(server.endpoint, { numbers: "bigint" });
      const small = clientFor(server.endpoint, { tableName: big.table.tableName });
      const start = 2n ** 53n - 2n;
      assert.equal(await big.increment("b", { by: start }), start);
      assert.equal(await small.increment("b"), Number(start + 1n)); // 2^53 - 1 is still safe
      const error = await rejection(small.increment("b"));
      assert.ok(error instanceof CounterError);
      assert.equal(error.code, "PrecisionLoss");
      assert.match(error.message, /bigint/);
      // The write went through: a caller must not send it again.
      assert.match(error.message, /the increment was applied/);
      assert.equal(error.ambiguous, false);
      assert.equal(error.retryable, false);
      assert.equal(((await rejection(small.get("b"))) as CounterError).code, "PrecisionLoss");
      assert.equal(await big.get("b"), 2n ** 53n);
      const huge = 10n ** 37n;
      assert.equal(await big.increment("h", { by: huge }), huge);
      assert.equal(await big.increment("h", { by: huge }), 2n * huge);
      assert.deepEqual(await big.reserve("h", 5n), { first: 2n * huge + 1n, last: 2n * huge + 5n });
    });

    it("createTable enables TTL when asked, and again is harmless", async () => {
      const client = clientFor(server.endpoint, { tableName: uniqueTable("ttl") });
      await client.createTable({ ttlAttribute: "expiresAt" });
      await client.createTable({ ttlAttribute: "expiresAt" });
      if (!server.ttl) return; // dynalite has no TTL API: createTable succeeds without it
      const out = await client.send<{ TimeToLiveDescription?: { AttributeName?: string; TimeToLiveStatus?: string } }>(
        "DescribeTimeToLive",
        { TableName: client.table.tableName },
        { idempotent: true },
      );
      assert.equal(out.TimeToLiveDescription?.AttributeName, "expiresAt");
      assert.match(out.TimeToLiveDescription?.TimeToLiveStatus ?? "", /ENABL/);
    });
  });
}

describe("configuration", () => {
  it("reads region, endpoint and credentials from an env object", async () => {
    const [server] = await servers();
    const client = new CounterClient({
      env: {
        AWS_REGION: "eu-west-3",
        AWS_ENDPOINT_URL_DYNAMODB: server!.endpoint,
        AWS_ENDPOINT_URL: "http://127.0.0.1:1",
        AWS_ACCESS_KEY_ID: "AKIDENV",
        AWS_SECRET_ACCESS_KEY: "env-secret",
      },
      tableName: uniqueTable("env"),
    });
    assert.equal(client.region, "eu-west-3");
    assert.equal(client.endpoint, `${server!.endpoint}/`);
    await client.createTable();
    assert.equal(await client.increment("k"), 1);
  });

  it("falls back to AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, then the AWS endpoint", () => {
    const creds = { AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" };
    const a = new CounterClient({ env: { ...creds, AWS_DEFAULT_REGION: "ap-south-1", AWS_ENDPOINT_URL: "http://127.0.0.1:9" } });
    assert.equal(a.region, "ap-south-1");
    assert.equal(a.endpoint, "http://127.0.0.1:9/");
    const b = new CounterClient({ env: creds });
    assert.equal(b.region, "us-east-1");
    assert.equal(b.endpoint, "https://dynamodb.us-east-1.amazonaws.com/");
    const c = new CounterClient({ env: (name) => (({ ...creds, AWS_REGION: "sa-east-1" }) as Record<string, string>)[name] });
    assert.equal(c.endpoint, "https://dynamodb.sa-east-1.amazonaws.com/");
  });

  // Without credentials: on Node, Bun and Deno only the first request can tell (instance metadata cannot be ruled
  // out in a constructor): test/server/credentials-chain.test.ts ("nothing anywhere") checks the Config error naming every
  // place looked; in a Worker the constructor throws (test/runtimes/cases.ts).

  it("a bad endpoint is a Config error", () => {
    assert.throws(
      () => clientFor("not a url"),
      (e: unknown) => e instanceof CounterError && e.code === "Config",
    );
    assert.throws(
      () => clientFor("ftp://127.0.0.1"),
      (e: unknown) => e instanceof CounterError && e.code === "Config",
    );
    assert.throws(
      () => clientFor(""),
      (e: unknown) => e instanceof CounterError && e.code === "Config",
      "an empty endpoint is not silently AWS",
    );
  });

  it("the client's fields and JSON never show the secret", () => {
    const client = clientFor("http://127.0.0.1:9");
    assert.ok(!JSON.stringify(client).includes(credentials.secretAccessKey));
    assert.ok(!Object.values(client).some((v) => JSON.stringify(v)?.includes(credentials.secretAccessKey)));
  });
});
