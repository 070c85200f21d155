// Several RateLimiters on one identifier (100 a second and 5 a day; /login and /api) each keep their own count.
// Each case runs in a worker thread with a deadline: a limiter that spins synchronously (as the window arithmetic
// of one limiter reading another's item once did) fails its test instead of hanging the whole run.
import assert from "node:assert/strict";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { CounterClient, RateLimiter, type RateLimiterOptions } from "../../src/index.ts";
import { credentials } from "../support/credentials.ts";

type Spec = Pick<RateLimiterOptions, "limit" | "windowMs" | "algorithm" | "name">;

interface Case {
  title: string;
  limiters: Spec[];
}

interface Phase {
  /** Per limiter: calls admitted before its second denial. */
  admitted: number[];
  /** Per limiter: the `reset` of its denied calls. */
  deniedReset: number[][];
  /** Per limiter: what `remaining()` answered afterwards. */
  remaining: { remaining: number; reset: number }[];
}

interface Job {
  endpoint: string;
  tableName: string;
  identifier: string;
  /** The client transport of the suite (test/run.ts runs it again on fetch). */
  transport: "auto" | "fetch" | undefined;
  /** The clock of each phase; before each phase but the first, items whose TTL has passed are deleted. */
  phases: number[];
  limiters: Spec[];
}

/**
 * Per phase: calls every limiter in turn on one identifier until each has been denied twice, then asks each
 * what remains. Between phases the clock moves on and DynamoDB's TTL is played: items whose `expiresAt` has
 * passed are deleted (DynamoDB may delete them any time after that), as a limiter sharing an item with another
 * whose windows are shorter would see.
 */
async function run(job: Job): Promise<Phase[]> {
  const client = new CounterClient({
    endpoint: job.endpoint,
    region: "us-east-1",
    credentials,
    env: {},
    tableName: job.tableName,
    ...(job.transport && { transport: job.transport }),
  });
  let now = job.phases[0]!;
  // Every call asks DynamoDB (no cache of blocked identifiers): what is counted there is what is checked.
  const limiters = job.limiters.map((spec) => new RateLimiter(client, { ...spec, cacheBlocked: false, now: () => now }));
  const phases: Phase[] = [];
  for (const [p, at] of job.phases.entries()) {
    now = at;
    if (p > 0) await expire(client, now);
    const admitted = limiters.map(() => 0);
    const denied = limiters.map(() => 0);
    const deniedReset: number[][] = limiters.map(() => []);
    for (let round = 0; round < 400 && denied.some((d) => d < 2); round++) {
      for (const [i, limiter] of limiters.entries()) {
        if (denied[i]! >= 2) continue;
        const r = await limiter.limit(job.identifier);
        if (r.success) admitted[i]!++;
        else {
          denied[i]!++;
          deniedReset[i]!.push(r.reset);
        }
      }
    }
    const remaining = [];
    for (const limiter of limiters) {
      const { remaining: left, reset } = await limiter.remaining(job.identifier);
      remaining.push({ remaining: left, reset });
    }
    phases.push({ admitted, deniedReset, remaining });
  }
  return phases;
}

/** DynamoDB's TTL at `now`: deletes every item whose `expiresAt` (epoch seconds) has passed. */
async function expire(client: CounterClient, now: number): Promise<void> {
  type Items = { Items?: Record<string, { S?: string; N?: string }>[] };
  const { Items = [] } = await client.send<Items>(
    "Scan",
    { TableName: client.table.tableName, ConsistentRead: true },
    { idempotent: true },
  );
  for (const item of Items) {
    if (item.expiresAt?.N !== undefined && Number(item.expiresAt.N) * 1000 <= now) {
      await client.send("DeleteItem", { TableName: client.table.tableName, Key: { id: item.id! } }, { idempotent: true });
    }
  }
}

