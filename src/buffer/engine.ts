// The flush engine both buffers share: sequence numbers, retries, backoff, dead letters, close.
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import { keyAttributes } from "../core/keys.js";
import type { Amount, NumberMode } from "../core/numbers.js";
import { addAmounts, type PendingEntry } from "./coalescer.js";
import { backoffDelay } from "../core/transport.js";

/** What a flush wrote.
 *
 * @example
 * ```ts
 * const { keys, requests, total } = await buffer.flush();
 * ```
 */
export interface FlushResult {
  /** Distinct items updated. */
  keys: number;
  /** `UpdateItem` requests sent (one per item and attempt of the batch). */
  requests: number;
  /** Sum of the amounts written. */
  total: Amount;
}

/** A batch in flight: its sequence number stays the same however often it is retried. */
export interface Batch {
  seq: number;
  entries: PendingEntry[];
}

export interface WriteOptions {
  /** Exactly-once marker owner; without it the writes are plain (at-least-once) ADDs. */
  writerId: string | undefined;
  concurrency: number;
}

export interface WriteOutcome {
  done: PendingEntry[];
  failed: PendingEntry[];
  errors: CounterError[];
  requests: number;
}

/** Adds what `outcome` wrote to `result`. */
export function tally(result: FlushResult, outcome: WriteOutcome): void {
  result.requests += outcome.requests;
  result.keys += outcome.done.length;
  for (const entry of outcome.done) result.total = addAmounts(result.total, entry.delta);
}

/** Calls an observer (onFlush, onError); its exceptions are its own and must not change the flush. */
export function notify<A extends unknown[]>(observer: ((...args: A) => void) | undefined, ...args: A): void {
  try {
    observer?.(...args);
  } catch {
    // ignored on purpose
  }
}

/** What a failed flush logs when no onError is given. */
export const warnFlushFailure = (error: CounterError, info: { keys: number; retryInMs: number }): void =>
  console.warn(`dynacount: flush of ${info.keys} keys failed (${error.code}: ${error.message}); retrying in ${Math.round(info.retryInMs)} ms`);

/** How long a buffer waits before retrying a failed flush: full-jitter backoff from 200 ms, at least 50 ms. */
export const flushRetryDelay = (failures: number, maxRetryDelayMs: number): number =>
  Math.max(50, backoffDelay(failures, 200, maxRetryDelayMs));

/** The attribute that records the last flush sequence of `writerId` applied to an item. */
export const markerAttribute = (writerId: string): string => `dynacount:${writerId}`;

/**
 * A flush sequence number that exceeds every earlier one of the same writer, even across restarts:
 * microseconds since the epoch (below 2^53 until the year 2255), and always past `last`.
 */
export const nextSeq = (last: number): number => Math.max(last + 1, Date.now() * 1000);

/**
 * Writes each entry with one `UpdateItem`, at most `concurrency` at a time. With a writer id the update is
 * conditional on the writer's marker being older than `seq`, so repeating a batch never counts twice and a
 * failed check means "already applied".
 */
export async function writeBatch(client: CounterClient<NumberMode>, batch: Batch, options: WriteOptions): Promise<WriteOutcome> {
  const outcome: WriteOutcome = { done: [], failed: [], errors: [], requests: 0 };
  const marker = options.writerId === undefined ? undefined : markerAttribute(options.writerId);
  const seq = String(batch.seq);
  let next = 0;
  const worker = async () => {
    while (next < batch.entries.length) {
      const entry = batch.entries[next++]!;
      if (entry.delta === 0 || entry.delta === 0n) {
        outcome.done.push(entry);
        continue;
      }
      const t = entry.table;
      const body: Record<string, unknown> = {
        TableName: t.tableName,
        Key: keyAttributes(t, entry.id, entry.sort),
        UpdateExpression: marker ? "ADD #c :d SET #w = :s" : "ADD #c :d",
        ExpressionAttributeNames: marker ? { "#c": t.countAttribute, "#w": marker } : { "#c": t.countAttribute },
        ExpressionAttributeValues: marker ? { ":d": { N: String(entry.delta) }, ":s": { N: seq } } : { ":d": { N: String(entry.delta) } },
      };
      if (marker) body.ConditionExpression = "attribute_not_exists(#w) OR #w < :s";
      outcome.requests++;
      try {
        await client.send("UpdateItem", body, { idempotent: marker !== undefined, tableName: t.tableName });
        outcome.done.push(entry);
      } catch (error) {
        if (marker && error instanceof CounterError && error.awsType === "ConditionalCheckFailedException") {
          outcome.done.push(entry); // this batch was applied to this item before
        } else {
          outcome.failed.push(entry);
          outcome.errors.push(
            error instanceof CounterError ? error : new CounterError("Service", String(error), { cause: error, ambiguous: !marker }),
          );
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, batch.entries.length) }, worker));
  return outcome;
}
