// Runs one seed of a scenario on the virtual world, and shrinks a failing run to the fewest steps that still fail.
import { bufferScenario } from "./scenarios/buffer.ts";
import { durableScenario } from "./scenarios/durable.ts";
import { idsScenario } from "./scenarios/ids.ts";
import { ratelimitScenario } from "./scenarios/ratelimit.ts";
import { pageviewsScenario } from "./scenarios/pageviews.ts";
import { setupScenario } from "./scenarios/setup.ts";
import { setUp, type Plan, type Scenario, type Step } from "./scenario.ts";
import { SimFailure, World } from "./world.ts";

export const SCENARIOS: ReadonlyArray<Scenario<never>> = [
  bufferScenario,
  durableScenario,
  ratelimitScenario,
  idsScenario,
  setupScenario,
  pageviewsScenario,
] as never;

/**
 * The scenario a seed runs when none is named: they take turns, page views one turn in twenty (a page-view run
 * costs about ten times another, and npm test's 2,000 seeds should stay within a minute or so).
 */
const ROTATION = [
  bufferScenario,
  durableScenario,
  ratelimitScenario,
  idsScenario,
  setupScenario,
  bufferScenario,
  durableScenario,
  ratelimitScenario,
  idsScenario,
  setupScenario,
  bufferScenario,
  durableScenario,
  ratelimitScenario,
  idsScenario,
  setupScenario,
  bufferScenario,
  durableScenario,
  ratelimitScenario,
  idsScenario,
  pageviewsScenario,
];

export interface SeedResult {
  seed: number;
  scenario: string;
  ok: boolean;
  /** The invariant that broke and how, when not ok. */
  failure?: string;
  steps: number;
  /** Virtual ms the run covered. */
  virtualMs: number;
}

/** The scenario of a seed: the one named, or its turn in the rotation. */
export const scenarioOf = (seed: number, name?: string): Scenario<unknown> => {
  const scenario = name === undefined ? ROTATION[seed % ROTATION.length] : SCENARIOS.find((s) => s.name === name);
  if (!scenario) throw new Error(`no scenario "${name}"; there are ${SCENARIOS.map((s) => s.name).join(", ")}`);
  return scenario as Scenario<unknown>;
};

/** The plan a seed draws (the steps can be replaced, to shrink). */
export function planOf(seed: number, scenario: Scenario<unknown>): Plan<unknown> {
  return scenario.plan(new World(seed).rng.fork(1));
}

/** Runs `seed` (with `steps` in place of the drawn ones when given); never throws. */
export async function runSeed(seed: number, name?: string, steps?: Step[]): Promise<SeedResult & { log: string[] }> {
  const scenario = scenarioOf(seed, name);
  const world = new World(seed);
  const plan = scenario.plan(world.rng.fork(1));
  if (steps) plan.steps = steps;
  const restore = world.install();
  let failure: string | undefined;
  const log: string[] = [];
  try {
    const sim = setUp(world, plan);
    try {
      await scenario.run(sim, plan);
    } finally {
      for (const d of sim.network.log.slice(-60))
        log.push(
          `  ${d.at - plan.faults.until >= 0 ? "+" : ""}${d.at % 1_000_000} ${d.client} ${d.operation} ${d.fault}${d.applied ? " applied" : ""}${d.status && d.status !== 200 ? ` ${d.status}` : ""}`,
        );
    }
  } catch (error) {
    failure =
      error instanceof SimFailure
        ? error.message
        : `unexpected: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
  } finally {
    restore();
  }
  return {
    seed,
    scenario: scenario.name,
    ok: failure === undefined,
    ...(failure ? { failure } : {}),
    steps: plan.steps.length,
    virtualMs: world.now - new World(0).now,
    log,
  };
}

/**
 * The fewest steps (within `budget` runs) that still break an invariant: drops halves, then quarters, … then
 * single steps, keeping every removal after which the seed still fails.
 */
export async function shrink(seed: number, name: string, budget = 150): Promise<{ steps: Step[]; failure: string; log: string[] }> {
  let steps = planOf(seed, scenarioOf(seed, name)).steps;
  let last = await runSeed(seed, name, steps);
  if (last.ok) return { steps, failure: "(passed when replayed)", log: last.log };
  let runs = 1;
  for (let size = Math.ceil(steps.length / 2); size >= 1 && runs < budget; size = size === 1 ? 0 : Math.ceil(size / 2)) {
    for (let i = 0; i < steps.length && runs < budget; ) {
      const candidate = [...steps.slice(0, i), ...steps.slice(i + size)];
      const result = await runSeed(seed, name, candidate);
      runs++;
      if (!result.ok) {
        steps = candidate;
        last = result;
      } else i += size;
    }
  }
  return { steps, failure: last.failure!, log: last.log };
}
