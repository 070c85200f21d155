// A worker thread that runs seeds for the pool, so a run stuck in a synchronous loop can be stopped from outside.
import { parentPort } from "node:worker_threads";
import { runSeed } from "./runner.ts";

parentPort!.on("message", async (job: { seed: number; scenario?: string }) => {
  const { log: _log, ...result } = await runSeed(job.seed, job.scenario);
  parentPort!.postMessage(result);
});
