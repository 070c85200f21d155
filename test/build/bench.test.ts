import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { root } from "../support/workers.ts";

// Speed is never asserted; this only proves the benchmark harness still runs end to end.
describe("bench harness", () => {
  it("runs every section in quick mode", () => {
    const out = execFileSync(process.execPath, ["--import", "tsx", path.join(root, "bench/run.ts"), "--quick"], {
      cwd: root,
      encoding: "utf8",
      timeout: 300_000,
    });
    for (const section of [
      "Worker bundle",
      "Cold start in workerd",
      "node · dynalite · c=1",
      "floor node:http",
      "dynacount (transport: fetch)",
      "Node cold start",
      "bun · dynalite",
      "deno · dynalite",
      "CPU per request inside workerd",
      "CounterBuffer.add",
      "DynamoDB requests per",
      "DurableCounterBuffer.add in workerd",
      "heap per 10,000 pending keys",
      "SigV4 signing",
      "Rate limiting through",
      "rate-limiter-flexible RateLimiterDynamo",
      "lease 20",
      "Three limits per call",
      "limitAll([tenMinutes, hour, day])",
      "RateLimiterUnion",
      "Page views in workerd",
      "PageViewTracker → DurablePageViews",
      "naive (b): RPC per view",
    ]) {
      assert.match(out, new RegExp(section.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), `missing section ${section}`);
    }
  });
});