if (!isMainThread && (workerData as { sharedIdentifier?: Job } | undefined)?.sharedIdentifier) {
  run((workerData as { sharedIdentifier: Job }).sharedIdentifier).then(
    (phases) => parentPort!.postMessage({ phases }),
    (error: unknown) => parentPort!.postMessage({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }),
  );
} else {
  const { describe, it } = await import("node:test");
  const { freshTable, servers, TRANSPORT } = await import("../support/harness.ts");
  const tsx = import.meta.resolve("tsx/esm/api");

  /** Runs `job` in a worker thread (TypeScript through tsx); rejects when it has not answered within `ms`. */
  const inWorker = (job: Job, ms: number): Promise<Phase[]> =>
    new Promise((resolve, reject) => {
      const trampoline = `
        const { workerData } = require("node:worker_threads");
        import(workerData.tsx).then((tsx) => { tsx.register(); return import(workerData.entry); });`;
      const worker = new Worker(trampoline, { eval: true, workerData: { tsx, entry: import.meta.url, sharedIdentifier: job } });
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error(`no answer within ${ms} ms: a limiter is spinning (the worker was stopped)`));
      }, ms);
      worker.once("message", (m: { phases?: Phase[]; error?: string }) => {
        clearTimeout(timer);
        void worker.terminate();
        if (m.phases) resolve(m.phases);
        else reject(new Error(m.error));
      });
      worker.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });

  const SECOND = 1000;
  const MINUTE = 60 * SECOND;
  const DAY = 24 * 60 * MINUTE;
  // Mid-window for every window length used here (437 ms past a whole minute), near the real clock (TTLs).
  const NOW = Math.floor(Date.now() / DAY) * DAY + DAY / 2 + 437;

  const cases: Case[] = [
    {
      title: "50 a second (sliding) and 5 a day (fixed)",
      limiters: [
        { limit: 50, windowMs: SECOND, algorithm: "sliding-window" },
        { limit: 5, windowMs: DAY, algorithm: "fixed-window" },
      ],
    },
    {
      title: "50 a second (fixed) and 5 a day (sliding)",
      limiters: [
        { limit: 50, windowMs: SECOND, algorithm: "fixed-window" },
        { limit: 5, windowMs: DAY, algorithm: "sliding-window" },
      ],
    },
    {
      title: "5 a day (token bucket) and 50 a second (fixed)",
      limiters: [
        { limit: 5, windowMs: DAY, algorithm: "token-bucket" },
        { limit: 50, windowMs: SECOND, algorithm: "fixed-window" },
      ],
    },
    {
      title: "10 a minute as a fixed and as a sliding window",
      limiters: [
        { limit: 10, windowMs: MINUTE, algorithm: "fixed-window" },
        { limit: 10, windowMs: MINUTE, algorithm: "sliding-window" },
      ],
    },
    {
      title: "10 a minute (token bucket) and 20 a second (sliding)",
      limiters: [
        { limit: 10, windowMs: MINUTE, algorithm: "token-bucket" },
        { limit: 20, windowMs: SECOND, algorithm: "sliding-window" },
      ],
    },
    {
      title: "two names with equal settings (login, api: 5 a minute, sliding)",
      limiters: [
        { name: "login", limit: 5, windowMs: MINUTE, algorithm: "sliding-window" },
        { name: "api", limit: 5, windowMs: MINUTE, algorithm: "sliding-window" },
      ],
    },
  ];

  for (const server of await servers()) {
    describe(`RateLimiters sharing an identifier on ${server.name}`, () => {
      for (const c of cases) {
        it(`${c.title}: each admits exactly its own limit, before and after the shorter windows expire; reset within one window of now; remaining() answers`, {
          timeout: 90_000,
        }, async () => {
          const client = await freshTable(server.endpoint);
          // Two seconds later: the one-second windows are over (and their items past their TTL); the others are not.
          const phases = [NOW, NOW + 2 * SECOND];
          const outcome = await inWorker(
            {
              endpoint: server.endpoint,
              tableName: client.table.tableName,
              identifier: "user-7",
              phases,
              limiters: c.limiters,
              transport: TRANSPORT as Job["transport"],
            },
            30_000,
          );
          outcome.forEach((phase, p) => {
            const now = phases[p]!;
            c.limiters.forEach((spec, i) => {
              const what = `${spec.name ?? "default"} ${spec.algorithm} ${spec.limit}/${spec.windowMs} ms, ${p === 0 ? "first" : "two seconds later"}`;
              const expected = p === 0 || spec.windowMs <= 2 * SECOND ? spec.limit : 0;
              assert.equal(phase.admitted[i], expected, `${what}: admitted ${phase.admitted[i]}`);
              assert.equal(phase.remaining[i]!.remaining, 0, `${what}: remaining()`);
              for (const reset of [...phase.deniedReset[i]!, phase.remaining[i]!.reset]) {
                assert.ok(
                  reset > now && reset <= now + spec.windowMs,
                  `${what}: reset ${reset - now} ms from now, window ${spec.windowMs} ms`,
                );
              }
            });
          });
        });
      }
    });
  }
}
