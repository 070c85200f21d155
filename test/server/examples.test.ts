import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { credentials, servers, uniqueTable } from "../support/harness.ts";
import { root } from "../support/workers.ts";

// Each example runs on the runtime it is written for, against the local servers, as a user would run it.
const run = promisify(execFile);
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);

async function example(command: string, args: string[], endpoint: string) {
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    TABLE_NAME: uniqueTable("ex"),
    NO_COLOR: "1",
  };
  const { stdout } = await run(command, args, { cwd: root, env, timeout: 120_000 });
  const last = stdout.trim().split("\n").at(-1)!;
  return JSON.parse(last) as Record<string, unknown>;
}

for (const server of await servers()) {
  describe(`examples on ${server.name}`, { timeout: 180_000 }, () => {
    it("bun: order ids with IdAllocator are unique, one request per block", async () => {
      const out = await example(bin("bun"), ["examples/bun/order-ids.ts"], server.endpoint);
      assert.match(String(out.runtime), /^bun /);
      assert.equal(out.orders, 900);
      assert.equal(out.unique, 900);
      assert.ok(Number(out.requests) <= 15, `requests ${out.requests}`);
    });

    it("deno: counting events with a buffer, least permissions", async () => {
      const out = await example(
        bin("deno"),
        [
          "run",
          "--config",
          "jsr.json",
          "--allow-net=127.0.0.1",
          "--allow-env=AWS_ENDPOINT_URL_DYNAMODB,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_REGION,TABLE_NAME",
          "examples/deno/count-events.ts",
        ],
        server.endpoint,
      );
      assert.match(String(out.runtime), /^deno /);
      assert.equal(out.total, 10_000);
      assert.equal(out.keys, 4);
      assert.equal(out.requests, 4, "one write per event kind");
      assert.deepEqual(out.counts, { signup: 2500, login: 5000, purchase: 1250, logout: 1250 });
    });

    it("node: migration from dynamodb-atomic-counter through dynacount/compat", async () => {
      const out = await example(process.execPath, ["examples/node/migrate.cjs"], server.endpoint);
      assert.deepEqual(out.ids, [1, 2, 3]);
      assert.equal(out.last, 3);
      assert.equal(out.zero, 3);
      assert.equal(out.failed, "TableNotFound");
      assert.deepEqual(
        [...(out.clients as number[])].sort((a, b) => a - b),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
    });
  });
}
