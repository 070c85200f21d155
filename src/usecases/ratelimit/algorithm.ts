// What every rate-limiting algorithm provides to the limiter: one conditional request, and the maths to read an item.

/** An item as DynamoDB returns it (only number attributes matter here). */
export type Item = Record<string, { N?: string } | undefined>;

/** One conditional `UpdateItem`: it changes the item only when the units fit, so a denied call costs nothing. */
export interface Plan {
  update: string;
  condition: string;
  names: Record<string, string>;
  values: Record<string, { N: string }>;
}

/**
 * The `UpdateItem` body of a plan: the item after it when it applies, the item as it was when its condition
 * fails (so a denied call learns the state from the same request).
 */
export const planUpdate = (tableName: string, key: Record<string, unknown>, plan: Plan) => ({
  TableName: tableName,
  Key: key,
  UpdateExpression: plan.update,
  ConditionExpression: plan.condition,
  ExpressionAttributeNames: plan.names,
  ExpressionAttributeValues: plan.values,
  ReturnValues: "ALL_NEW",
  ReturnValuesOnConditionCheckFailure: "ALL_OLD",
});

/** What an item says at a given moment. */
export interface Reading {
  /** Units that could be taken now. */
  available: number;
  /** When the quota is whole again (a window's end; when a bucket is full), in epoch ms. */
  reset: number;
  /** When the units asked for would fit, assuming nothing else is taken meanwhile, in epoch ms. */
  freeAt: number;
}

/**
 * One algorithm: pure functions of the clock, the units and the last item seen. The item seen is a hint:
 * every plan's condition checks what it assumed, so a stale hint costs a second request, never a wrong answer.
 */
export interface Algorithm {
  /**
   * The request that takes `units` at `now`; undefined when the item seen already shows they cannot fit.
   * `lostAt`: when this call's previous request was sent, if its condition failed and `seen` was read since. The
   * item then shows the state others left, which keeps moving under contention: an algorithm with a plan per
   * state (a full bucket, a bucket missing tokens) may plan for the state `seen` had at `lostAt` rather than guess
   * it changed since. A wrong guess fails its condition and costs a round, never an admission.
   */
  take(now: number, units: number, seen: Item | undefined, lostAt?: number): Plan | undefined;
  /** Reads an item at `now` for a call of `units`. */
  read(now: number, units: number, item: Item): Reading;
  /**
   * The request that gives back up to `units` (never below zero use), taken at `takenAt` (a time within the
   * window they were taken in; default `now`); undefined when nothing is in use there, or when that window has
   * passed (units are never given to a window that began after they were taken).
   */
  refund(now: number, units: number, seen: Item | undefined, takenAt?: number): Plan | undefined;
  /**
   * State written by a host whose clock runs ahead beyond what the guarantees tolerate (a window more than one
   * window ahead, a bucket more than `windowMs` ahead): the write that brings it back to this clock, so that it
   * cannot lock an identifier out for everyone. Undefined for state that is not from the future.
   */
  normalize(now: number, seen: Item | undefined): Plan | undefined;
  /**
   * Where a successful result's units were taken, from its `reset`: windows, a time within the window they count
   * in; a token bucket, when that take's tokens are all back (`refund` gives back only those still missing).
   */
  takenAt(result: { reset: number }): number | undefined;
  /**
   * A time within the window a call at `now` counts in, given the item: its clock's, or the item's newer one when
   * that is one window ahead (a clock behind the item's joins it). What a refund without a result targets.
   */
  countsAt(now: number, seen: Item | undefined): number | undefined;
  /** Until when units taken at `now` may be spent locally (a lease never outlives its window or its time). */
  leaseUntil(now: number, units: number): number;
  /**
   * The item as `take(now, units, seen)` leaves it if `seen` is still what DynamoDB holds: what a transaction,
   * which returns no attributes when it succeeds, knows afterwards (a hint and an approximate `remaining`).
   */
  assume(now: number, units: number, seen: Item | undefined): Item;
}

/** The numeric value of an attribute, or undefined. */
export const num = (item: Item | undefined, name: string): number | undefined => {
  const n = item?.[name]?.N;
  return n === undefined ? undefined : Number(n);
};

/** Epoch seconds for a TTL attribute, from epoch ms (rounded up, so an item never expires early). */
export const ttlSeconds = (ms: number): string => String(Math.ceil(ms / 1000));

/**
 * A denial decided at the time its request was sent (`reading`: the units did not fit then, as the failed condition
 * said), announced from `now`, when the answer is in hand: when to come back (`freeAt`) and when the quota is whole
 * (`reset`) from the item as it now stands, so never a time already past (a token bucket's next token or a window's
 * end may have come while the request and a read of the item were on their way). Reading the item at the send time
 * alone would announce such a time, telling callers to come straight back, and block nothing locally.
 */
export function announced(algo: Algorithm, reading: Reading, cost: number, item: Item, now: number): Reading {
  const current = algo.read(now, cost, item);
  return { available: reading.available, reset: current.reset, freeAt: current.freeAt };
}
