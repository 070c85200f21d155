// Fixed and sliding windows: counts per window on one item, taken by a conditional ADD.
import { num, ttlSeconds, type Algorithm, type Item, type Plan, type Reading } from "./algorithm.js";

/** The attribute holding the count of window `index` (windows are numbered from the epoch). */
export const windowAttribute = (index: number): string => `w${index}`;
/** The attribute holding the newest window written: it bounds what the item can hold. */
export const LATEST = "lw";
/**
 * A call removes the counts of the last `SPAN` windows that can no longer matter, in the same request. An item
 * idle for longer than that is rewritten in a second request (its stale counts named from the failed check),
 * so an item never holds more than the windows it needs (two for sliding, one for fixed), whatever the pattern.
 */
export const SPAN = 6;

/** The overlap of the previous window with the last `windowMs` at `now` (1 at a window's start, towards 0 at its end). */
export const overlap = (now: number, index: number, windowMs: number): number =>
  Math.min(1, Math.max(0, 1 - (now - index * windowMs) / windowMs));

/**
 * When `units` fit again in a sliding window holding `current` (window `index`) and `previous`, if nothing else is
 * taken: later in this window as the previous one's weight falls, else in the next one as this one's falls.
 */
export function slidingFreeAt(
  now: number,
  index: number,
  windowMs: number,
  limit: number,
  units: number,
  current: number,
  previous: number,
): number {
  const start = index * windowMs;
  const next = start + windowMs;
  // Within this window the previous one's weight must fall; in the next one, this one's.
  const [from, count, rest] = limit - units - current >= 0 ? [start, previous, limit - units - current] : [next, current, limit - units];
  const index2 = from === start ? index : index + 1;
  const fits = (t: number) => Math.floor(count * overlap(t, index2, windowMs)) <= rest;
  const lo = Math.max(now, from);
  if (fits(lo)) return lo;
  // The weight falls as time passes, so `fits` turns true once and stays true (at the latest when the weight is 0,
  // one window after `from`): search for that millisecond, in at most ~40 steps, by the same arithmetic as the
  // reading, so rounding can never announce a time at which the call would still be denied.
  let [bad, good] = [lo, Math.max(lo, from + windowMs)];
  while (good - bad > 1) {
    const mid = bad + Math.floor((good - bad) / 2);
    if (fits(mid)) good = mid;
    else bad = mid;
  }
  return good;
}

/**
 * Fixed window (`sliding: false`): `limit` units per calendar window. Sliding window: the current window's count
 * plus the previous one's weighted by how much of it still overlaps the last `windowMs` (floored), the
 * approximation @upstash/ratelimit and Cloudflare use; it assumes the previous window's calls were spread evenly.
 */
