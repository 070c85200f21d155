import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterBuffer, CounterClient, CounterError, IdAllocator, RateLimiter, ShardedCounter } from "../../src/index.ts";
import { clientFor, credentials } from "../support/harness.ts";

// Every rule is checked with a fetch that fails the test if called: validation happens before any request.
function client(options: ConstructorParameters<typeof CounterClient>[0] = {}) {
  return clientFor("http://127.0.0.1:9", {
    ...options,
    fetch: () => {
      throw new Error("a request was sent for invalid input");
    },
  });
}

async function expectValidation(promise: Promise<unknown>, field: RegExp) {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof CounterError, `not a CounterError: ${String(e)}`);
    assert.equal(e.code, "Validation");
    assert.equal(e.retryable, false);
    assert.match(e.message, field);
    return true;
  });
}

function expectValidationThrow(make: () => unknown, message: RegExp, what = String(message)) {
  assert.throws(make, (e: unknown) => e instanceof CounterError && e.code === "Validation" && message.test(e.message), what);
}

describe("validation before any request", () => {
  const c = client();
  it("keys: non-empty strings", async () => {
    await expectValidation(c.increment(""), /key must not be empty/);
    await expectValidation(c.get(42 as unknown as string), /key must be a string/);
    await expectValidation(c.get(null as unknown as string), /key must be a string or \{ id, sort \}/);
    await expectValidation(c.get({ id: "" }), /key\.id must not be empty/);
  });

  it("partition key at most 2048 UTF-8 bytes, sort key at most 1024", async () => {
    await c.increment("a".repeat(2048)).catch((e: CounterError) => assert.notEqual(e.code, "Validation"));
    await expectValidation(c.increment("a".repeat(2049)), /key is 2049 bytes.*at most 2048/);
    await expectValidation(c.increment("é".repeat(1025)), /key is 2050 bytes/); // 2 bytes each
    await expectValidation(c.increment("😀".repeat(513)), /key is 2052 bytes/); // 4 bytes each
    const sorted = client({ sortKeyAttribute: "s" });
    await expectValidation(sorted.increment({ id: "a", sort: "b".repeat(1025) }), /key\.sort is 1025 bytes.*at most 1024/);
  });

  it("no lone surrogates", async () => {
    await expectValidation(c.increment("a\ud800b"), /key contains a lone UTF-16 surrogate/);
    await expectValidation(c.increment("\udc00"), /lone UTF-16 surrogate/);
    await expectValidation(c.increment({ id: "ok\ud83d" }), /key\.id contains a lone/);
  });

  it("sort keys: required when the table has one, refused when it has none", async () => {
    const sorted = client({ sortKeyAttribute: "day" });
    await expectValidation(sorted.increment("a"), /must be \{ id, sort \}.*sort key "day"/);
    await expectValidation(sorted.increment({ id: "a" }), /key\.sort is required/);
    await expectValidation(c.increment({ id: "a", sort: "b" }), /no sortKeyAttribute/);
  });

  it("by: finite integers or bigints, at most 38 digits", async () => {
    await expectValidation(c.increment("k", { by: 1.5 }), /"by" must be an integer/);
    await expectValidation(c.increment("k", { by: Number.NaN }), /"by"/);
    await expectValidation(c.increment("k", { by: Number.POSITIVE_INFINITY }), /"by"/);
    await expectValidation(c.increment("k", { by: 2 ** 53 }), /"by".*bigint/);
    await expectValidation(c.increment("k", { by: "1" as unknown as number }), /"by" must be an integer number or a bigint, got string/);
    await expectValidation(c.increment("k", { by: 10n ** 38n }), /"by" has more than 38 digits/);
    await expectValidation(c.increment("k", { by: -(10n ** 38n) }), /"by" has more than 38 digits/);
  });

  it("count: an integer of at least 1", async () => {
    await expectValidation(c.reserve("k", 0), /"count" must be at least 1/);
    await expectValidation(c.reserve("k", -3), /"count" must be at least 1/);
    await expectValidation(c.reserve("k", 2.5), /"count" must be an integer/);
    await expectValidation(c.reserve("k", 10n ** 38n), /"count" has more than 38 digits/);
  });

  it("table options per call", async () => {
    await expectValidation(c.increment("k", { tableName: "ab" }), /"tableName".*3 to 255/);
    await expectValidation(c.increment("k", { tableName: "bad name!" }), /"tableName".*letters, digits/);
    await expectValidation(c.get("k", { countAttribute: "" }), /"countAttribute".*empty/);
    await expectValidation(c.get("k", { keyAttribute: "x".repeat(256) }), /"keyAttribute"/);
    await expectValidation(c.createTable({ ttlAttribute: "" }), /"ttlAttribute"/);
    await expectValidation(c.createTable({ waitMs: -1 }), /"waitMs": must be an integer/);
    await expectValidation(c.createTable({ waitMs: "60s" } as never), /"waitMs": must be a number/);
    await expectValidation(c.createTable({ ttlAtribute: "x" } as never), /"ttlAtribute".*did you mean "ttlAttribute"/);
  });

  it("client options", () => {
    const bad: [object, RegExp][] = [
      [{ timeoutMs: 0 }, /"timeoutMs"/],
      [{ timeoutMs: 1.5 }, /"timeoutMs"/],
      [{ retry: { attempts: 0 } }, /"retry\.attempts"/],
      [{ retry: { baseDelayMs: -1 } }, /"retry\.baseDelayMs"/],
      [{ retry: { throttle: { baseDelayMs: 2 ** 31 } } }, /"retry\.throttle\.baseDelayMs": must be an integer from 0 to 2147483647/],
      [{ numbers: "float" }, /"numbers"/],
      [{ fetch: "yes" }, /"fetch"/],
      [{ region: "US EAST" }, /"region"/],
      [{ tableName: "x" }, /"tableName"/],
      [{ credentials: { accessKeyId: "", secretAccessKey: "s" } }, /"credentials\.accessKeyId"/],
      [{ credentials: { accessKeyId: "a" } }, /"credentials\.secretAccessKey": is required/],
      [{ credentials: "a:b" }, /"credentials": must be an object/],
      [{ retry: 3 }, /"retry": must be an object/],
      [{ region: 5 }, /"region": must be a string/],
      [{ timeoutMs: "100" }, /"timeoutMs": must be a number/],
      [{ retry: { atLeastOnce: "yes" } }, /"retry\.atLeastOnce": must be a boolean/],
    ];
    for (const [options, field] of bad) {
      expectValidationThrow(
        () => new CounterClient({ env: {}, credentials: { accessKeyId: "a", secretAccessKey: "b" }, ...options }),
        field,
        `expected ${field} for ${JSON.stringify(options)}`,
      );
    }
  });

  it("options objects: required fields, and the object itself", () => {
    expectValidationThrow(() => new RateLimiter(c, { windowMs: 1000 } as never), /Invalid rate limiter option "limit": is required/);
    expectValidationThrow(() => new RateLimiter(c, { limit: 10 } as never), /"windowMs": is required/);
    expectValidationThrow(() => new RateLimiter(c, undefined as never), /"limit": is required/);
    expectValidationThrow(() => new RateLimiter(c, { limit: 10, windowMs: 1000, tableName: "x" }), /"tableName"/);
    expectValidationThrow(() => new CounterClient("us-east-1" as never), /Invalid client options: must be an object/);
    expectValidationThrow(() => new CounterClient(null as never), /Invalid client options: must be an object/);
    expectValidationThrow(() => new RateLimiter(c, null as never), /Invalid rate limiter options: must be an object/);
    expectValidationThrow(() => new CounterBuffer(c, null as never), /Invalid buffer options: must be an object/);
    expectValidationThrow(() => new IdAllocator(c, "k", null as never), /Invalid id allocator options: must be an object/);
    expectValidationThrow(() => new ShardedCounter(c, "k", null as never), /Invalid sharded counter options: must be an object/);
  });

  it("null as per-call options is a Validation error (it was a TypeError, or ignored), before any request", async () => {
    const none = null as never;
    await expectValidation(c.increment("k", none), /Invalid increment options: must be an object/);
    await expectValidation(c.get("k", none), /Invalid get options: must be an object/);
    await expectValidation(c.reserve("k", 5, none), /Invalid reserve options: must be an object/);
    await expectValidation(c.createTable(none), /Invalid createTable options: must be an object/);
    await expectValidation(new IdAllocator(c, "ids").next(none), /Invalid next options: must be an object/);
    const limiter = new RateLimiter(c, { limit: 10, windowMs: 1000 });
    await expectValidation(limiter.limit("ip", none), /Invalid limit options: must be an object/);
    await expectValidation(limiter.refund("ip", 1, none), /Invalid refund options: must be an object/);
    const buffer = new CounterBuffer(c);
    assert.throws(() => buffer.add("k", 1, none), /Invalid add options: must be an object/);
    await buffer.close();
  });

  it("ShardedCounter.add checks by before it records its shard count (no request for bad input)", async () => {
    const likes = new ShardedCounter(c, "likes");
    for (const by of [1.5, "5", Number.NaN, 10n ** 40n]) await expectValidation(likes.add(by as never), /"by"/);
  });
});

