// Bucket maths: UTC hours, days and months of epoch-ms times, and the buckets that overlap a range.
import { validationError } from "../../core/errors.js";

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** The UTC day of `ms` as `"YYYY-MM-DD"`. */
export const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** The UTC month of `ms` as `"YYYY-MM"`. */
export const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

/** The UTC hour (0–23) of `ms`. */
export const hourOf = (ms: number): number => Math.floor((((ms % DAY_MS) + DAY_MS) % DAY_MS) / HOUR_MS);

/** The attribute holding an hour's count on a day item: `h00`…`h23`. */
export const hourAttribute = (hour: number): string => `h${pad(hour)}`;

/** The attribute holding a day's count on a month item: `d01`…`d31`. */
export const dayAttribute = (dayOfMonth: number): string => `d${pad(dayOfMonth)}`;

/** The first ms of the UTC day `"YYYY-MM-DD"`; a Validation error naming `field` when it is not a real date. */
export function parseDay(day: unknown, field = "day"): number {
  if (typeof day !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(day))
    throw validationError(`"${field}" must be a UTC day as "YYYY-MM-DD", got ${describe(day)}`);
  const ms = Date.parse(`${day}T00:00:00Z`);
  if (!Number.isFinite(ms) || dayOf(ms) !== day) throw validationError(`"${field}" is not a calendar day: "${day}"`);
  return ms;
}

/** Times dynacount takes: integers from 2000-01-01 to 9999-12-31 UTC (epoch ms). */
export const MIN_TIME = Date.UTC(2000, 0, 1);
export const MAX_TIME = Date.UTC(9999, 11, 31);

/** Validates an epoch-ms time named `field`. */
export function checkTime(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < MIN_TIME || value > MAX_TIME) {
    throw validationError(`"${field}" must be an integer time in epoch milliseconds (2000-01-01 to 9999-12-31), got ${describe(value)}`);
  }
  return value;
}

/** A short, printable rendering of a bad input value for an error message. */
export const describe = (v: unknown): string =>
  typeof v === "string" ? JSON.stringify(v.slice(0, 40)) : typeof v === "number" ? String(v) : typeof v;

/** First ms of the bucket (`"hour"` or `"day"`) that holds `ms`. */
export const bucketStart = (bucket: "hour" | "day", ms: number): number => {
  const size = bucket === "hour" ? HOUR_MS : DAY_MS;
  return Math.floor(ms / size) * size;
};

/** Most buckets one `series` call answers (~13 months of hours, 27 years of days). */
export const MAX_BUCKETS = 10_000;

/** The first ms of every bucket overlapping [from, to), in order (none when `to <= from`). */
export function bucketStarts(bucket: "hour" | "day", from: number, to: number): number[] {
  const size = bucket === "hour" ? HOUR_MS : DAY_MS;
  const starts: number[] = [];
  if (to <= from) return starts;
  const count = Math.ceil((to - bucketStart(bucket, from)) / size);
  if (count > MAX_BUCKETS)
    throw validationError(`series() of ${count} ${bucket} buckets: at most ${MAX_BUCKETS} per call; split the range`);
  for (let start = bucketStart(bucket, from); start < to; start += size) starts.push(start);
  return starts;
}

/** The end of the UTC day `day` (exclusive), epoch ms. */
export const dayEnd = (day: string): number => parseDay(day) + DAY_MS;

/** The end of the UTC month `"YYYY-MM"` (exclusive), epoch ms. */
export const monthEnd = (month: string): number => {
  const [y, m] = month.split("-").map(Number) as [number, number];
  return Date.UTC(y, m, 1);
};
