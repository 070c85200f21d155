// What a flush reports: its result, crowded items, dead letters and the context of a failure.
import type { CounterError } from "../core/errors.js";
import type { CounterKey } from "../core/keys.js";
import type { Amount } from "../core/numbers.js";

/** What a flush wrote.
 *
 * @example
 * ```ts
 * const { keys, requests, total } = await buffer.flush();
 * ```
 */
export interface FlushResult {
  /** Distinct items updated (an item with several count attributes counts once: it is one request). */
  keys: number;
  /** `UpdateItem` requests sent (one per item and attempt, whatever its count attributes). */
  requests: number;
  /** Sum of the amounts written. */
  total: Amount;
  /** Entries this flush set aside as dead letters (absent when none). */
  deadLetters?: number;
  /** Items whose exactly-once markers passed `markerWarnAt` (absent when none): each marker costs write capacity. */
  crowded?: CrowdedItem[];
}

/** An item that carries many writers' exactly-once markers ({@link FlushResult.crowded}).
 *
 * @example
 * ```ts
 * buffer = new CounterBuffer(client, { onFlush: (r) => r.crowded?.forEach((c) => log.warn(c)) });
 * ```
 */
export interface CrowdedItem {
  key: CounterKey;
  tableName: string;
  /** Marker attributes on the item. */
  markers: number;
}

/** An increment that failed with an error retrying cannot fix; held, never dropped, never blocking other keys.
 *
 * @example
 * ```ts
 * for (const { key, tableName, amount, error } of buffer.deadLetters) log.error({ key, tableName, amount: String(amount), code: error.code });
 * ```
 */
export interface DeadLetter {
  /** The counter's key, as `add` took it. */
  key: CounterKey;
  tableName: string;
  countAttribute: string;
  /** The amount that was not written (for a `Conflict`: that may or may not have been). */
  amount: Amount;
  /** Why: e.g. `TableNotFound`, `Validation` (a count attribute holding a string, a sum past 38 digits), `Conflict`. */
  error: CounterError;
}

/** Context passed to `onError`.
 *
 * @example
 * ```ts
 * new CounterBuffer(client, { onError: (error, { keys, ambiguous, retryInMs }) => log.warn({ code: error.code, keys, ambiguous, retryInMs }) });
 * ```
 */
export interface FlushErrorInfo {
  /** Items whose write failed; they stay queued and are retried. */
  keys: number;
  /** Whether some failed writes may have been applied. Without a `writerId` a retry may then count twice. */
  ambiguous: boolean;
  /** Consecutive failed flushes so far. */
  failures: number;
  /** When the buffer retries by itself, in ms. */
  retryInMs: number;
}
