// Deno: the source through jsr.json's exports (what a JSR user gets), and the built npm package.
// Run with --config jsr.json --allow-net=127.0.0.1 --allow-env=DYNACOUNT_TEST_SERVERS and nothing more.
import * as fromJsr from "@dynacount/dynacount";
import * as fromNpm from "../../dist/index.js";
import { runtimeCases, serversFrom } from "./cases.ts";

for (const server of serversFrom(Deno.env.get("DYNACOUNT_TEST_SERVERS"))) {
  for (const [how, lib] of [
    ["jsr source", fromJsr],
    ["npm build", fromNpm],
  ] as const) {
    for (const c of runtimeCases(lib as never, `deno_${how.split(" ")[0]}`, server.name, server.endpoint)) {
      // The id allocator prefetches in the background by design, so op sanitizing is off.
      Deno.test({ name: `deno ${Deno.version.deno} (${how}): ${c.name}`, fn: () => c.run(), sanitizeOps: false, sanitizeResources: false });
    }
  }
}

// Both builds under one type: the two declare the client's internal `link` parameter with aws4fetch's types
// reached by different paths, which TypeScript cannot unify into one construct signature.
const libs = [fromJsr, fromNpm as unknown as typeof fromJsr];

// The README's promise for Deno: variables outside --allow-env are read as unset (AWS_REGION here), never a
// PermissionDenied/NotCapable crash; the defaults apply.
Deno.test("deno: AWS_* outside --allow-env read as unset, so the defaults apply", () => {
  for (const lib of libs) {
    const client = new lib.CounterClient({ credentials: { accessKeyId: "AKIDRUNTIME", secretAccessKey: "runtime-secret" } });
    if (client.region !== "us-east-1" || client.endpoint !== "https://dynamodb.us-east-1.amazonaws.com/") {
      throw new Error(`expected the defaults, got ${client.region} ${client.endpoint}`);
    }
  }
});

// Deno's permission refusals are Config errors that name the flag to add, never network errors, whether they
// hide where credentials could be or the endpoint itself. (This suite has --allow-net=127.0.0.1 and one variable.)
const config = (error: unknown, lib: typeof fromJsr, flag: string) => {
  if (
    !(error instanceof lib.CounterError) ||
    error.code !== "Config" ||
    error.retryable ||
    error.ambiguous ||
    !error.message.includes(flag)
  ) {
    throw new Error(`expected a Config error naming ${flag}, got ${String(error)}`);
  }
};

Deno.test("deno: no credentials and nothing permitted: a Config error naming --allow-env and --allow-net for what the chain could not see", async () => {
  for (const lib of libs) {
    const client = new lib.CounterClient({ endpoint: "http://127.0.0.1:9", region: "us-east-1" });
    const error = await client.increment("k").catch((e: unknown) => e);
    config(error, lib, "--allow-env=AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,");
    config(error, lib, "--allow-net=169.254.169.254");
    config(error, lib, "No AWS credentials found");
  }
});

Deno.test("deno: shared files outside --allow-read: the error names --allow-read with their paths", async () => {
  for (const lib of libs) {
    const client = new lib.CounterClient({
      endpoint: "http://127.0.0.1:9",
      env: { HOME: "/home/nobody-here", AWS_EC2_METADATA_DISABLED: "true" },
    });
    const error = await client.get("k").catch((e: unknown) => e);
    config(error, lib, "--allow-read=/home/nobody-here/.aws/credentials,/home/nobody-here/.aws/config");
  }
});

Deno.test("deno: a source that is there but refused (the container endpoint's host) is a Config error naming --allow-net=host", async () => {
  for (const lib of libs) {
    const env = { HOME: "/home/nobody-here", AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.2:8124/creds" };
    const error = await new lib.CounterClient({ endpoint: "http://127.0.0.1:9", env }).get("k").catch((e: unknown) => e);
    config(error, lib, "--allow-net=127.0.0.2:8124");
  }
});

Deno.test("deno: an endpoint outside --allow-net: a Config error naming the flag, not an ambiguous network failure", async () => {
  for (const lib of libs) {
    const client = new lib.CounterClient({
      endpoint: "http://127.0.0.2:8123",
      env: {},
      credentials: { accessKeyId: "AKIDRUNTIME", secretAccessKey: "runtime-secret" },
    });
    const error = await client.increment("k").catch((e: unknown) => e);
    config(error, lib, "--allow-net=127.0.0.2:8123");
  }
});
