// The `env` option: any object type (a Worker's `Env` as `wrangler types` writes it), a getter, and the runtime's
// environment for whatever the given object lacks (Hono's `c.env` on Node and Bun is the server's own object).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterClient, type ClientOptions } from "../../src/index.ts";
import { envReader } from "../../src/core/env.ts";
import { servers, uniqueTable } from "../support/harness.ts";

// The shape `wrangler types` generates: an interface of bindings and string variables, no index signature.
interface Env {
  AWS_REGION: "eu-west-1";
  AWS_ACCESS_KEY_ID: string;
  AWS_SECRET_ACCESS_KEY: string;
  TABLE_NAME: string;
  COUNTER: { idFromName(name: string): unknown };
  PAGE_VIEWS: { get(id: unknown): unknown };
}
// And a class instance, and `@hono/node-server`'s `c.env` ({ incoming, outgoing }): objects of any type.
class Bindings {
  constructor(
    readonly AWS_ACCESS_KEY_ID: string,
    readonly AWS_SECRET_ACCESS_KEY: string,
  ) {}
}

const credentials = { accessKeyId: "AKIDENVTEST", secretAccessKey: "env-test-secret" };

describe("env", () => {
  it("takes an interface without an index signature, a class instance, a getter: every one type-checks and is read", () => {
    const env: Env = {
      AWS_REGION: "eu-west-1",
      AWS_ACCESS_KEY_ID: "AKIDWRANGLER",
      AWS_SECRET_ACCESS_KEY: "s",
      TABLE_NAME: "Counters",
      COUNTER: { idFromName: () => undefined },
      PAGE_VIEWS: { get: () => undefined },
    };
    const client = new CounterClient({ env });
    assert.equal(client.region, "eu-west-1");
    const options: ClientOptions = { env: new Bindings("a", "b") };
    assert.ok(new CounterClient(options));
    assert.equal(new CounterClient({ env: (name) => (name === "AWS_REGION" ? "ap-east-1" : undefined), credentials }).region, "ap-east-1");
    // A value that is not an object or a function is still refused.
    assert.throws(() => new CounterClient({ env: "AWS_REGION=x" as never, credentials }), /"env": must be an object or a function/);
  });

  it("a variable the given object lacks (or holds empty) is read from the runtime's environment; the object wins otherwise", () => {
    const before = { ...process.env };
    try {
      process.env.AWS_REGION = "sa-east-1";
      process.env.AWS_ENDPOINT_URL_DYNAMODB = "http://127.0.0.1:9";
      process.env.AWS_ACCESS_KEY_ID = "AKIDPROCESS";
      process.env.AWS_SECRET_ACCESS_KEY = "process-secret";
      // Hono's c.env under @hono/node-server: the request and the response, no variables at all.
      const honoNodeEnv = { incoming: {}, outgoing: {} };
      const client = new CounterClient({ env: honoNodeEnv });
      assert.equal(client.region, "sa-east-1");
      assert.equal(client.endpoint, "http://127.0.0.1:9/");
      assert.equal(new CounterClient({ env: { AWS_REGION: "eu-south-1" } }).region, "eu-south-1", "the given object wins");
      assert.equal(new CounterClient({ env: { AWS_REGION: "" } }).region, "sa-east-1", "empty is missing");
      assert.equal(new CounterClient({ env: () => undefined }).region, "sa-east-1", "a getter's undefined is missing too");
      const read = envReader({ AWS_PROFILE: " dev " });
      assert.equal(read("AWS_PROFILE"), "dev", "trimmed");
      assert.equal(read("AWS_ACCESS_KEY_ID"), "AKIDPROCESS");
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in before)) delete process.env[name];
      Object.assign(process.env, before);
    }
  });

  it("credentials found in the runtime's environment sign requests of a client given Hono's c.env", async () => {
    const [server] = await servers();
    const before = { ...process.env };
    try {
      process.env.AWS_ACCESS_KEY_ID = "AKIDPROCESS";
      process.env.AWS_SECRET_ACCESS_KEY = "process-secret";
      const client = new CounterClient({
        env: { incoming: {}, outgoing: {} },
        endpoint: server!.endpoint,
        region: "us-east-1",
        tableName: uniqueTable("env"),
      });
      await client.createTable();
      assert.equal(await client.increment("k"), 1);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in before)) delete process.env[name];
      Object.assign(process.env, before);
    }
  });
});