describe("option names, timers, layouts and regions (issue: bad input that slipped through)", () => {
  it("an unknown option name is a Validation error naming it and the closest known one", async () => {
    const c = client();
    expectValidationThrow(
      () => new CounterBuffer(c, { writerID: "w" } as object),
      /"writerID": is not an option; did you mean "writerId"\?/,
    );
    expectValidationThrow(
      () => new CounterClient({ credentials, env: {}, timeOutMs: 5 } as object),
      /"timeOutMs".*did you mean "timeoutMs"/,
    );
    expectValidationThrow(
      () => new CounterClient({ credentials, env: {}, retry: { atempts: 2 } } as object),
      /"retry\.atempts".*did you mean "attempts"/,
    );
    expectValidationThrow(
      () => new RateLimiter(c, { limit: 1, windowMs: 1000, algoritm: "fixed-window" } as never),
      /"algoritm".*did you mean "algorithm"/,
    );
    expectValidationThrow(() => new IdAllocator(c, "k", { blocksize: 5 } as object), /"blocksize".*did you mean "blockSize"/);
    await expectValidation(c.increment("k", { by: 1, tablename: "x" } as object), /"tablename".*did you mean "tableName"/);
    await expectValidation(c.get("k", { consistant: false } as object), /"consistant".*did you mean "consistent"/);
    expectValidationThrow(
      () => new CounterBuffer(c).add("k", 1, { countAtribute: "n" } as object),
      /"countAtribute".*did you mean "countAttribute"/,
    );
    // Credentials objects from the AWS SDK carry fields of their own; they are accepted.
    assert.ok(new CounterClient({ credentials: { ...credentials, expiration: new Date(), $source: {} } as never, env: {} }));
  });

  it("timer values past 2^31 − 1 ms are rejected (they would fire after 1 ms)", () => {
    const c = client();
    const big = 2 ** 31;
    expectValidationThrow(() => new CounterBuffer(c, { flushIntervalMs: big }), /flushIntervalMs.*2147483647/);
    expectValidationThrow(() => new CounterBuffer(c, { maxRetryDelayMs: big }), /maxRetryDelayMs/);
    expectValidationThrow(() => new CounterClient({ credentials, env: {}, timeoutMs: big }), /timeoutMs/);
    expectValidationThrow(() => new CounterClient({ credentials, env: {}, retry: { maxDelayMs: big } }), /retry\.maxDelayMs/);
    assert.ok(new CounterBuffer(c, { flushIntervalMs: big - 1 }));
  });

  it("close({ timeoutMs }) is validated too", async () => {
    await expectValidation(new CounterBuffer(client()).close({ timeoutMs: -1 }), /timeoutMs/);
  });

  it("a region from the environment is checked before it becomes a host name", () => {
    for (const region of ["evil.example.com/x", "us-east-1.attacker", "US_EAST"]) {
      assert.throws(
        () => new CounterClient({ credentials, env: { AWS_REGION: region } }),
        (e: unknown) => e instanceof CounterError && e.code === "Config" && /AWS_REGION/.test(e.message),
        region,
      );
    }
    expectValidationThrow(() => new CounterClient({ credentials, env: {}, region: "a.b" }), /region/);
    assert.equal(
      new CounterClient({ credentials, env: { AWS_REGION: "eu-central-2" } }).endpoint,
      "https://dynamodb.eu-central-2.amazonaws.com/",
    );
  });
});
