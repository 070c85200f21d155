// The cases every runtime suite runs (Bun, Deno, workerd), against the same local servers as the main
// suite. Runtime-neutral on purpose: web globals only, no test framework, plain checks that throw.
import type * as Dynacount from "../../src/index.ts";

export interface RuntimeCase {
  name: string;
  run(): Promise<void>;
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${message}`);
}
const same = (actual: unknown, expected: unknown, what: string) =>
  check(
    JSON.stringify(actual) === JSON.stringify(expected),
    `${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`,
  );

let tables = 0;
const table = (runtime: string) =>
  `rt_${runtime}_${Date.now().toString(36)}_${(tables++).toString(36)}_${Math.random().toString(36).slice(2, 6)}`;

/** The cases for `lib` (however this runtime imported dynacount) against one server `endpoint`. */
export function runtimeCases(lib: typeof Dynacount, runtime: string, server: string, endpoint: string): RuntimeCase[] {
  const { CounterClient, CounterBuffer, CounterError, RateLimiter, IdAllocator, rateLimitHeaders, limitAll, ConcurrencyLimiter } = lib;
  const client = (tableName = table(runtime)) =>
    new CounterClient({
      endpoint,
      region: "us-east-1",
      env: {},
      tableName,
      credentials: { accessKeyId: "AKIDRUNTIME", secretAccessKey: "runtime-secret" },
    });
  const fresh = async () => {
    const c = client();
    await c.createTable();
    return c;
  };
  const at = (name: string) => `${name} (${server})`;
  return [
    {
      name: at("client: increment, concurrent increments, get, reserve"),
      async run() {
        const c = await fresh();
        same(await c.increment("a", { by: 5 }), 5, "increment by 5");
        const values = await Promise.all(Array.from({ length: 50 }, () => c.increment("hot")));
        same(
          [...values].sort((x, y) => x - y),
          Array.from({ length: 50 }, (_, i) => i + 1),
          "50 concurrent increments",
        );
        same(await c.get("hot"), 50, "get");
        same(await c.get("missing"), 0, "get of a missing key");
        same(await c.reserve("ids", 10), { first: 1, last: 10 }, "reserve");
        // DynamoDB Local keeps one database per access key id: same credentials as the table's creator.
        const big = new CounterClient({
          endpoint,
          env: {},
          tableName: c.table.tableName,
          credentials: { accessKeyId: "AKIDRUNTIME", secretAccessKey: "runtime-secret" },
          numbers: "bigint",
        });
        same(String(await big.increment("big", { by: 2n ** 60n })), String(2n ** 60n), "bigint beyond 2^53");
      },
    },
    {
      name: at("client: errors are CounterErrors with codes"),
      async run() {
        const c = client();
        let error: unknown;
        await c.increment("k").catch((e: unknown) => (error = e));
        check(error instanceof CounterError && error.code === "TableNotFound", `TableNotFound, got ${String(error)}`);
        error = undefined;
        await c.increment("").catch((e: unknown) => (error = e));
        check(error instanceof CounterError && error.code === "Validation", "Validation for an empty key");
      },
    },
    {
      name: at("buffer: coalesces, flushes exactly once, closes"),
      async run() {
        const c = await fresh();
        const buffer = new CounterBuffer(c, { writerId: `rt-${runtime}`, flushIntervalMs: 60_000 });
        for (let i = 0; i < 1000; i++) buffer.add(`k${i % 10}`, 2);
        same(buffer.pending, 10, "pending keys");
        const flushed = await buffer.flush();
        same(flushed, { keys: 10, requests: 10, total: 2000 }, "flush result");
        buffer.add("k0", 1);
        await buffer.close();
        same(await c.get("k0"), 201, "k0");
        same(await c.get("k9"), 200, "k9");
        let error: unknown;
        try {
          buffer.add("k0");
        } catch (e) {
          error = e;
        }
        check(error instanceof CounterError && error.code === "Closed", "add after close throws Closed");
      },
    },
    {
      name: at("rate limiter: the call past the limit fails"),
      async run() {
        const c = await fresh();
        const limiter = new RateLimiter(c, { limit: 3, windowMs: 60_000, algorithm: "fixed-window", now: () => 600_000 });
        const results = [];
        for (let i = 0; i < 5; i++) results.push(await limiter.limit("user"));
        same(
          results.map((r) => r.success),
          [true, true, true, false, false],
          "successes",
        );
        same(
          results.map((r) => r.remaining),
          [2, 1, 0, 0, 0],
          "remaining",
        );
        same(results[4]!.reason, "cacheBlock", "blocked from the cache");
      },
    },
    {
      name: at("rate limiter: token bucket with a lease across instances, refund, headers"),
      async run() {
        const c = await fresh();
        let now = 1_000_000;
        const options = { limit: 40, windowMs: 4_000, algorithm: "token-bucket", lease: 5, now: () => now } as const;
        const instances = [new RateLimiter(c, options), new RateLimiter(c, options), new RateLimiter(c, options)];
        const results = await Promise.all(Array.from({ length: 60 }, (_, i) => instances[i % 3]!.limit("hot")));
        const admitted = results.filter((r) => r.success).length;
        check(admitted <= 40 && admitted >= 40 - 3 * 5, `admitted ${admitted} of limit 40 with 3 × lease 5`);
        check(
          results.some((r) => r.reason === "lease"),
          "some calls answered from a lease",
        );
        const single = new RateLimiter(c, { limit: 3, windowMs: 60_000, algorithm: "token-bucket", now: () => now });
        for (let i = 0; i < 3; i++) await single.limit("r");
        const denied = await single.limit("r");
        same([denied.success, denied.reset - now], [false, 20_000], "denied until the next token");
        await single.refund("r", 1);
        same((await single.limit("r")).success, true, "the refunded unit");
        const headers = rateLimitHeaders(denied, { windowMs: single.windowMs, now });
        same(headers, { "RateLimit-Policy": `"default";q=3;w=60`, RateLimit: `"default";r=0;t=20`, "Retry-After": "20" }, "headers");
        await denied.pending;
        now += 60_000;
      },
    },
    {
      name: at("several limits: all or nothing, one policy per limit; a concurrency limit across instances"),
      async run() {
        const c = await fresh();
        const now = 3_000_000;
        const perUser = new RateLimiter(c, { name: "user", limit: 3, windowMs: 60_000, algorithm: "fixed-window", now: () => now });
        const global = new RateLimiter(c, { name: "global", limit: 4, windowMs: 60_000, algorithm: "fixed-window", now: () => now });
        const call = (user: string, cost = 1) =>
          limitAll([
            { limiter: perUser, identifier: user },
            { limiter: global, identifier: "all", cost },
          ]);
        same(
          (await call("ann")).results.map((r) => r.remaining),
          [2, 3],
          "both charged",
        );
        const denied = await call("ann", 4);
        same([denied.success, denied.results.map((r) => r.success)], [false, [true, false]], "global denies a cost of 4");
        same(rateLimitHeaders(denied, { now })["RateLimit-Policy"], `"user";q=3;w=60, "global";q=4;w=60`, "one policy per limit");
        same((await perUser.remaining("ann")).remaining, 2, "the denied call took nothing from the user's limit");
        same((await call("bob", 3)).success, true, "nor from the global one");
        const slots = [0, 1].map(() => new ConcurrencyLimiter(c, { limit: 2, leaseMs: 60_000, now: () => now }));
        const held = await Promise.all(Array.from({ length: 8 }, (_, i) => slots[i % 2]!.acquire("job")));
        same(held.filter((s) => s.success && !s.reason).length, 2, "two holders across two instances");
        const first = held.find((s) => s.success)!;
        same(await first.renew(), true, "renewed");
        await first.release();
        same(await first.renew(), false, "released: not renewable");
        same((await slots[1]!.acquire("job")).success, true, "the released slot is taken again");
      },
    },
    {
      name: at("credentials from a function: one call for 20 concurrent requests, one more once they expire"),
      async run() {
        const tableName = (await fresh()).table.tableName;
        let calls = 0;
        // DynamoDB Local keeps a database per access key id: the same key id, with expiring credentials around it.
        const credentials = async () => {
          calls++;
          await new Promise((resolve) => setTimeout(resolve, 20));
          return {
            accessKeyId: "AKIDRUNTIME",
            secretAccessKey: "runtime-secret",
            expiration: new Date(Date.now() + (calls === 1 ? 1500 : 3_600_000)),
          };
        };
        const c = new CounterClient({ endpoint, region: "us-east-1", env: {}, tableName, credentials });
        const started = Date.now();
        await Promise.all(Array.from({ length: 20 }, () => c.increment("k")));
        // A slow machine may reach the last half of the first keys' life (750 ms) within these 20 requests: then
        // one background call happened already, and the second batch needs none.
        if (Date.now() - started < 700) same(calls, 1, "one call for 20 waiting requests");
        await new Promise((resolve) => setTimeout(resolve, 1550 - (Date.now() - started)));
        await Promise.all(Array.from({ length: 20 }, () => c.increment("k")));
        same(calls, 2, "one call at a time: exactly one more for the expiry, however many requests");
        same(await c.get("k"), 40, "every increment signed and applied");
      },
    },
    {
      name: at("id allocator: concurrent ids are unique"),
      async run() {
        const c = await fresh();
        const allocators = [new IdAllocator(c, "orders", { blockSize: 20 }), new IdAllocator(c, "orders", { blockSize: 20 })];
        const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => allocators[i % 2]!.next()));
        same(new Set(ids).size, 200, "distinct ids");
      },
    },
  ];
}

/** The servers test/run.ts started, from the environment variable it sets. */
export function serversFrom(json: string | undefined): { name: string; endpoint: string }[] {
  if (!json) throw new Error("DYNACOUNT_TEST_SERVERS is not set: run the runtime suites through `npm test` (test/run.ts)");
  return JSON.parse(json) as { name: string; endpoint: string }[];
}
