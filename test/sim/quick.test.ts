// The simulator's quick seeds for the unit tier (npm run test:unit): 250 seeds, every scenario, a minute's fraction.
import assert from "node:assert/strict";
import { test } from "node:test";
import { replayCommand, runSeeds } from "./pool.ts";

test("simulator: 250 quick seeds keep every invariant", { timeout: 120_000 }, async () => {
  // Seeds far from the suite's 1…2,000, so the two tiers cover different runs.
  const results = await runSeeds(
    Array.from({ length: 250 }, (_, i) => 1_000_001 + i),
    { workers: 2 },
  );
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(
    failed.slice(0, 5).map((r) => `seed ${r.seed} (${r.scenario}): ${r.failure}\n  replay: ${replayCommand(r)}`),
    [],
  );
});