export function windowAlgorithm(limit: number, windowMs: number, sliding: boolean, ttlAttribute: string): Algorithm {
  /**
   * The window a call at `now` counts in: an instance whose clock lags the item's newest window joins that one,
   * up to one window ahead of its own clock. A newer window is from a host whose clock runs ahead beyond that
   * (skew, which `normalize` writes back): its counts are not this window's.
   */
  const indexAt = (now: number, item: Item | undefined) => {
    const own = Math.floor(now / windowMs);
    const latest = num(item, LATEST);
    return latest === undefined || latest < own ? own : latest > own + 1 ? own : latest;
  };
  const counts = (now: number, item: Item | undefined) => {
    const index = indexAt(now, item);
    const current = num(item, windowAttribute(index)) ?? 0;
    const previous = sliding ? (num(item, windowAttribute(index - 1)) ?? 0) : 0;
    return { index, current, previous, used: current + Math.floor(previous * overlap(now, index, windowMs)) };
  };
  const expires = (index: number) => ttlSeconds((index + (sliding ? 2 : 1)) * windowMs);

  return {
    take(now, units, seen) {
      const index = indexAt(now, seen);
      const latest = num(seen, LATEST);
      const cur = windowAttribute(index);
      // Both plans name the newest window, the current count and the TTL the same way.
      const names: Record<string, string> = { "#l": LATEST, "#c": cur, "#t": ttlAttribute };
      if (latest !== undefined && latest < index - SPAN) {
        // Idle for long: every count on the item is stale. Start over, removing them by name.
        const stale = Object.keys(seen!).filter((name) => /^w-?\d+$/.test(name) && name !== cur);
        stale.forEach((name, i) => (names[`#s${i}`] = name));
        return {
          update: `SET #c = :n, #l = :i, #t = :e${stale.length ? ` REMOVE ${stale.map((_, i) => `#s${i}`).join(", ")}` : ""}`,
          condition: "#l = :last",
          names,
          values: { ":n": { N: String(units) }, ":i": { N: String(index) }, ":e": { N: expires(index) }, ":last": { N: String(latest) } },
        };
      }
      // The condition needs the previous window's count. It is final once this window has been written (seen
      // then, it is exact); before that, assume up to half the room for it and check that assumption too: a wrong
      // one costs a second request, never a wrong answer.
      const weight = overlap(now, index, windowMs);
      const known = latest !== undefined && latest >= index;
      const seenPrevious = num(seen, windowAttribute(index - 1)) ?? 0;
      const previous = !sliding
        ? 0
        : known || weight === 0
          ? seenPrevious
          : Math.max(seenPrevious, Math.ceil((Math.floor((limit - units) / 2) + 1) / weight) - 1);
      const max = limit - units - Math.floor(previous * weight);
      if (max < 0 && known) return undefined;
      const removed: string[] = [];
      for (let back = sliding ? 2 : 1; back < (sliding ? 2 : 1) + SPAN; back++) {
        names[`#r${back}`] = windowAttribute(index - back);
        removed.push(`#r${back}`);
      }
      let condition = `(attribute_not_exists(#l) OR #l BETWEEN :lo AND :i) AND ${max < 0 ? "#c <= :max" : "(attribute_not_exists(#c) OR #c <= :max)"}`;
      const values: Plan["values"] = {
        ":n": { N: String(units) },
        ":i": { N: String(index) },
        ":lo": { N: String(index - SPAN) },
        ":max": { N: String(max) },
        ":e": { N: expires(index) },
      };
      if (sliding) {
        names["#p"] = windowAttribute(index - 1);
        values[":p"] = { N: String(previous) };
        condition += " AND (attribute_not_exists(#p) OR #p <= :p)";
      }
      return { update: `ADD #c :n SET #l = :i, #t = :e REMOVE ${removed.join(", ")}`, condition, names, values };
    },

    read(now, units, item): Reading {
      const { index, current, previous, used } = counts(now, item);
      const end = (index + 1) * windowMs;
      const available = Math.max(0, limit - used);
      const freeAt = units <= available ? now : sliding ? slidingFreeAt(now, index, windowMs, limit, units, current, previous) : end;
      return { available, reset: end, freeAt };
    },

    refund(now, units, seen, takenAt) {
      const latest = indexAt(now, seen);
      const index = takenAt === undefined ? latest : Math.min(latest, Math.floor(takenAt / windowMs));
      // Only to a window that still counts: fixed, the current one; sliding, the previous one too (it still
      // weighs on the current). Units taken in a window that has passed are not given to a newer one.
      const reach = sliding ? 1 : 0;
      if (index < latest - reach) return undefined;
      const current = seen === undefined ? units : Math.min(units, num(seen, windowAttribute(index)) ?? 0);
      if (current <= 0) return undefined;
      return {
        update: "ADD #c :neg",
        // The window's count holds the units, and no newer window than that has begun on the item.
        condition: "#c >= :n AND #l <= :hi",
        names: { "#l": LATEST, "#c": windowAttribute(index) },
        values: { ":neg": { N: String(-current) }, ":n": { N: String(current) }, ":hi": { N: String(index + reach) } },
      };
    },

    normalize(now, seen) {
      const own = Math.floor(now / windowMs);
      const latest = num(seen, LATEST);
      if (latest === undefined || latest <= own + 1) return undefined;
      // Back to this clock: the newest window is this one, and counts of windows after it are removed.
      const future = Object.keys(seen!).filter((name) => /^w-?\d+$/.test(name) && Number(name.slice(1)) > own);
      const names: Record<string, string> = { "#l": LATEST };
      future.forEach((name, i) => (names[`#f${i}`] = name));
      return {
        update: `SET #l = :own${future.length ? ` REMOVE ${future.map((_, i) => `#f${i}`).join(", ")}` : ""}`,
        condition: "#l = :seen",
        names,
        values: { ":own": { N: String(own) }, ":seen": { N: String(latest) } },
      };
    },

    assume(now, units, seen) {
      const index = indexAt(now, seen);
      const latest = num(seen, LATEST);
      const cur = windowAttribute(index);
      const base: Item = { [LATEST]: { N: String(index) }, [ttlAttribute]: { N: expires(index) } };
      // Idle for long: the take rewrote the item with this window's count alone.
      if (latest !== undefined && latest < index - SPAN) return { ...base, [cur]: { N: String(units) } };
      // Otherwise the count grew by the units, and this window became the newest.
      return { ...seen, ...base, [cur]: { N: String((num(seen, cur) ?? 0) + units) } };
    },

    takenAt: (result) => result.reset - 1,
    countsAt: (now, seen) => indexAt(now, seen) * windowMs,

    leaseUntil: (now) => (Math.floor(now / windowMs) + 1) * windowMs,
  };
}
