// Token bucket as GCRA: one timestamp per identifier (the theoretical arrival time), moved by a conditional SET.
import { ttlSeconds, type Algorithm, type Item, type Plan } from "./algorithm.js";

/** The attribute holding the bucket's theoretical arrival time. */
export const TAT = "tat";

/**
 * A bucket of `limit` tokens refilled continuously at `limit` per `windowMs`. GCRA stores one number: the time
 * at which the bucket would be full again (TAT). A call of `n` units fits when max(TAT, now) + n·T ≤ now + windowMs,
 * with T = windowMs / limit per unit. Times are kept in units of ms/limit (integers, as BigInt), so T is exactly
 * `windowMs` whatever the limit and nothing is rounded.
 */
export function bucketAlgorithm(limit: number, windowMs: number, ttlAttribute: string): Algorithm {
  const L = BigInt(limit);
  const T = BigInt(windowMs);
  const capacity = T * L;
  const scaled = (now: number) => BigInt(Math.floor(now)) * L;
  const tatOf = (item: Item | undefined) => (item?.[TAT]?.N === undefined ? undefined : BigInt(item[TAT]!.N!));
  /** ms from scaled time, rounded up (a unit is never announced before it is there). */
  const ms = (v: bigint) => Number((v + L - 1n) / L);
  // The item is needed until its TAT at most, and TAT is never more than `windowMs` ahead of the clock.
  const names = { "#a": TAT, "#t": ttlAttribute };

  return {
    take(now, units, seen): Plan | undefined {
      const at = scaled(now);
      const cost = BigInt(units) * T;
      const tat = tatOf(seen);
      const expires = { N: ttlSeconds(now + windowMs) };
      if (tat !== undefined && tat > at) {
        // Tokens are missing: the TAT moves on by the cost, if it stays within capacity.
        return {
          update: "SET #a = #a + :c, #t = :e",
          condition: "#a > :now AND #a <= :max",
          names,
          values: { ":c": { N: String(cost) }, ":now": { N: String(at) }, ":max": { N: String(at + capacity - cost) }, ":e": expires },
        };
      }
      // Full bucket (or no item): the TAT starts from now.
      return {
        update: "SET #a = :tat, #t = :e",
        condition: "attribute_not_exists(#a) OR #a <= :now",
        names,
        values: { ":tat": { N: String(at + cost) }, ":now": { N: String(at) }, ":e": expires },
      };
    },

    read(now, units, item) {
      const at = scaled(now);
      const stored = tatOf(item);
      // A TAT is never legitimately more than one capacity ahead of the clock: beyond that it is skew (or not a
      // bucket's), and read as an empty bucket, so `reset` stays within one window.
      const tat = stored === undefined || stored <= at ? at : stored > at + capacity ? at + capacity : stored;
      const available = Number((at + capacity - tat) / T);
      const freeAt = Math.max(now, ms(tat + BigInt(units) * T - capacity));
      return { available: Math.max(0, Math.min(limit, available)), reset: ms(tat), freeAt };
    },

    normalize(now, seen): Plan | undefined {
      const at = scaled(now);
      const tat = tatOf(seen);
      // A host whose clock runs ahead by s writes a TAT up to s + windowMs ahead of this clock. Up to s = windowMs
      // that is skew the guarantees tolerate (read as an empty bucket); beyond it, the TAT is capped at one window
      // ahead of this clock (an empty bucket that refills from now), so that one wrong clock cannot lock the
      // identifier out for longer than a window.
      if (tat === undefined || tat <= at + 2n * capacity) return undefined;
      return { update: "SET #a = :cap", condition: "#a = :seen", names: { "#a": TAT }, values: { ":cap": { N: String(at + capacity) }, ":seen": { N: String(tat) } } };
    },

    // A bucket has no windows: refunds give tokens back to it, never past full.
    takenAt: () => undefined,

    refund(now, units, seen): Plan | undefined {
      const at = scaled(now);
      const back = BigInt(units) * T;
      const tat = tatOf(seen);
      // A bucket seen full (or never used) has nothing to give back.
      if (seen !== undefined && (tat === undefined || tat <= at)) return undefined;
      if (tat === undefined || tat - back >= at) {
        return { update: "SET #a = #a - :c", condition: "#a >= :min", names: { "#a": TAT }, values: { ":c": { N: String(back) }, ":min": { N: String(at + back) } } };
      }
      // Less in use than given back: the bucket becomes full, no more (never credit beyond capacity).
      return { update: "SET #a = :now", condition: "#a = :tat", names: { "#a": TAT }, values: { ":now": { N: String(at) }, ":tat": { N: String(tat) } } };
    },

    // Leased tokens are spent within the time they took to accrue, never later.
    leaseUntil: (now, units) => now + Math.max(1, Math.floor((units * windowMs) / limit)),
  };
}
