// Token bucket as GCRA: one timestamp per identifier (the theoretical arrival time), moved by a conditional SET.
import { num, ttlSeconds, type Algorithm, type Item, type Plan } from "./algorithm.js";

/** The attribute holding the bucket's theoretical arrival time. */
export const TAT = "tat";
/**
 * The attribute holding the limit the TAT is scaled by (its unit is ms / limit). Limits may change for an
 * identifier (per-plan limits: free to pro), and a TAT read in another scale would be wrong by the ratio.
 */
export const SCALE = "tl";

/**
 * A bucket of `limit` tokens refilled continuously at `limit` per `windowMs`. GCRA stores one number: the time
 * at which the bucket would be full again (TAT). A call of `n` units fits when max(TAT, now) + n·T ≤ now + windowMs,
 * with T = windowMs / limit per unit. Times are kept in units of ms/limit (integers, as BigInt), so T is exactly
 * `windowMs` whatever the limit and nothing is rounded; the item records that limit ({@link SCALE}), and an item
 * of another limit is rescaled first, keeping the tokens it was missing (as a window keeps its count).
 */
export function bucketAlgorithm(limit: number, windowMs: number, ttlAttribute: string): Algorithm {
  const L = BigInt(limit);
  const T = BigInt(windowMs);
  const capacity = T * L;
  const scaled = (now: number) => BigInt(Math.floor(now)) * L;
  /** The item's TAT in this limit's scale (items without a scale, written before it was recorded, are taken as this one's). */
  const tatOf = (item: Item | undefined, now: number): bigint | undefined => {
    const raw = item?.[TAT]?.N;
    if (raw === undefined) return undefined;
    const scale = num(item, SCALE);
    // Tokens missing are (TAT − now·scale) / windowMs in any scale: keep them, in this one.
    return scale === undefined || scale === limit ? BigInt(raw) : BigInt(raw) + BigInt(Math.floor(now)) * (L - BigInt(scale));
  };
  /** ms from scaled time, rounded up (a unit is never announced before it is there). */
  const ms = (v: bigint) => Number((v + L - 1n) / L);
  // The item is needed until its TAT at most, and TAT is never more than `windowMs` ahead of the clock.
  const names = { "#a": TAT, "#t": ttlAttribute, "#s": SCALE };
  /** The stored TAT is in this scale (or in none: an item from before scales were recorded). */
  const sameScale = "(attribute_not_exists(#s) OR #s = :l)";
  const l = { N: String(limit) };

  return {
    take(now, units, seen, lostAt): Plan | undefined {
      const at = scaled(now);
      const cost = BigInt(units) * T;
      const tat = tatOf(seen, now);
      const expires = { N: ttlSeconds(now + windowMs) };
      // Tokens were missing when the lost request was sent: under contention others keep the bucket from filling,
      // so plan for tokens missing even if `seen`, read a round trip ago, would be full by now (planning for a full
      // bucket there lost race after race near full). If it did fill, the condition fails and the next round knows.
      if (tat !== undefined && (tat > at || (lostAt !== undefined && tat > scaled(lostAt)))) {
        // Tokens are missing: the TAT moves on by the cost, if it stays within capacity.
        return {
          update: "SET #a = #a + :c, #t = :e, #s = :l",
          condition: `#a > :now AND #a <= :max AND ${sameScale}`,
          names,
          values: {
            ":c": { N: String(cost) },
            ":now": { N: String(at) },
            ":max": { N: String(at + capacity - cost) },
            ":e": expires,
            ":l": l,
          },
        };
      }
      // Full bucket (or no item): the TAT starts from now.
      return {
        update: "SET #a = :tat, #t = :e, #s = :l",
        condition: `attribute_not_exists(#a) OR (#a <= :now AND ${sameScale})`,
        names,
        values: { ":tat": { N: String(at + cost) }, ":now": { N: String(at) }, ":e": expires, ":l": l },
      };
    },

    read(now, units, item) {
      const at = scaled(now);
      const stored = tatOf(item, now);
      // A TAT is never legitimately more than one capacity ahead of the clock: beyond that it is skew (or not a
      // bucket's), and read as an empty bucket, so `reset` stays within one window.
      // biome-ignore lint/complexity/useMathMinMax: bigints (Math.min takes numbers)
      const tat = stored === undefined || stored <= at ? at : stored > at + capacity ? at + capacity : stored;
      const available = Number((at + capacity - tat) / T);
      const freeAt = Math.max(now, ms(tat + BigInt(units) * T - capacity));
      return { available: Math.max(0, Math.min(limit, available)), reset: ms(tat), freeAt };
    },

    normalize(now, seen): Plan | undefined {
      const at = scaled(now);
      const raw = seen?.[TAT]?.N;
      const scale = num(seen, SCALE);
      const tat = tatOf(seen, now);
      if (raw === undefined || tat === undefined) return undefined;
      // A host whose clock runs ahead by s writes a TAT up to s + windowMs ahead of this clock. Up to s = windowMs
      // that is skew the guarantees tolerate (read as an empty bucket); beyond it, the TAT is capped at one window
      // ahead of this clock (an empty bucket that refills from now), so that one wrong clock cannot lock the
      // identifier out for longer than a window.
      const ahead = tat > at + 2n * capacity;
      // Another limit's scale (the identifier's limit changed): rewritten in this one, tokens missing kept.
      const rescale = scale !== undefined && scale !== limit;
      if (!ahead && !rescale) return undefined;
      return {
        update: "SET #a = :to, #s = :l",
        condition: scale === undefined ? "#a = :seen AND attribute_not_exists(#s)" : "#a = :seen AND #s = :was",
        names: { "#a": TAT, "#s": SCALE },
        values: {
          ":to": { N: String(ahead ? at + capacity : tat) },
          ":l": l,
          ":seen": { N: raw },
          ...(scale === undefined ? {} : { ":was": { N: String(scale) } }),
        },
      };
    },

    // A bucket has no windows: a take's result says when its tokens are all back (its TAT after the take).
    takenAt: (result) => result.reset,
    countsAt: () => undefined,

    refund(now, units, seen, takenAt): Plan | undefined {
      const at = scaled(now);
      // Only the tokens of that take not refilled since: those already back are the bucket's again, and giving
      // them once more would let the bucket hold more than its burst.
      const missing = takenAt === undefined ? BigInt(units) : (BigInt(Math.floor(takenAt)) * L - at) / T;
      const back = (missing < BigInt(units) ? missing : BigInt(units)) * T;
      if (back <= 0n) return undefined;
      const tat = tatOf(seen, now);
      // A bucket seen full (or never used) has nothing to give back.
      if (seen !== undefined && (tat === undefined || tat <= at)) return undefined;
      if (tat === undefined || tat - back >= at) {
        return {
          update: "SET #a = #a - :c",
          condition: `#a >= :min AND ${sameScale}`,
          names: { "#a": TAT, "#s": SCALE },
          values: { ":c": { N: String(back) }, ":min": { N: String(at + back) }, ":l": l },
        };
      }
      // Less in use than given back: the bucket becomes full, no more (never credit beyond capacity).
      return {
        update: "SET #a = :now",
        condition: `#a = :tat AND ${sameScale}`,
        names: { "#a": TAT, "#s": SCALE },
        values: { ":now": { N: String(at) }, ":tat": { N: String(tat) }, ":l": l },
      };
    },

    // Leased tokens are spent within the time they took to accrue, never later.
    leaseUntil: (now, units) => now + Math.max(1, Math.floor((units * windowMs) / limit)),

    assume(now, units, seen) {
      const at = scaled(now);
      const tat = tatOf(seen, now);
      const from = tat === undefined || tat <= at ? at : tat;
      return { ...seen, [TAT]: { N: String(from + BigInt(units) * T) }, [SCALE]: l, [ttlAttribute]: { N: ttlSeconds(now + windowMs) } };
    },
  };
}
