// The deterministic simulator in the suite: thousands of seeds, every invariant after every run; a failure prints its replay command.
import assert from "node:assert/strict";
import { test } from "node:test";
import { replayCommand, runSeeds } from "./pool.ts";
import { SCENARIOS } from "./runner.ts";

const SEEDS = Number(process.env.SIM_SEEDS ?? 2000);

test(`simulator: ${SEEDS} seeds over ${SCENARIOS.map((s) => s.name).join(", ")} keep every invariant`, { timeout: 600_000 }, async () => {
  const started = Date.now();
  const results = await runSeeds(
    Array.from({ length: SEEDS }, (_, i) => i + 1),
    { workers: 2 },
  );
  const failed = results.filter((r) => !r.ok);
  const per = new Map<string, number>();
  for (const r of results) per.set(r.scenario, (per.get(r.scenario) ?? 0) + 1);
  console.log(
    `simulator: ${results.length} seeds (${[...per].map(([s, n]) => `${s} ${n}`).join(", ")}) in ${((Date.now() - started) / 1000).toFixed(1)} s, ${failed.length} failed`,
  );
  // Every scenario ran, and the runs did something (a scenario that silently skipped its steps could not fail).
  assert.equal(per.size, SCENARIOS.length);
  assert.ok(
    results.every((r) => !r.ok || r.steps > 0),
    "every run had steps",
  );
  assert.deepEqual(
    failed.slice(0, 5).map((r) => `seed ${r.seed} (${r.scenario}): ${r.failure}\n  replay: ${replayCommand(r)}`),
    [],
  );
});
