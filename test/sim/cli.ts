// `npm run sim`: many seeds (--seeds N, --from S, --scenario NAME), or one seed replayed with its shrunk trace (--seed S).
import { replayCommand, runSeeds } from "./pool.ts";
import { runSeed, scenarioOf, shrink } from "./runner.ts";

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const scenario = flag("scenario");

if (args.includes("--help") || args.includes("-h")) {
  console.log(`npm run sim -- [options]
  --seeds N       how many seeds to run (default 2000)
  --from S        the first seed (default 1)
  --scenario NAME only this scenario (buffer, durable, ids, pageviews, ratelimit, setup)
  --workers N     worker threads (default: the cores)
  --seed S        replay one seed, and shrink it if it fails`);
  process.exit(0);
}

if (flag("seed") !== undefined) {
  const seed = Number(flag("seed"));
  const name = scenario ?? scenarioOf(seed).name;
  const result = await runSeed(seed, name);
  if (result.ok) {
    console.log(`seed ${seed} (${name}): ok, ${result.steps} steps, ${result.virtualMs} virtual ms`);
    process.exit(0);
  }
  console.log(`seed ${seed} (${name}) FAILED: ${result.failure}`);
  const shrunk = await shrink(seed, name);
  console.log(`\nshrunk to ${shrunk.steps.length} steps (still failing: ${shrunk.failure}):`);
  for (const s of shrunk.steps) console.log(`  +${s.at} ms ${s.what}(${s.args.map((a) => JSON.stringify(a)).join(", ")})`);
  console.log(`\nlast requests of the shrunk run (virtual ms, client, operation, fault):`);
  for (const line of shrunk.log) console.log(line);
  process.exit(1);
}

const count = Number(flag("seeds") ?? 2000);
const from = Number(flag("from") ?? 1);
const started = Date.now();
const seeds = Array.from({ length: count }, (_, i) => from + i);
let done = 0;
const results = await runSeeds(seeds, {
  scenario,
  ...(flag("workers") ? { workers: Number(flag("workers")) } : {}),
  onResult: (r) => {
    if (++done % 1000 === 0) console.log(`${done}/${count} seeds, ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (!r.ok) console.log(`FAIL seed ${r.seed} (${r.scenario}): ${r.failure}\n  replay: ${replayCommand(r)}`);
  },
});
const failed = results.filter((r) => !r.ok);
const by = new Map<string, number>();
for (const r of results) by.set(r.scenario, (by.get(r.scenario) ?? 0) + 1);
console.log(
  `\n${results.length} seeds (${[...by].map(([s, n]) => `${s} ${n}`).join(", ")}) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${failed.length} failed`,
);
process.exit(failed.length === 0 ? 0 : 1);
