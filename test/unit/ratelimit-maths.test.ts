// Rate limiting maths without a server: window and bucket plans and readings, sliding free times, headers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { bucketAlgorithm } from "../../src/usecases/ratelimit/bucket.ts";
import { rateLimitHeaders } from "../../src/usecases/ratelimit/headers.ts";
import { LATEST, SPAN, overlap, slidingFreeAt, windowAlgorithm, windowAttribute } from "../../src/usecases/ratelimit/windows.ts";
import type { Item } from "../../src/usecases/ratelimit/algorithm.ts";
import { CounterError } from "../../src/index.ts";

const W = 60_000;
const n = (v: number | bigint) => ({ N: String(v) });

describe("sliding window maths", () => {
  it("the previous window weighs 1 at the start of a window and towards 0 at its end", () => {
    assert.equal(overlap(10 * W, 10, W), 1);
    assert.equal(overlap(10 * W + W / 4, 10, W), 0.75);
    assert.equal(overlap(11 * W, 10, W), 0);
  });

  it("slidingFreeAt is the first millisecond at which the units fit, never earlier", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: W - 1 }),
        fc.integer({ min: 1, max: 5 }),
        (limit, current, previous, offset, units) => {
          fc.pre(units <= limit);
          const index = 20;
          const now = index * W + offset;
          const used = (t: number) => {
            const i = Math.floor(t / W);
            return i === index
              ? current + Math.floor(previous * overlap(t, index, W))
              : i === index + 1
                ? Math.floor(current * overlap(t, index + 1, W))
                : 0;
          };
          const at = slidingFreeAt(now, index, W, limit, units, current, previous);
          assert.ok(at >= now);
          assert.ok(used(at) + units <= limit, `fits at ${at}`);
          if (at > now) assert.ok(used(at - 1) + units > limit, `not a millisecond earlier than ${at}`);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("window plans", () => {
  const sliding = windowAlgorithm(10, W, true, "expiresAt");
  const fixed = windowAlgorithm(10, W, false, "expiresAt");
  const now = 50 * W + 1000;

  it("one ADD of the current window, the stale windows removed, the TTL pushed, all under one condition", () => {
    const plan = fixed.take(now, 3, undefined)!;
    assert.match(plan.update, /^ADD #c :n SET #l = :i, #t = :e REMOVE /);
    assert.equal(plan.names["#c"], windowAttribute(50));
    const removed = Object.entries(plan.names)
      .filter(([k]) => k.startsWith("#r"))
      .map(([, v]) => v);
    assert.deepEqual(
      removed,
      Array.from({ length: SPAN }, (_, i) => windowAttribute(49 - i)),
    );
    assert.equal(plan.values[":max"]!.N, "7");
    assert.equal(plan.values[":e"]!.N, String((51 * W) / 1000));
    // Sliding keeps the previous window and checks what it assumed of it.
    const s = sliding.take(now, 3, { [LATEST]: n(50), [windowAttribute(49)]: n(4), [windowAttribute(50)]: n(1) })!;
    assert.ok(!Object.entries(s.names).some(([k, v]) => k.startsWith("#r") && v === windowAttribute(49)));
    assert.equal(s.values[":p"]!.N, "4");
    assert.equal(s.values[":max"]!.N, String(10 - 3 - Math.floor(4 * overlap(now, 50, W))));
  });

  it("an item idle for longer than the span is rewritten, its stale counts removed by name", () => {
    const stale: Item = { [LATEST]: n(50 - SPAN - 1), [windowAttribute(50 - SPAN - 1)]: n(3), [windowAttribute(50 - SPAN - 2)]: n(9) };
    const plan = sliding.take(now, 1, stale)!;
    assert.match(plan.update, /^SET #c = :n, #l = :i, #t = :e REMOVE #s0, #s1$/);
    assert.equal(plan.condition, "#l = :last");
    assert.deepEqual(
      [plan.names["#s0"], plan.names["#s1"]].sort(),
      [windowAttribute(50 - SPAN - 1), windowAttribute(50 - SPAN - 2)].sort(),
    );
  });

  it("an instance whose clock lags joins the item's newest window", () => {
    const plan = fixed.take(now, 1, { [LATEST]: n(51) })!;
    assert.equal(plan.names["#c"], windowAttribute(51));
  });

  it("a known previous window that alone fills the limit is denied without a request", () => {
    const item = { [LATEST]: n(50), [windowAttribute(49)]: n(20) };
    assert.equal(sliding.take(50 * W, 1, item), undefined);
    assert.equal(sliding.read(50 * W, 1, item).available, 0);
  });

  it("readings: fixed counts only its window, reset is its end; refund never takes more than the window holds", () => {
    const item = { [LATEST]: n(50), [windowAttribute(50)]: n(7), [windowAttribute(49)]: n(10) };
    assert.deepEqual(fixed.read(now, 1, item), { available: 3, reset: 51 * W, freeAt: now });
    assert.deepEqual(fixed.read(now, 4, item), { available: 3, reset: 51 * W, freeAt: 51 * W });
    assert.equal(fixed.refund(now, 100, item)!.values[":n"]!.N, "7");
    assert.equal(fixed.refund(now, 1, {}), undefined);
  });
});

describe("token bucket (GCRA) maths", () => {
  const bucket = bucketAlgorithm(3, 1000, "expiresAt"); // 3 tokens, one every 333.3… ms
  const L = 3n;

  it("a full bucket holds the limit; each call moves the TAT by exactly windowMs / limit", () => {
    const now = 10_000;
    const first = bucket.take(now, 1, undefined)!;
    // The stored TAT's scale (the limit) is checked too: per-plan limits may change an identifier's limit.
    assert.equal(first.condition, "attribute_not_exists(#a) OR (#a <= :now AND (attribute_not_exists(#s) OR #s = :l))");
    assert.equal(BigInt(first.values[":tat"]!.N), BigInt(now) * L + 1000n, "TAT in units of ms / limit: no rounding");
    const item = { tat: n(BigInt(now) * L + 1000n) };
    assert.deepEqual(bucket.read(now, 1, item), { available: 2, reset: now + 334, freeAt: now });
    const next = bucket.take(now, 1, item)!;
    assert.equal(next.condition, "#a > :now AND #a <= :max AND (attribute_not_exists(#s) OR #s = :l)");
  });

  it("denied: reset is when the tokens asked for are there", () => {
    const now = 10_000;
    const empty = { tat: n(BigInt(now) * L + 3000n) };
    const r = bucket.read(now, 1, empty);
    assert.equal(r.available, 0);
    assert.equal(r.freeAt, now + 334, "ceil(1000 / 3)");
    assert.equal(bucket.read(now, 2, empty).freeAt, now + 667);
  });

  it("refund: never beyond a full bucket, nothing for a full or unused one", () => {
    const now = 10_000;
    const half = { tat: n(BigInt(now) * L + 1000n) };
    assert.match(bucket.refund(now, 1, half)!.update, /#a - :c/);
    assert.deepEqual(bucket.refund(now, 2, half)!.values[":now"], n(BigInt(now) * L));
    assert.equal(bucket.refund(now, 1, {}), undefined);
    assert.equal(bucket.refund(now, 1, { tat: n(BigInt(now - 1) * L) }), undefined);
  });

  it("a lease lasts the time its tokens took to refill", () => {
    assert.equal(bucket.leaseUntil(0, 3), 1000);
    assert.equal(bucket.leaseUntil(0, 1), 333);
  });
});

describe("rateLimitHeaders", () => {
  const now = 1_000_000;
  const allowed = { success: true, limit: 100, remaining: 42, reset: now + 29_001 };
  const denied = { success: false, limit: 100, remaining: 0, reset: now + 1_500 };

  it("latest draft: RateLimit-Policy and RateLimit as structured fields", () => {
    assert.deepEqual(rateLimitHeaders(allowed, { windowMs: 60_000, now }), {
      "RateLimit-Policy": `"default";q=100;w=60`,
      RateLimit: `"default";r=42;t=30`,
    });
    assert.deepEqual(rateLimitHeaders(denied, { now, policy: "api" }), {
      "RateLimit-Policy": `"api";q=100`,
      RateLimit: `"api";r=0;t=2`,
      "Retry-After": "2",
    });
  });

  it("draft-7 and draft-6 styles", () => {
    assert.deepEqual(rateLimitHeaders(allowed, { format: "draft-7", windowMs: 60_000, now }), {
      "RateLimit-Policy": "100;w=60",
      RateLimit: "limit=100, remaining=42, reset=30",
    });
    assert.deepEqual(rateLimitHeaders(denied, { format: "draft-6", now }), {
      "RateLimit-Policy": "100",
      "RateLimit-Limit": "100",
      "RateLimit-Remaining": "0",
      "RateLimit-Reset": "2",
      "Retry-After": "2",
    });
  });

  it("Retry-After is at least one second; bad options are Validation errors", () => {
    assert.equal(rateLimitHeaders({ ...denied, reset: now }, { now })["Retry-After"], "1");
    for (const options of [{ format: "draft-5" }, { policy: 'a"b' }, { windows: 1 }]) {
      assert.throws(
        () => rateLimitHeaders(allowed, options as never),
        (e: unknown) => e instanceof CounterError && e.code === "Validation",
      );
    }
  });
});
