// limitAll on both servers: all or nothing (one transaction on DynamoDB Local, take and give back on dynalite), lost answers, leases, merges, validation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AwsClient } from "aws4fetch";
import {
  CounterError,
  limitAll,
  rateLimitHeaders,
  RateLimiter,
  type CounterClient,
  type LimitCheck,
  type RateLimiterOptions,
} from "../../src/index.ts";
import { errorFromResponse } from "../../src/core/errors.ts";
import { clientFor, credentials, rejection, servers, throughProxy, uniqueTable } from "../support/harness.ts";

type Item = Record<string, { N?: string; S?: string }>;
const W = 60_000;
/** Mid-window, far from the real clock's windows (fixed clocks make every count exact). */
const at = (window: number) => window * W + 1234;

/** The item of `limiter` for `id`, read directly. */
async function itemOf(direct: CounterClient, limiter: RateLimiter, id: string): Promise<Item | undefined> {
  const key = `ratelimit:${limiter.name}:${limiter.algorithm}:${limiter.windowMs}:${id}`;
  const out = await direct.send<{ Item?: Item }>(
    "GetItem",
    { TableName: direct.table.tableName, Key: { id: { S: key } }, ConsistentRead: true },
    { idempotent: true },
  );
  return out.Item;
}

/** Whether this build's CounterError keeps a cancelled transaction's reasons (each with its item): then a denial is one request. */
const KEEPS_REASONS = (() => {
  const e = errorFromResponse(
    400,
    {
      __type: "x#TransactionCanceledException",
      Message: "m [ConditionalCheckFailed]",
      CancellationReasons: [{ Code: "ConditionalCheckFailed", Item: {} }],
    } as never,
    { mayHaveApplied: false },
  );
  return Array.isArray((e as { cancellationReasons?: unknown }).cancellationReasons);
})();

const count = (m: Map<string, number>, op: string) => m.get(op) ?? 0;

