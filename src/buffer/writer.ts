// The batch writer: one UpdateItem per coalesced key, exactly-once with a writer's marker, each key's outcome apart.
import type { CounterClient } from "../core/client.js";
import { CounterError } from "../core/errors.js";
import { keyAttributes } from "../core/keys.js";
import type { NumberMode } from "../core/numbers.js";
import type { Slot } from "./coalescer.js";

/** The attribute that records the last flush sequence of `writerId` applied to an item. */
export const markerAttribute = (writerId: string): string => `dynacount:${writerId}`;

/** The prefix every marker attribute starts with (counted to warn about items that collect many). */
export const MARKER_PREFIX = "dynacount:";

export interface WriterOptions {
  /** Exactly-once marker owner; without it the writes are plain (at-least-once) ADDs. */
  writerId: string | undefined;
  concurrency: number;
}

/** What became of one key's write. */
export type WriteResult =
  | { slot: Slot; status: "done"; markers?: number }
  | { slot: Slot; status: "failed" | "dead"; error: CounterError };

/**
 * Writes each slot's `sent` delta with one `UpdateItem`, at most `concurrency` at a time, and reports every
 * key on its own: one key's failure never affects another's.
 *
 * With a writer id the update is conditional on the writer's marker being older than the slot's `seq`, so
 * repeating a write never counts twice. A failed check returns the item as it was (`ALL_OLD`): a marker
 * equal to `seq` means this write was applied before (done); a newer one means another live writer uses the
 * same id, or a clock went back, and the delta is a `Conflict` (dead: it may or may not be in the count).
 */
export async function writeSlots(client: CounterClient<NumberMode>, slots: readonly Slot[], options: WriterOptions): Promise<{ results: WriteResult[]; requests: number }> {
  const marker = options.writerId === undefined ? undefined : markerAttribute(options.writerId);
  const results: WriteResult[] = [];
  let requests = 0;
  let next = 0;
  const worker = async () => {
    while (next < slots.length) {
      const slot = slots[next++]!;
      const sent = slot.sent!;
      if (sent.delta === 0 || sent.delta === 0n) {
        results.push({ slot, status: "done" });
        continue;
      }
      const t = slot.table;
      const key = keyAttributes(t, slot.id, slot.sort);
      const delta = { N: String(sent.delta) };
      requests++;
      try {
        if (!marker) {
          await client.send("UpdateItem", {
            TableName: t.tableName,
            Key: key,
            UpdateExpression: "ADD #c :d",
            ExpressionAttributeNames: { "#c": t.countAttribute },
            ExpressionAttributeValues: { ":d": delta },
          }, { idempotent: false, tableName: t.tableName });
          results.push({ slot, status: "done" });
          continue;
        }
        const out = await client.send<{ Attributes?: Record<string, unknown> }>("UpdateItem", {
          TableName: t.tableName,
          Key: key,
          UpdateExpression: "ADD #c :d SET #w = :s",
          ConditionExpression: "attribute_not_exists(#w) OR #w < :s",
          ExpressionAttributeNames: { "#c": t.countAttribute, "#w": marker },
          ExpressionAttributeValues: { ":d": delta, ":s": { N: String(sent.seq) } },
          // The item's attribute names tell how many writers' markers it carries (they cost write capacity).
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }, { idempotent: true, tableName: t.tableName });
        results.push({ slot, status: "done", markers: countMarkers(out.Attributes) });
      } catch (error) {
        const e = error instanceof CounterError ? error : new CounterError("Service", String(error), { cause: error, retryable: true, ambiguous: !marker });
        if (marker && e.awsType === "ConditionalCheckFailedException") {
          results.push(await checkedMarker(client, slot, marker, e));
        } else {
          results.push({ slot, status: e.retryable ? "failed" : "dead", error: e });
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, slots.length) }, worker));
  return { results, requests };
}

const countMarkers = (item: Record<string, unknown> | undefined): number => {
  let n = 0;
  for (const name in item) if (name.startsWith(MARKER_PREFIX)) n++;
  return n;
};

/** Decides a failed marker check from the item's stored marker (from the error, or read when a server omits it). */
async function checkedMarker(client: CounterClient<NumberMode>, slot: Slot, marker: string, failure: CounterError): Promise<WriteResult> {
  const seq = slot.sent!.seq;
  let item = failure.item as Record<string, { N?: string }> | undefined;
  if (item === undefined) {
    // Servers without ReturnValuesOnConditionCheckFailure (dynalite): one consistent read of the marker.
    try {
      const out = await client.send<{ Item?: Record<string, { N?: string }> }>("GetItem", {
        TableName: slot.table.tableName,
        Key: keyAttributes(slot.table, slot.id, slot.sort),
        ConsistentRead: true,
        ProjectionExpression: "#w",
        ExpressionAttributeNames: { "#w": marker },
      }, { idempotent: true, tableName: slot.table.tableName });
      item = out.Item ?? {};
    } catch (error) {
      const e = error instanceof CounterError ? error : new CounterError("Service", String(error), { cause: error, retryable: true });
      return { slot, status: e.retryable ? "failed" : "dead", error: e };
    }
  }
  const stored = Number(item[marker]?.N);
  if (stored === seq) return { slot, status: "done" };
  if (stored > seq) {
    return {
      slot,
      status: "dead",
      error: new CounterError(
        "Conflict",
        `The exactly-once marker "${marker}" on item "${slot.id}" of table "${slot.table.tableName}" is newer (${stored}) than ` +
          `this buffer's write (${seq}): another live buffer uses the same writerId, or this host's clock went back. ` +
          `The delta may or may not be counted; it is held as a dead letter. Give every live buffer its own writerId.`,
        { ambiguous: true, awsType: failure.awsType ?? "ConditionalCheckFailedException", cause: failure },
      ),
    };
  }
  // The condition cannot fail with an older or missing marker; a server that says so is retried.
  return { slot, status: "failed", error: failure };
}
