// ShardedCounter when its shard count changes between deployments, on both real servers: no count is lost
// whichever instance reads (issue 26).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterClient, ShardedCounter } from "../../src/index.ts";
import type { CounterKey } from "../../src/core/keys.ts";
import { accountOf } from "../../src/core/base-client.ts";
import { startFaultProxy } from "../support/fault-proxy.ts";
import { clientFor, credentials, freshTable, servers, uniqueTable } from "../support/harness.ts";

/** `n` adds of 1 through `counter`, 10 at a time. */
async function addMany(counter: ShardedCounter, n: number): Promise<void> {
  let left = n;
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (left-- > 0) await counter.add();
    }),
  );
}

/** How many shards of `id` (`<id>#<i>`, i < 1000) hold a count. */
async function shardsUsed(client: CounterClient, id: string, upTo: number, sort?: string): Promise<number> {
  const values = await Promise.all(
    Array.from({ length: upTo }, (_, i) => client.get(sort === undefined ? `${id}#${i}` : { id: `${id}#${i}`, sort })),
  );
  return values.filter((v) => v > 0).length;
}

for (const server of await servers()) {
  describe(`ShardedCounter with a changing shard count on ${server.name}`, () => {
    it("shrinking shards never undercounts: 200 adds over 20 shards read back as 200 with shards: 10", async () => {
      const client = await freshTable(server.endpoint);
      await addMany(new ShardedCounter(client, "likes", { shards: 20 }), 200);
      assert.ok((await shardsUsed(client, "likes", 20)) > 10, "the adds reached shards past the tenth");
      assert.equal(await new ShardedCounter(client, "likes", { shards: 10 }).total(), 200);
      assert.equal(await new ShardedCounter(client, "likes", { shards: 1 }).total(), 200);
      assert.equal(await new ShardedCounter(client, "likes", { shards: 20 }).total(), 200);
    });

    it("raising shards: writers with 5 and 20 shards, every reader totals both", async () => {
      const client = await freshTable(server.endpoint);
      await addMany(new ShardedCounter(client, "views", { shards: 5 }), 100);
      assert.equal(
        await new ShardedCounter(client, "views", { shards: 20 }).total(),
        100,
        "more shards than were written: the empty ones add nothing",
      );
      await addMany(new ShardedCounter(client, "views", { shards: 20 }), 100);
      for (const shards of [5, 10, 20, 40]) {
        assert.equal(await new ShardedCounter(client, "views", { shards }).total(), 200, `a reader with ${shards} shards`);
      }
    });

    it("shrinking shards on a table with a sort key: every shard of that sort value is read", async () => {
      const client = await freshTable(server.endpoint, { sortKeyAttribute: "day" });
      const key: CounterKey = { id: "clicks", sort: "2026-11-29" };
      const other: CounterKey = { id: "clicks", sort: "2026-11-30" };
      await addMany(new ShardedCounter(client, key, { shards: 30 }), 150);
      await addMany(new ShardedCounter(client, other, { shards: 3 }), 7);
      assert.ok((await shardsUsed(client, "clicks", 30, "2026-11-29")) > 3);
      assert.equal(await new ShardedCounter(client, key, { shards: 3 }).total(), 150);
      assert.equal(await new ShardedCounter(client, other, { shards: 3 }).total(), 7, "another sort value keeps its own count");
    });
  });
}

describe("ShardedCounter across servers and past 2^53", () => {
  it("one table name on two servers in one process: each server gets its shard count recorded", async (t) => {
    const all = await servers();
    if (all.length < 2) return t.skip("needs both servers");
    const tableName = uniqueTable("two");
    const [a, b] = await Promise.all(
      all.slice(0, 2).map(async (s) => {
        const client = clientFor(s.endpoint, { tableName });
        await client.createTable();
        return client;
      }),
    );
    // The process recorded "20 shards" on the first server; the second needs its own record, else a reader with
    // fewer shards there misses the counts past its tenth shard.
    await addMany(new ShardedCounter(a!, "likes", { shards: 20 }), 100);
    await addMany(new ShardedCounter(b!, "likes", { shards: 20 }), 100);
    assert.ok((await shardsUsed(b!, "likes", 20)) > 10, "the adds reached shards past the tenth");
    assert.equal(await new ShardedCounter(b!, "likes", { shards: 10 }).total(), 100);
    assert.equal(await new ShardedCounter(a!, "likes", { shards: 10 }).total(), 100);
  });

  it("one table name in two accounts on one endpoint (DynamoDB Local keeps a database per key id): each gets its record", async (t) => {
    const local = (await servers()).find((s) => s.name === "ddblocal");
    if (!local) return t.skip("needs DynamoDB Local");
    const tableName = uniqueTable("accounts");
    const account = async (accessKeyId: string) => {
      const client = clientFor(local.endpoint, { tableName, credentials: { accessKeyId, secretAccessKey: "secret-of-this-test" } });
      await client.createTable();
      return client;
    };
    const [a, b] = [await account("AKIDACCOUNTA"), await account("AKIDACCOUNTB")];
    await addMany(new ShardedCounter(a, "likes", { shards: 20 }), 100);
    await addMany(new ShardedCounter(b, "likes", { shards: 20 }), 100);
    assert.equal(await new ShardedCounter(a, "likes", { shards: 1 }).total(), 100);
    assert.equal(await new ShardedCounter(b, "likes", { shards: 1 }).total(), 100, "the second account's count recorded too");
  });

  it("clients built per request with one credentials function record the shard count once, not once per request", async () => {
    const [server] = await servers();
    const tableName = (await freshTable(server!.endpoint)).table.tableName;
    const proxy = await startFaultProxy(server!.endpoint);
    try {
      const keys = async () => credentials;
      for (let i = 0; i < 20; i++) {
        const perRequest = clientFor(proxy.endpoint, { tableName, credentials: keys });
        await new ShardedCounter(perRequest, "hot", { shards: 5 }).add();
      }
      assert.equal(proxy.seen.get("UpdateItem"), 21, "20 adds and one record of the shard count");
    } finally {
      await proxy.close();
    }
  });

  it("the account is the key id the chain signs with: AWS_PROFILE set, the environment's keys are not it", () => {
    const env = { AWS_ACCESS_KEY_ID: "AKIDSAME", AWS_SECRET_ACCESS_KEY: "secret-of-this-test" };
    const account = (extra: Record<string, string>) =>
      accountOf(new CounterClient({ endpoint: "http://127.0.0.1:9", region: "us-east-1", env: { ...env, ...extra } }));
    assert.equal(account({}), "AKIDSAME");
    assert.notEqual(account({ AWS_PROFILE: "a" }), account({ AWS_PROFILE: "b" }));
    assert.equal(account({ AWS_PROFILE: "a" }), account({ AWS_PROFILE: "a" }), "one chain, shared by clients that read the same");
  });

  it("add() in number mode on a shard past 2^53 succeeds once per call: it never reads the value back", async () => {
    const [server] = await servers();
    const exact = await freshTable(server!.endpoint, { numbers: "bigint" });
    const start = 2n ** 53n - 5n;
    await exact.increment("big#0", { by: start });
    const counter = new ShardedCounter(clientFor(server!.endpoint, { tableName: exact.table.tableName }), "big", { shards: 1 });
    for (let i = 0; i < 3; i++) await counter.add(10); // each applied, none may be reported as failed
    assert.equal(await exact.get("big#0"), start + 30n);
  });
});
