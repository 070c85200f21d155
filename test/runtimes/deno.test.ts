// Deno: the source through jsr.json's exports (what a JSR user gets), and the built npm package.
// Run with --config jsr.json --allow-net=127.0.0.1 --allow-env=DYNACOUNT_TEST_SERVERS and nothing more.
import * as fromJsr from "@dynacount/dynacount";
import * as fromNpm from "../../dist/index.js";
import { runtimeCases, serversFrom } from "./cases.ts";

for (const server of serversFrom(Deno.env.get("DYNACOUNT_TEST_SERVERS"))) {
  for (const [how, lib] of [["jsr source", fromJsr], ["npm build", fromNpm]] as const) {
    for (const c of runtimeCases(lib as never, `deno_${how.split(" ")[0]}`, server.name, server.endpoint)) {
      // The id allocator prefetches in the background by design, so op sanitizing is off.
      Deno.test({ name: `deno ${Deno.version.deno} (${how}): ${c.name}`, fn: () => c.run(), sanitizeOps: false, sanitizeResources: false });
    }
  }
}

// The README's promise for Deno: variables outside --allow-env are read as unset (AWS_REGION here), never a
// PermissionDenied/NotCapable crash; the defaults apply.
Deno.test("deno: AWS_* outside --allow-env read as unset, so the defaults apply", () => {
  for (const lib of [fromJsr, fromNpm]) {
    const client = new lib.CounterClient({ credentials: { accessKeyId: "AKIDRUNTIME", secretAccessKey: "runtime-secret" } });
    if (client.region !== "us-east-1" || client.endpoint !== "https://dynamodb.us-east-1.amazonaws.com/") {
      throw new Error(`expected the defaults, got ${client.region} ${client.endpoint}`);
    }
  }
});
