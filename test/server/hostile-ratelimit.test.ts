// RateLimiter against wrong clocks and late refunds, on both real servers: state from a clock far ahead never
// locks an identifier out, and refunds go back to the window their units were taken from (issue 26). Clocks
// are the `now` option: the tests move them, nothing waits.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterError, RateLimiter, type RateLimitResult } from "../../src/index.ts";
import { freshTable, rejection, servers } from "../support/harness.ts";

const WINDOW = 60_000;
const HOUR = 3_600_000;
const LIMIT = 10;
const ALGORITHMS = ["fixed-window", "sliding-window", "token-bucket"] as const;

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** A clock the test moves. */
const clock = (start: number) => {
  const c = { now: start, fn: () => c.now };
  return c;
};

/** Admitted by DynamoDB (not by failing open, which a closed failure mode rules out anyway). */
const admitted = (r: RateLimitResult) => r.success && r.reason === undefined;

for (const server of await servers()) {
  describe(`RateLimiter against hostile clocks on ${server.name}`, () => {
    for (const algorithm of ALGORITHMS) {
      it(`${algorithm}: one call from a host an hour ahead does not lock the identifier out for a correct host`, async () => {
        const client = await freshTable(server.endpoint);
        const t = clock(1000 * WINDOW + 123);
        const options = { limit: LIMIT, windowMs: WINDOW, algorithm, failureMode: "closed" as const };
        const ahead = new RateLimiter(client, { ...options, now: () => t.now + HOUR });
        const correct = new RateLimiter(client, { ...options, now: t.fn });
        assert.equal((await ahead.limit("victim")).success, true, "the host ahead is admitted");
        // 300 calls over two windows of the correct clock.
        const results: { at: number; r: RateLimitResult }[] = [];
        for (let i = 0; i < 300; i++) {
          results.push({ at: t.now, r: await correct.limit("victim") });
          t.now += (2 * WINDOW) / 300;
        }
        for (const { at, r } of results) {
          assert.ok(r.reason !== "failClosed", `no failure: ${r.error?.message}`);
          assert.ok(r.reset <= at + 2 * WINDOW, `reset ${r.reset - at} ms away, not an hour`);
        }
        const first = results.filter(({ at }) => at < 1001 * WINDOW).filter(({ r }) => admitted(r)).length;
        const all = results.filter(({ r }) => admitted(r)).length;
        // Within about one window the correct host is admitted again, and over two windows about 2 × limit.
        assert.ok(first >= 1, `admitted in the first window of the correct clock: ${first}`);
        assert.ok(all >= LIMIT, `admitted over two windows: ${all} of 300 (limit ${LIMIT} per window)`);
        assert.ok(all <= 2 * LIMIT + 1, `never more than the limit allows: ${all}`);
      });
    }

    it("fixed-window: refund with { result } gives units back to the window they were taken from, and nothing to a later window", async () => {
      const client = await freshTable(server.endpoint);
      const t = clock(2000 * WINDOW + 1000);
      const limiter = new RateLimiter(client, {
        limit: LIMIT,
        windowMs: WINDOW,
        algorithm: "fixed-window",
        cacheBlocked: false,
        now: t.fn,
      });
      const taken: RateLimitResult[] = [];
      for (let i = 0; i < LIMIT; i++) taken.push(await limiter.limit("r"));
      assert.ok(taken.every(admitted));
      assert.equal((await limiter.limit("r")).success, false, "window k is full");
      // Within window k, a refund with the result gives back to window k.
      await limiter.refund("r", 3, { result: taken[0]! });
      let again = 0;
      for (let i = 0; i < 5; i++) if (admitted(await limiter.limit("r"))) again++;
      assert.equal(again, 3, "the 3 units refunded in window k are taken again in window k");

      // Window k+1: full again, then units of window k are refunded late.
      t.now += WINDOW;
      let next = 0;
      for (let i = 0; i < LIMIT; i++) if (admitted(await limiter.limit("r"))) next++;
      assert.equal(next, LIMIT);
      await limiter.refund("r", LIMIT, { result: taken[1]! });
      let extra = 0;
      for (let i = 0; i < LIMIT; i++) if (admitted(await limiter.limit("r"))) extra++;
      assert.equal(extra, 0, `units of window k are not credited to window k+1 (${LIMIT + extra} admitted in a window of limit ${LIMIT})`);
      // And another instance refunding late with the result does not either.
      const other = new RateLimiter(client, { limit: LIMIT, windowMs: WINDOW, algorithm: "fixed-window", cacheBlocked: false, now: t.fn });
      await other.refund("r", LIMIT, { result: taken[2]! });
      assert.equal((await limiter.limit("r")).success, false);
    });

    it("sliding-window: a refund with { result } goes to the previous window while it still weighs, and to none once it has passed", async () => {
      const client = await freshTable(server.endpoint);
      const t = clock(3000 * WINDOW + 1000);
      const limiter = new RateLimiter(client, {
        limit: LIMIT,
        windowMs: WINDOW,
        algorithm: "sliding-window",
        cacheBlocked: false,
        now: t.fn,
      });
      const taken: RateLimitResult[] = [];
      for (let i = 0; i < LIMIT; i++) taken.push(await limiter.limit("s"));
      assert.ok(taken.every(admitted));
      // Early in window k+1 the full window k still weighs 90%: one unit is free.
      t.now = 3001 * WINDOW + WINDOW / 10;
      assert.equal((await limiter.remaining("s")).remaining, 1);
      await limiter.refund("s", LIMIT, { result: taken[0]! });
      assert.equal((await limiter.remaining("s")).remaining, LIMIT, "window k's units given back: it no longer weighs");
      let now = 0;
      for (let i = 0; i < LIMIT + 2; i++) if (admitted(await limiter.limit("s"))) now++;
      assert.equal(now, LIMIT);

      // Window k+3: the units taken in k+1 weigh nothing any more; fill k+3, then refund k+1's units late.
      const held: RateLimitResult[] = [];
      t.now = 3003 * WINDOW + 1000;
      for (let i = 0; i < LIMIT; i++) held.push(await limiter.limit("s"));
      assert.ok(held.every(admitted), "window k+1 no longer weighs");
      const late = new RateLimiter(client, { limit: LIMIT, windowMs: WINDOW, algorithm: "sliding-window", cacheBlocked: false, now: t.fn });
      // Units taken in window k+1 (a result whose reset is the end of window k+1), refunded in window k+3.
      await late.refund("s", LIMIT, { result: { reset: 3002 * WINDOW } });
      assert.equal((await limiter.limit("s")).success, false, "nothing credited to window k+3");
    });

    it("error messages of the limiter escape control characters in option names", async () => {
      const client = await freshTable(server.endpoint);
      const limiter = new RateLimiter(client, { limit: LIMIT, windowMs: WINDOW });
      const name = "co\nst";
      const error = await rejection(limiter.limit("x", { [name]: 1 } as never));
      assert.ok(error instanceof CounterError && error.code === "Validation", String(error));
      assert.doesNotMatch(error.message, CONTROL, JSON.stringify(error.message));
      assert.match(error.message, /co\\(?:n|u000a|x0a)st/i);
      const constructing = await rejection(
        (async () => new RateLimiter(client, { limit: 1, windowMs: WINDOW, "wind\u2028owMs": 1 } as never))(),
      );
      assert.ok(constructing instanceof CounterError && constructing.code === "Validation", String(constructing));
      assert.doesNotMatch(constructing.message, CONTROL, JSON.stringify(constructing.message));
    });
  });
}
