// Runs many seeds on worker threads with a watchdog: a seed that never finishes (a loop that never ends) is a failure, not a hang.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { scenarioOf, type SeedResult } from "./runner.ts";

export interface PoolOptions {
  scenario?: string | undefined;
  workers?: number;
  /** Wall-clock ms a single seed may take before its worker is stopped and the seed reported. */
  hangMs?: number;
  onResult?: (result: SeedResult) => void;
}

const WORKER = new URL("./worker.ts", import.meta.url).href;
// Loader hooks do not reach worker threads on every Node version: the worker registers tsx itself, then loads.
const BOOT = `import("tsx/esm/api").then((api) => { api.register(); return import(${JSON.stringify(WORKER)}); });`;

export async function runSeeds(seeds: number[], options: PoolOptions = {}): Promise<SeedResult[]> {
  const results: SeedResult[] = [];
  let next = 0;
  const hangMs = options.hangMs ?? 20_000;
  const lane = async () => {
    let worker: Worker | undefined;
    while (next < seeds.length) {
      const seed = seeds[next++]!;
      worker ??= new Worker(BOOT, { eval: true, execArgv: [] });
      const w = worker;
      const result = await new Promise<SeedResult>((resolve) => {
        const timer = setTimeout(() => {
          void w.terminate();
          worker = undefined;
          resolve({
            seed,
            scenario: scenarioOf(seed, options.scenario).name,
            ok: false,
            failure: `every call bounded: the seed ran for more than ${hangMs} ms of real time (a loop that never ends?)`,
            steps: 0,
            virtualMs: 0,
          });
        }, hangMs);
        w.once("message", (r: SeedResult) => {
          clearTimeout(timer);
          resolve(r);
        });
        w.once("error", (e: Error) => {
          clearTimeout(timer);
          worker = undefined;
          resolve({
            seed,
            scenario: scenarioOf(seed, options.scenario).name,
            ok: false,
            failure: `worker crashed: ${e.message}`,
            steps: 0,
            virtualMs: 0,
          });
        });
        w.postMessage({ seed, ...(options.scenario ? { scenario: options.scenario } : {}) });
      });
      w.removeAllListeners("message");
      w.removeAllListeners("error");
      results.push(result);
      options.onResult?.(result);
    }
    await worker?.terminate();
  };
  await Promise.all(Array.from({ length: Math.max(1, options.workers ?? Math.min(4, availableParallelism())) }, lane));
  return results.sort((a, b) => a.seed - b.seed);
}

/** The one-line command that replays a seed. */
export const replayCommand = (r: Pick<SeedResult, "seed" | "scenario">): string =>
  `npm run sim -- --seed ${r.seed} --scenario ${r.scenario}`;
