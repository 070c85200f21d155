// Fast tier for the flush engine's timing and ordering, without servers: a fake clock drives its timers and
// a scripted fetch answers like DynamoDB, so backoff, deadlines and sequence numbers are checked exactly.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CounterClient, CounterError } from "../../src/index.ts";
import { errorFromResponse } from "../../src/core/errors.ts";
import { FlushEngine } from "../../src/buffer/engine.ts";
import type { FlushResult } from "../../src/buffer/results.ts";
import { markerAttribute } from "../../src/buffer/writer.ts";
import { credentials } from "../support/credentials.ts";

/** A fake clock: timers run only when the test advances time. */
class FakeClock {
  t = 1_700_000_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #ids = 0;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.#ids;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (id: unknown) => void this.#timers.delete(id as number);
  /** The earliest pending timer's time. */
  get next(): number | undefined {
    let min: number | undefined;
    for (const { at } of this.#timers.values()) if (min === undefined || at < min) min = at;
    return min;
  }
  /** Moves time forward by `ms`, running due timers in order and letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = [...this.#timers.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
    await settle();
  }
}

/** Lets every queued promise callback run (the scripted fetch answers without I/O). */
const settle = async () => {
  for (let i = 0; i < 50; i++) await Promise.resolve();
};

type Answer = { status: number; body: unknown };
interface Sent {
  key: string;
  delta: string;
  seq?: number;
  at: number;
}

/**
 * A real client whose `send` answers from `decide` (default: success) without I/O, through the same error
 * mapping the transport uses, so everything the engine awaits settles in microtasks and the fake clock is exact.
 */
function scripted(clock: FakeClock, decide: (s: Sent) => Answer | "ok" = () => "ok") {
  const sent: Sent[] = [];
  const stored = new Map<string, number>();
  const client = new CounterClient({ endpoint: "http://127.0.0.1:9", credentials, env: {} });
  client.send = (async (_operation: string, raw: unknown) => {
    const body = raw as { Key: { id: { S: string } }; ExpressionAttributeValues: Record<string, { N: string }> };
    const seq = body.ExpressionAttributeValues[":s"]?.N;
    const s: Sent = {
      key: body.Key.id.S,
      delta: body.ExpressionAttributeValues[":d0"]!.N,
      at: clock.now(),
      ...(seq ? { seq: Number(seq) } : {}),
    };
    sent.push(s);
    const answer = decide(s);
    if (answer === "ok") {
      stored.set(s.key, (stored.get(s.key) ?? 0) + Number(s.delta));
      return {};
    }
    throw errorFromResponse(answer.status, answer.body as never, { mayHaveApplied: false });
  }) as CounterClient["send"];
  return { client, sent, stored };
}

const throttled: Answer = { status: 400, body: { __type: "com.amazonaws.dynamodb.v20120810#ThrottlingException", message: "slow down" } };
const missingTable: Answer = {
  status: 400,
  body: { __type: "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", message: "no table" },
};

function engine(
  clock: FakeClock,
  client: CounterClient,
  options: Partial<{
    writerId: string;
    maxKeys: number;
    intervalMs: number;
    maxRetryDelayMs: number;
    onFlush: (r: FlushResult) => void;
  }> = {},
) {
  const errors: CounterError[] = [];
  let timer: unknown;
  const e: FlushEngine = new FlushEngine({
    client,
    writerId: options.writerId,
    concurrency: 4,
    maxKeys: options.maxKeys ?? 100,
    intervalMs: options.intervalMs ?? 1000,
    maxRetryDelayMs: options.maxRetryDelayMs ?? 30_000,
    maxPendingKeys: 1000,
    maxPendingBytes: 1 << 20,
    markerWarnAt: 10,
    onError: (error) => errors.push(error),
    onFlush: options.onFlush,
    onDeadLetter: () => undefined,
    timers: clock,
    store: undefined,
    scheduler: {
      set: (at) => {
        clock.clearTimeout(timer);
        timer = clock.setTimeout(() => void e.wake(), at - clock.now());
      },
      clear: () => clock.clearTimeout(timer),
    },
  });
  const add = (key: string, by = 1) => {
    e.slots.add(key, by);
    void e.scheduleFlush();
  };
  return { e, add, errors };
}

describe("flush engine timing and ordering (fake clock, no server)", () => {
  it("flushes flushIntervalMs after the first add, not before", async () => {
    const clock = new FakeClock();
    const { client, sent } = scripted(clock);
    const { add } = engine(clock, client, { intervalMs: 1000 });
    add("a");
    await clock.advance(999);
    assert.equal(sent.length, 0);
    add("b"); // a later add does not push the flush back
    await clock.advance(1);
    assert.deepEqual(sent.map((s) => s.key).sort(), ["a", "b"]);
  });

  it("while a failed flush backs off, nothing pulls the retry forward: not maxKeys, not more adds", async () => {
    const clock = new FakeClock();
    let down = true;
    const { client, sent } = scripted(clock, () => (down ? throttled : "ok"));
    const { e, add, errors } = engine(clock, client, { maxKeys: 3, intervalMs: 100, maxRetryDelayMs: 60_000 });
    for (const k of ["a", "b", "c"]) add(k); // maxKeys: due now
    await clock.advance(0);
    assert.equal(sent.length, 3, "the first flush");
    assert.equal(errors.length, 1);
    const retryAt = clock.next!;
    assert.ok(retryAt > clock.now(), "a retry is scheduled in the future");
    // A burst during the outage: 1,000 adds over many keys, far past maxKeys.
    for (let i = 0; i < 1000; i++) add(`burst${i % 50}`);
    assert.equal(clock.next, retryAt, "the retry time did not move");
    await clock.advance(retryAt - clock.now() - 1);
    assert.equal(sent.length, 3, "no request before the retry is due");
    down = false;
    await clock.advance(1);
    assert.equal(sent.length, 3 + 53, "one request per key at the retry, each once");
    assert.equal(e.pending, 0);
  });

  it("consecutive failures back off further, capped at maxRetryDelayMs", async () => {
    const clock = new FakeClock();
    const { client, sent } = scripted(clock, () => throttled);
    const { add } = engine(clock, client, { maxKeys: 1, maxRetryDelayMs: 5_000 });
    add("a");
    await clock.advance(0);
    const gaps: number[] = [];
    for (let i = 0; i < 12; i++) {
      const before = sent.length;
      const at = clock.next!;
      gaps.push(at - clock.now());
      await clock.advance(at - clock.now());
      assert.equal(sent.length, before + 1);
    }
    assert.ok(
      gaps.every((g) => g >= 50 && g <= 5_000),
      JSON.stringify(gaps),
    );
  });

  it("sequence numbers only grow; a retried write keeps its own; a failing key does not hold back the others", async () => {
    const clock = new FakeClock();
    let failB = true;
    const { client, sent } = scripted(clock, (s) => (s.key === "b" && failB ? throttled : "ok"));
    const { e, add } = engine(clock, client, { writerId: "w1" });
    add("a");
    add("b", 5);
    await assert.rejects(e.flush(), (x: unknown) => x instanceof CounterError && x.code === "Throttled");
    const firstSeq = sent[0]!.seq!;
    assert.equal(sent[1]!.seq, firstSeq, "one seq per flush");
    clock.t += 10;
    add("a", 2);
    add("b", 7); // waits behind b's failed write
    await assert.rejects(e.flush());
    const second = sent.slice(2);
    const a2 = second.find((s) => s.key === "a")!;
    const b2 = second.find((s) => s.key === "b")!;
    assert.ok(a2.seq! > firstSeq, "new adds get a newer seq");
    assert.deepEqual([b2.delta, b2.seq], ["5", firstSeq], "b's failed write is retried as it was, same delta and seq");
    failB = false;
    clock.t += 10;
    await e.flush();
    const third = sent.slice(4);
    assert.deepEqual(
      third.map((s) => [s.key, s.delta]),
      [
        ["b", "5"],
        ["b", "7"],
      ],
      "b's retry, then its newer adds, in order",
    );
    assert.ok(third[1]!.seq! > third[0]!.seq!);
    assert.equal(e.pending, 0);
  });

  it("a key failing with a non-retryable error becomes a dead letter and the rest is written", async () => {
    const clock = new FakeClock();
    const { client, stored } = scripted(clock, (s) => (s.key === "poison" ? missingTable : "ok"));
    const { e, add, errors } = engine(clock, client);
    add("poison", 3);
    add("ok", 4);
    const result = await e.flush();
    assert.deepEqual({ keys: result.keys, total: result.total, deadLetters: result.deadLetters }, { keys: 1, total: 4, deadLetters: 1 });
    assert.equal(errors.length, 0, "not a failed flush");
    assert.equal(e.pending, 0);
    assert.equal(e.deadLetters.length, 1);
    assert.equal(e.deadLetters[0]!.error.code, "TableNotFound");
    assert.equal(e.deadLetters[0]!.amount, 3);
    assert.equal(stored.get("ok"), 4);
  });

  it("an expired session token is not a dead letter: the write is retried, and lands once the credentials are new", async () => {
    const clock = new FakeClock();
    let expired = true;
    const expiredToken: Answer = {
      status: 400,
      body: {
        __type: "com.amazonaws.dynamodb.v20120810#ExpiredTokenException",
        message: "The security token included in the request is expired",
      },
    };
    const { client, stored } = scripted(clock, () => (expired ? expiredToken : "ok"));
    const { e, add, errors } = engine(clock, client, { writerId: "w" });
    add("a", 2);
    await assert.rejects(e.flush(), (error: unknown) => error instanceof CounterError && error.code === "AccessDenied" && error.retryable);
    assert.equal(e.deadLetters.length, 0, "not set aside");
    assert.equal(e.pending, 1, "still queued");
    assert.ok(errors.length >= 1, "reported to onError");
    expired = false; // the credentials refreshed
    await clock.advance(60_000);
    assert.equal(stored.get("a"), 2);
    assert.equal(e.pending, 0);
  });

  it("close() retries with backoff until its deadline, then rejects saying what is left; nothing retries after", async () => {
    const clock = new FakeClock();
    let down = true;
    const { client, sent, stored } = scripted(clock, () => (down ? throttled : "ok"));
    const { e, add } = engine(clock, client, { writerId: "w" });
    add("a", 2);
    add("b", 3);
    let settled: unknown;
    const closing = e.close(10_000).then(
      (r) => (settled = r),
      (error: unknown) => (settled = error),
    );
    await clock.advance(9_999);
    assert.equal(settled, undefined, "still trying before the deadline");
    assert.ok(sent.length > 4, `retried (${sent.length} requests)`);
    await clock.advance(1);
    await closing;
    const error = settled as unknown;
    assert.ok(error instanceof CounterError && error.code === "Timeout");
    assert.match(error.message, /2 keys with a total of 5 are still unwritten/);
    assert.equal(e.pending, 2);
    const count = sent.length;
    await clock.advance(600_000);
    assert.equal(sent.length, count, "no background retries after close gave up");
    down = false;
    await e.flush();
    assert.deepEqual([stored.get("a"), stored.get("b")], [2, 3]);
  });

  it("a marker check that fails with a newer stored marker is a Conflict, never counted as applied", async () => {
    const clock = new FakeClock();
    const marker = markerAttribute("shared");
    const { client } = scripted(clock, (s) => ({
      status: 400,
      body: {
        __type: "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        message: "failed",
        Item: { [marker]: { N: String(s.seq! + 1) } },
      },
    }));
    const { e, add } = engine(clock, client, { writerId: "shared" });
    add("k", 9);
    const result = await e.flush();
    assert.equal(result.keys, 0);
    assert.equal(e.deadLetters[0]?.error.code, "Conflict");
    assert.equal(e.deadLetters[0]?.error.ambiguous, true);
    assert.equal(e.deadLetters[0]?.amount, 9);
  });

  it("a marker check that fails with an equal stored marker means already applied", async () => {
    const clock = new FakeClock();
    const marker = markerAttribute("w");
    const { client } = scripted(clock, (s) => ({
      status: 400,
      body: {
        __type: "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        message: "failed",
        Item: { [marker]: { N: String(s.seq!) } },
      },
    }));
    const { e, add } = engine(clock, client, { writerId: "w" });
    add("k", 9);
    const result = await e.flush();
    assert.deepEqual([result.keys, result.total, e.deadLetters.length], [1, 9, 0]);
  });
});