for (const server of await servers()) {
  describe(`limitAll on ${server.name} (${server.transactions ? "one transaction" : "the fallback: take in order, give back on denial"})`, () => {
    const limiters = (client: CounterClient, now: () => number, extra: Partial<RateLimiterOptions> = {}) => ({
      user: new RateLimiter(client, { name: "user", limit: 5, windowMs: W, algorithm: "fixed-window", cacheBlocked: false, now, ...extra }),
      global: new RateLimiter(client, {
        name: "global",
        limit: 3,
        windowMs: W,
        algorithm: "sliding-window",
        cacheBlocked: false,
        now,
        ...extra,
      }),
    });

    if (server.transactions) {
      it("probe: DynamoDB Local cancels a transaction with one reason per action, the failed one carrying the item (ALL_OLD)", async () => {
        const tableName = uniqueTable();
        await clientFor(server.endpoint, { tableName }).createTable();
        const aws = new AwsClient({ ...credentials, region: "us-east-1", service: "dynamodb", retries: 0 });
        const call = async (operation: string, body: unknown) => {
          const res = await aws.fetch(server.endpoint, {
            method: "POST",
            headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": `DynamoDB_20120810.${operation}` },
            body: JSON.stringify(body),
          });
          return { status: res.status, body: (await res.json()) as Record<string, unknown> };
        };
        await call("UpdateItem", {
          TableName: tableName,
          Key: { id: { S: "a" } },
          UpdateExpression: "SET c = :n",
          ExpressionAttributeValues: { ":n": { N: "5" } },
        });
        const update = (id: string) => ({
          Update: {
            TableName: tableName,
            Key: { id: { S: id } },
            UpdateExpression: "ADD c :one",
            ConditionExpression: "attribute_not_exists(c) OR c <= :max",
            ExpressionAttributeValues: { ":one": { N: "1" }, ":max": { N: "3" } },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          },
        });
        const out = await call("TransactWriteItems", { TransactItems: [update("a"), update("b")], ClientRequestToken: "probe-1" });
        assert.equal(out.status, 400);
        assert.match(String(out.body.__type), /TransactionCanceledException$/);
        assert.deepEqual(out.body.CancellationReasons, [
          { Code: "ConditionalCheckFailed", Message: "The conditional request failed", Item: { id: { S: "a" }, c: { N: "5" } } },
          { Code: "None" },
        ]);
        assert.match(
          String(out.body.Message),
          /\[ConditionalCheckFailed, None\]$/,
          "the codes are listed at the end of the message too (what a client without the reasons reads)",
        );
      });
    }

    it("two limits: admits exactly the smaller; calls the second denies take nothing from the first (its item unchanged)", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint);
      const { user, global } = limiters(client, () => at(100));
      const checks = [
        { limiter: user, identifier: "u1" },
        { limiter: global, identifier: "all" },
      ];
      const admitted = [];
      for (let i = 0; i < 3; i++) admitted.push((await limitAll(checks)).success);
      assert.deepEqual(admitted, [true, true, true]);
      const before = await itemOf(direct, user, "u1");
      assert.equal(before?.w100?.N, "3");
      const seen = new Map(proxy.seen);
      for (let i = 0; i < 4; i++) {
        const r = await limitAll(checks);
        assert.equal(r.success, false);
        assert.deepEqual(
          r.results.map((x) => [x.name, x.success]),
          [
            ["user", true],
            ["global", false],
          ],
          "the user limit had room; the global one denied",
        );
      }
      assert.deepEqual(await itemOf(direct, user, "u1"), before, "the user limit's item is exactly as before the four denied calls");
      assert.equal((await user.remaining("u1")).remaining, 2);
      if (server.transactions) {
        assert.equal(count(proxy.seen, "TransactWriteItems") - count(seen, "TransactWriteItems"), 4, "one transaction per denied call");
        assert.equal(count(proxy.seen, "UpdateItem"), 0, "no separate updates");
        assert.equal(
          count(proxy.seen, "BatchGetItem"),
          KEEPS_REASONS ? 0 : 4,
          "the denying item from the cancellation reasons (else read once)",
        );
      } else {
        assert.equal(count(proxy.seen, "TransactWriteItems"), 1, "dynalite has no transactions: learned once, remembered for the client");
      }
    });

    it("concurrent calls: the smaller limit admits exactly its limit and the larger is charged for admitted calls only", async () => {
      const { client, direct } = await throughProxy(server.endpoint, { timeoutMs: 30_000 });
      const now = () => at(200);
      const user = new RateLimiter(client, { name: "user", limit: 30, windowMs: W, algorithm: "fixed-window", now });
      const global = new RateLimiter(client, { name: "global", limit: 12, windowMs: W, algorithm: "fixed-window", now });
      const results = await Promise.all(
        Array.from({ length: 40 }, () =>
          limitAll([
            { limiter: user, identifier: "u" },
            { limiter: global, identifier: "all" },
          ]),
        ),
      );
      const admitted = results.filter((r) => r.success).length;
      // Both local servers apply transactions one at a time (no TransactionConflict), so none loses every round.
      assert.equal(admitted, 12, `exactly the global limit: ${results.map((r) => r.reason ?? (r.success ? "ok" : "denied")).join(",")}`);
      assert.equal(Number((await itemOf(direct, global, "all"))?.w200?.N), admitted, "the global limit counted each admitted call once");
      assert.equal(
        Number((await itemOf(direct, user, "u"))?.w200?.N),
        admitted,
        "the user limit counted admitted calls only: denied ones took nothing",
      );
    });

    it("several limiters on one identifier each keep their own limit in one call: fixed + sliding, window + bucket, second + day, two names with equal settings", async () => {
      const { client, direct } = await throughProxy(server.endpoint);
      const now = () => at(300);
      const combos: Array<[RateLimiterOptions, RateLimiterOptions]> = [
        [
          { name: "a", limit: 4, windowMs: W, algorithm: "fixed-window" },
          { name: "b", limit: 6, windowMs: W, algorithm: "sliding-window" },
        ],
        [
          { name: "a", limit: 6, windowMs: W, algorithm: "sliding-window" },
          { name: "b", limit: 3, windowMs: W, algorithm: "token-bucket" },
        ],
        [
          { name: "second", limit: 50, windowMs: 1000, algorithm: "fixed-window" },
          { name: "day", limit: 5, windowMs: 86_400_000, algorithm: "fixed-window" },
        ],
        [
          { name: "login", limit: 4, windowMs: W, algorithm: "sliding-window" },
          { name: "api", limit: 4, windowMs: W, algorithm: "sliding-window" },
        ],
      ];
      for (const [i, [a, b]] of combos.entries()) {
        const la = new RateLimiter(client, { ...a, now, cacheBlocked: false });
        const lb = new RateLimiter(client, { ...b, now, cacheBlocked: false });
        const id = `combo${i}`;
        let admitted = 0;
        while (
          (
            await limitAll([
              { limiter: la, identifier: id },
              { limiter: lb, identifier: id },
            ])
          ).success
        )
          admitted++;
        const smaller = Math.min(a.limit as number, b.limit as number);
        assert.equal(admitted, smaller, `${a.name}+${b.name}: admitted the smaller limit`);
        for (const [spec, limiter] of [
          [a, la],
          [b, lb],
        ] as const) {
          assert.equal(
            (await limiter.remaining(id)).remaining,
            (spec.limit as number) - smaller,
            `${spec.name} (${spec.algorithm}, ${spec.windowMs} ms) used exactly what was admitted`,
          );
          assert.ok(await itemOf(direct, limiter, id), `${spec.name} has its own item`);
        }
        // The larger one alone still has its own room: it never counted the other's units.
        const larger = (a.limit as number) > (b.limit as number) ? la : lb;
        if ((a.limit as number) !== (b.limit as number)) assert.equal((await larger.limit(id)).success, true);
      }
    });

    it("the same limiter and identifier twice is one check of the summed cost; other limits are charged once", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint);
      const { user, global } = limiters(client, () => at(400), { limit: 10 });
      const bodies: string[] = [];
      proxy.setFault((info) => (bodies.push(info.body), "pass"));
      const r = await limitAll([
        { limiter: user, identifier: "m", cost: 2 },
        { limiter: global, identifier: "all" },
        { limiter: user, identifier: "m", cost: 3 },
      ]);
      assert.equal(r.success, true);
      assert.equal(r.results.length, 3);
      const { pending: _a, ...first } = r.results[0]!;
      const { pending: _b, ...third } = r.results[2]!;
      assert.deepEqual(first, third, "merged checks share their result");
      assert.equal((await itemOf(direct, user, "m"))?.w400?.N, "5", "2 + 3 units, once");
      assert.equal((await itemOf(direct, global, "all"))?.w400?.N, "1");
      if (server.transactions) {
        const tx = bodies.map((b) => JSON.parse(b) as { TransactItems?: unknown[] }).filter((b) => b.TransactItems);
        assert.equal(tx.length, 1);
        assert.equal(tx[0]!.TransactItems!.length, 2, "one action per item");
      }
      // 5 + 6 > 10: the merged cost is checked as one (denied), and the global limit is not charged for it.
      const denied = await limitAll([
        { limiter: user, identifier: "m", cost: 3 },
        { limiter: global, identifier: "all" },
        { limiter: user, identifier: "m", cost: 3 },
      ]);
      assert.equal(denied.success, false);
      assert.equal((await itemOf(direct, global, "all"))?.w400?.N, "1");
    });

    it("leases and the block cache answer locally: a leased limit needs no request, a blocked one denies with none, a denied call's lease units go back to the lease", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      const now = () => at(500);
      const global = new RateLimiter(client, { name: "global", limit: 1000, windowMs: W, algorithm: "fixed-window", lease: 50, now });
      const user = new RateLimiter(client, { name: "user", limit: 2, windowMs: W, algorithm: "fixed-window", now });
      const reasons = [];
      for (let i = 0; i < 12; i++) {
        const r = await limitAll([
          { limiter: user, identifier: `u${i}` },
          { limiter: global, identifier: "all" },
        ]);
        assert.equal(r.success, true);
        reasons.push(r.results[1]!.reason);
      }
      const leased = reasons.filter((r) => r === "lease").length;
      assert.ok(leased >= 8, `the global limit answered from its lease in ${leased} of 12 calls`);
      const tx = count(proxy.forwarded, "TransactWriteItems");
      assert.ok(tx <= (server.transactions ? 3 : 1), `transactions only while the lease was empty: ${tx}`);
      // u0 has 1 of 2 left: one more call, then it is denied, then blocked and answered with no request.
      assert.equal(
        (
          await limitAll([
            { limiter: user, identifier: "u0" },
            { limiter: global, identifier: "all" },
          ])
        ).success,
        true,
      );
      assert.equal(
        (
          await limitAll([
            { limiter: user, identifier: "u0" },
            { limiter: global, identifier: "all" },
          ])
        ).success,
        false,
      );
      const total = () => [...proxy.seen.values()].reduce((a, b) => a + b, 0);
      const sent = total();
      const blocked = await limitAll([
        { limiter: user, identifier: "u0" },
        { limiter: global, identifier: "all" },
      ]);
      assert.deepEqual([blocked.success, blocked.reason, blocked.results[0]!.reason], [false, "cacheBlock", "cacheBlock"]);
      assert.equal(total(), sent, "no request for a blocked identifier");
      // A denial that is not cached (another instance of the user limit, asked every time): the global unit taken
      // from the lease for it goes back to the lease (the next call leaves exactly one fewer), not to DynamoDB.
      const asked = new RateLimiter(client, { name: "user", limit: 2, windowMs: W, algorithm: "fixed-window", cacheBlocked: false, now });
      const before = await limitAll([
        { limiter: global, identifier: "all" },
        { limiter: asked, identifier: "u1" },
      ]);
      assert.deepEqual([before.success, before.results[0]!.reason], [true, "lease"]);
      const stored = (await global.remaining("all")).remaining;
      const denied = await limitAll([
        { limiter: global, identifier: "all" },
        { limiter: asked, identifier: "u1" },
      ]);
      assert.equal(denied.success, false);
      assert.equal((await global.remaining("all")).remaining, stored, "nothing given to DynamoDB: the unit was the lease's");
      const next = await limitAll([
        { limiter: global, identifier: "all" },
        { limiter: asked, identifier: "u30" },
      ]);
      assert.deepEqual([next.results[0]!.reason, next.results[0]!.remaining], ["lease", before.results[0]!.remaining - 1]);
    });

    it("the fallback (limiters on different clients, or no transactions) gives back into the window of the take, not the current one", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint);
      const other = clientFor(server.endpoint, { tableName: direct.table.tableName });
      let t = at(600);
      const sliding = new RateLimiter(client, {
        name: "sliding",
        limit: 10,
        windowMs: W,
        algorithm: "sliding-window",
        cacheBlocked: false,
        now: () => t,
      });
      const strict = new RateLimiter(other, {
        name: "strict",
        limit: 1,
        windowMs: 86_400_000,
        algorithm: "fixed-window",
        cacheBlocked: false,
        now: () => t,
      });
      await strict.limit("x"); // strict is used up
      // The take of `sliding` reaches DynamoDB in window 600; then the clock moves into 601 (where another instance
      // took one unit) before `strict` denies.
      proxy.setFault((info) => {
        if (info.operation === "UpdateItem" && info.body.includes("ratelimit:sliding")) queueMicrotask(() => void (t = at(601)));
        return "pass";
      });
      const r = await limitAll([
        { limiter: sliding, identifier: "x" },
        { limiter: strict, identifier: "x" },
      ]);
      proxy.setFault(() => "pass");
      assert.equal(r.success, false);
      await new RateLimiter(direct, { name: "sliding", limit: 10, windowMs: W, algorithm: "sliding-window", now: () => at(601) }).limit(
        "x",
      );
      const item = await itemOf(direct, sliding, "x");
      assert.equal(item?.w600?.N, "0", "given back to window 600, where it was taken");
      assert.equal(item?.w601?.N, "1", "window 601 keeps its own unit");
    });

    it("the fallback: a take that failed ambiguously before another limit denied keeps its failOpen answer and error (it may have counted; it is not given back)", async () => {
      const { client, direct, proxy } = await throughProxy(server.endpoint);
      // Two clients: the fallback on both servers.
      const other = clientFor(server.endpoint, { tableName: direct.table.tableName });
      const now = () => at(650);
      const user = new RateLimiter(client, { name: "user", limit: 5, windowMs: W, algorithm: "fixed-window", cacheBlocked: false, now });
      const strict = new RateLimiter(other, {
        name: "strict",
        limit: 1,
        windowMs: 86_400_000,
        algorithm: "fixed-window",
        cacheBlocked: false,
        now,
      });
      await strict.limit("x"); // strict is used up
      // The user take reaches DynamoDB and is applied, but its answer is lost: not resent, answered failOpen.
      proxy.setFault((info) => (info.operation === "UpdateItem" && info.body.includes("ratelimit:user") ? "drop-after" : "pass"));
      const r = await limitAll([
        { limiter: user, identifier: "x" },
        { limiter: strict, identifier: "x" },
      ]);
      proxy.setFault(() => "pass");
      assert.equal(r.success, false);
      assert.equal((await itemOf(direct, user, "x"))?.w650?.N, "1", "the lost take was applied: the denied call may hold a unit");
      // So the answer must say so: not a clean "had room, not charged".
      assert.deepEqual([r.results[0]!.reason, r.results[0]!.error?.ambiguous], ["failOpen", true]);
      assert.equal(r.error?.ambiguous, true, "the call's error is the ambiguous one");
      assert.deepEqual([r.results[1]!.success, r.results[1]!.error], [false, undefined]);
    });

    if (server.transactions) {
      it("a transaction whose answer is lost is resent with the same token and counts once", async () => {
        const { client, direct, proxy } = await throughProxy(server.endpoint);
        const { user, global } = limiters(client, () => at(700));
        const tokens: string[] = [];
        let lose = 1;
        proxy.setFault((info) => {
          if (info.operation !== "TransactWriteItems") return "pass";
          tokens.push((JSON.parse(info.body) as { ClientRequestToken: string }).ClientRequestToken);
          return lose-- > 0 ? "drop-after" : "pass";
        });
        const r = await limitAll([
          { limiter: user, identifier: "lost" },
          { limiter: global, identifier: "all" },
        ]);
        assert.equal(r.success, true, "the resend learned that the first attempt was applied");
        assert.equal(tokens.length, 2);
        assert.equal(tokens[0], tokens[1], "resent with the same ClientRequestToken");
        assert.ok(tokens[0]!.length <= 36);
        assert.equal((await itemOf(direct, user, "lost"))?.w700?.N, "1", "applied once");
        assert.equal((await itemOf(direct, global, "all"))?.w700?.N, "1", "applied once");
        // Every answer lost: sent three times in all, applied once, answered by failureMode with an ambiguous error.
        tokens.length = 0;
        lose = 100;
        const lost = await limitAll([
          { limiter: user, identifier: "lost" },
          { limiter: global, identifier: "all" },
        ]);
        assert.equal(tokens.length, 3);
        assert.equal(new Set(tokens).size, 1);
        assert.deepEqual([lost.success, lost.reason, lost.error?.ambiguous], [true, "failOpen", true]);
        assert.equal((await itemOf(direct, user, "lost"))?.w700?.N, "2", "three sends with one token: applied once");
        // A new call has a token of its own, even when it asks exactly the same.
        proxy.setFault(
          (info) => (
            info.operation === "TransactWriteItems" &&
              tokens.push((JSON.parse(info.body) as { ClientRequestToken: string }).ClientRequestToken),
            "pass"
          ),
        );
        await limitAll([
          { limiter: user, identifier: "lost" },
          { limiter: global, identifier: "all" },
        ]);
        assert.notEqual(tokens.at(-1), tokens[0]);
        assert.equal((await itemOf(direct, user, "lost"))?.w700?.N, "3");
      });
    } else {
      it("fallback: a take whose answer is lost is not resent and counts once", async () => {
        const { client, direct, proxy } = await throughProxy(server.endpoint, {
          retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 2, atLeastOnce: true },
        });
        const { user, global } = limiters(client, () => at(700));
        await limitAll([
          { limiter: user, identifier: "warm" },
          { limiter: global, identifier: "warm" },
        ]); // transactions probed
        let lose = 1;
        proxy.setFault((info) =>
          info.operation === "UpdateItem" && info.body.includes("ratelimit:user") && lose-- > 0 ? "drop-after" : "pass",
        );
        const sent = count(proxy.forwarded, "UpdateItem");
        const r = await limitAll([
          { limiter: user, identifier: "lost" },
          { limiter: global, identifier: "all" },
        ]);
        assert.equal(count(proxy.forwarded, "UpdateItem") - sent, 2, "the user take (lost) once, then the global take");
        assert.deepEqual([r.success, r.results[0]!.reason, r.results[0]!.error?.ambiguous], [true, "failOpen", true]);
        assert.equal((await itemOf(direct, user, "lost"))?.w700?.N, "1", "counted once");
      });
    }

    it("top-level fields are the most restrictive limit's; rateLimitHeaders names one policy per limit", async () => {
      const { client } = await throughProxy(server.endpoint);
      const now = at(800);
      const minute = new RateLimiter(client, { name: "minute", limit: 5, windowMs: W, algorithm: "fixed-window", now: () => now });
      const day = new RateLimiter(client, { name: "day", limit: 2, windowMs: 86_400_000, algorithm: "fixed-window", now: () => now });
      const checks: LimitCheck[] = [
        { limiter: minute, identifier: "h" },
        { limiter: day, identifier: "h" },
      ];
      const first = await limitAll(checks);
      assert.deepEqual([first.success, first.limit, first.remaining], [true, 2, 1], "allowed: the limit with the fewest remaining");
      await limitAll(checks);
      const denied = await limitAll(checks);
      assert.deepEqual(
        [denied.success, denied.limit, denied.reset],
        [false, 2, Math.ceil(now / 86_400_000) * 86_400_000],
        "denied: the denying limit, until its window ends",
      );
      const headers = rateLimitHeaders(denied, { now });
      assert.equal(headers["RateLimit-Policy"], `"minute";q=5;w=60, "day";q=2;w=86400`);
      assert.match(headers.RateLimit!, /^"minute";r=3;t=\d+, "day";r=0;t=\d+$/);
      assert.equal(headers["Retry-After"], String(Math.ceil((denied.reset - now) / 1000)));
      assert.equal(
        rateLimitHeaders(denied, { now, format: "draft-7" }).RateLimit,
        `limit=2, remaining=0, reset=${Math.ceil((denied.reset - now) / 1000)}`,
      );
    });

    it("bad input is a Validation error before any request: equal names, one item twice, a cost over a limit, too many checks, not a limiter", async () => {
      const { client, proxy } = await throughProxy(server.endpoint);
      const a = new RateLimiter(client, { name: "a", limit: 5, windowMs: W });
      const a2 = new RateLimiter(client, { name: "a", limit: 7, windowMs: 1000 });
      const b = new RateLimiter(client, { name: "b", limit: 5, windowMs: W, key: (id) => `shared:${id}` });
      const c = new RateLimiter(client, { name: "c", limit: 5, windowMs: W, algorithm: "token-bucket", key: (id) => `shared:${id}` });
      const cases: Array<[string, unknown, RegExp]> = [
        [
          "equal names",
          [
            { limiter: a, identifier: "x" },
            { limiter: a2, identifier: "x" },
          ],
          /two limits named "a"/,
        ],
        [
          "one limiter, two identifiers",
          [
            { limiter: a, identifier: "x" },
            { limiter: a, identifier: "y" },
          ],
          /two limits named "a"/,
        ],
        [
          "one item for two limiters",
          [
            { limiter: b, identifier: "x" },
            { limiter: c, identifier: "x" },
          ],
          /count in one item/,
        ],
        ["a cost over a limit", [{ limiter: a, identifier: "x", cost: 6 }], /more than "limit"/],
        [
          "summed costs over a limit",
          [
            { limiter: a, identifier: "x", cost: 3 },
            { limiter: a, identifier: "x", cost: 3 },
          ],
          /more than "limit"/,
        ],
        ["a bad cost", [{ limiter: a, identifier: "x", cost: 0 }], /positive integer/],
        ["an empty identifier", [{ limiter: a, identifier: "" }], /non-empty string/],
        ["not a limiter", [{ limiter: {}, identifier: "x" }], /must be a RateLimiter/],
        ["an unknown field", [{ limiter: a, identifier: "x", costs: 2 }], /did you mean "cost"/],
        ["no checks", [], /non-empty array/],
        [
          "101 checks",
          Array.from({ length: 101 }, (_, i) => ({
            limiter: new RateLimiter(client, { name: `n${i}`, limit: 5, windowMs: W }),
            identifier: "x",
          })),
          /at most 100/,
        ],
      ];
      for (const [what, checks, message] of cases) {
        const error = await rejection(limitAll(checks as LimitCheck[]));
        assert.ok(error instanceof CounterError && error.code === "Validation", `${what}: ${String(error)}`);
        assert.match(error.message, message, what);
      }
      assert.equal(
        [...proxy.seen.values()].reduce((x, y) => x + y, 0),
        0,
        "not one request",
      );
    });
  });
}
