import { CounterError, shown } from "../core/errors.js";
import { keyAttributes } from "../core/keys.js";
import { itemIdOf, type Slot } from "./coalescer.js";

/** The attribute that records the last flush sequence of `writerId` applied to an item. */
export const markerAttribute = (writerId: string): string => `dynacount:${writerId}`;

/** The prefix every marker attribute starts with (counted to warn about items that collect many). */
export const MARKER_PREFIX = "dynacount:";

export interface WriterOptions {
  /** Exactly-once marker owner; without it the writes are plain (at-least-once) ADDs. */
  writerId: string | undefined;
  concurrency: number;
  /** Attributes SET on an item with every write of it (page views: its TTL and index keys); a pure function of the item. */
  sets?: ItemSets | undefined;
}

/** A DynamoDB attribute value an item write may SET beside its ADDs. */
export type SetValue = { S: string } | { N: string };

/**
 * The attributes to SET with every write of the item at `at`, beside its ADDs. It must depend on the item alone
 * (not on time or state): a write retried after a restart must be the same write.
 */
export type ItemSets = (at: Pick<Slot, "table" | "id" | "sort">) => Record<string, SetValue> | undefined;

/** What became of one item's write. */
export type Outcome = { status: "done"; markers?: number } | { status: "failed" | "dead"; error: CounterError };

/** What became of one slot's write (every slot of one item shares its item's outcome). */
export type WriteResult = Outcome & { slot: Slot };

/** What a writer needs of a client: its request path (a small object in tests, the simulator's network in the simulator). */
export interface Sender {
  send<T = Record<string, unknown>>(
    operation: string,
    body: unknown,
    options: { idempotent: boolean; tableName?: string | undefined },
  ): Promise<T>;
}

const isZero = (slot: Slot) => slot.inFlight!.delta === 0 || slot.inFlight!.delta === 0n;

/**
 * Groups slots into writes: one per item and sequence number. The exactly-once marker is per (writer, item),
 * so every count attribute of an item must go in the same conditional write: two writes with one seq would
 * make the second look applied ("marker == seq") and drop it. The engine gives every slot of an item the
 * same seq; different seqs on one item only come from storage written by version 0.1.
 */
export function itemWrites(slots: readonly Slot[]): Slot[][] {
  const writes = new Map<string, Slot[]>();
  for (const slot of slots) {
    const id = `${slot.inFlight!.seq}\n${itemIdOf(slot)}`;
    const write = writes.get(id);
    if (write) write.push(slot);
    else writes.set(id, [slot]);
  }
  return [...writes.values()];
}

/**
 * Writes each item's `inFlight` deltas with one `UpdateItem` that ADDs to every count attribute at once, at most
 * `concurrency` at a time, and reports every item on its own: one item's failure never affects another's.
 *
 * With a writer id the update is conditional on the writer's marker being older than the write's `seq`, so
 * repeating a write never counts twice. A failed check returns the item as it was (`ALL_OLD`): a marker
 * equal to `seq` means this write was applied before (done); a newer one means another live writer uses the
 * same id, or a clock went back, and the deltas are a `Conflict` (dead: they may or may not be in the count).
 */
export async function writeSlots(
  client: Sender,
  slots: readonly Slot[],
  options: WriterOptions,
): Promise<{ results: WriteResult[]; requests: number }> {
  const marker = options.writerId === undefined ? undefined : markerAttribute(options.writerId);
  const writes = itemWrites(slots);
  const results: WriteResult[] = [];
  let requests = 0;
  let next = 0;
  const settle = (write: Slot[], outcome: Outcome) => {
    for (const slot of write) results.push({ ...outcome, slot });
  };
  const worker = async () => {
    while (next < writes.length) {
      const write = writes[next++]!;
      const live = write.filter((s) => !isZero(s));
      if (live.length === 0) {
        settle(write, { status: "done" });
        continue;
      }
      const first = write[0]!;
      const t = first.table;
      const key = keyAttributes(t, first.id, first.sort);
      const names: Record<string, string> = {};
      const values: Record<string, { N: string }> = {};
      live.forEach((s, i) => {
        names[`#c${i}`] = s.table.countAttribute;
        values[`:d${i}`] = { N: String(s.inFlight!.delta) };
      });
      const adds = `ADD ${live.map((_, i) => `#c${i} :d${i}`).join(", ")}`;
      // Attributes set with the ADDs (a TTL, index keys): part of the same conditional write, so never half-applied.
      const sets: string[] = [];
      let x = 0;
      for (const [name, value] of Object.entries(options.sets?.(first) ?? {})) {
        names[`#x${x}`] = name;
        values[`:x${x}`] = value as { N: string };
        sets.push(`#x${x} = :x${x}`);
        x++;
      }
      requests++;
      try {
        if (!marker) {
          await client.send(
            "UpdateItem",
            {
              TableName: t.tableName,
              Key: key,
              UpdateExpression: sets.length > 0 ? `${adds} SET ${sets.join(", ")}` : adds,
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: values,
            },
            { idempotent: false, tableName: t.tableName },
          );
          settle(write, { status: "done" });
          continue;
        }
        names["#w"] = marker;
        values[":s"] = { N: String(first.inFlight!.seq) };
        const out = await client.send<{ Attributes?: Record<string, unknown> }>(
          "UpdateItem",
          {
            TableName: t.tableName,
            Key: key,
            UpdateExpression: `${adds} SET ${["#w = :s", ...sets].join(", ")}`,
            ConditionExpression: "attribute_not_exists(#w) OR #w < :s",
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
            // The item's attribute names tell how many writers' markers it carries (they cost write capacity).
            ReturnValues: "ALL_NEW",
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          },
          { idempotent: true, tableName: t.tableName },
        );
        settle(write, { status: "done", markers: countMarkers(out.Attributes) });
      } catch (error) {
        const e =
          error instanceof CounterError
            ? error
            : new CounterError("Service", String(error), { cause: error, retryable: true, ambiguous: !marker });
        if (marker && e.awsType === "ConditionalCheckFailedException") settle(write, await checkedMarker(client, first, marker, e));
        else settle(write, { status: e.retryable ? "failed" : "dead", error: e });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, writes.length) }, worker));
  return { results, requests };
}

const countMarkers = (item: Record<string, unknown> | undefined): number => {
  let n = 0;
  for (const name in item) if (name.startsWith(MARKER_PREFIX)) n++;
  return n;
};

/** Decides a failed marker check from the item's stored marker (from the error, or read when a server omits it). */
async function checkedMarker(client: Sender, slot: Slot, marker: string, failure: CounterError): Promise<Outcome> {
  const seq = slot.inFlight!.seq;
  let item = failure.item as Record<string, { N?: string }> | undefined;
  if (item === undefined) {
    // Servers without ReturnValuesOnConditionCheckFailure (dynalite): one consistent read of the marker.
    try {
      item = await readMarker(client, slot, marker);
    } catch (error) {
      const e = error instanceof CounterError ? error : new CounterError("Service", String(error), { cause: error, retryable: true });
      return { status: e.retryable ? "failed" : "dead", error: e };
    }
  }
  const stored = Number(item[marker]?.N);
  if (stored === seq) return { status: "done" };
  if (stored > seq) {
    return {
      status: "dead",
      error: new CounterError(
        "Conflict",
        `The exactly-once marker "${marker}" on item ${shown(slot.id)} of table "${slot.table.tableName}" is newer (${stored}) than ` +
          `this buffer's write (${seq}): another live buffer uses the same writerId, or this host's clock went back. ` +
          `The delta may or may not be counted; it is held as a dead letter. Give every live buffer its own writerId.`,
        { ambiguous: true, awsType: failure.awsType ?? "ConditionalCheckFailedException", cause: failure },
      ),
    };
  }
  // The condition cannot fail with an older or missing marker; a server that says so is retried.
  return { status: "failed", error: failure };
}

/** One strongly consistent read of an item's marker and the given count attributes. */
export async function readMarker(
  client: Sender,
  slot: Pick<Slot, "table" | "id" | "sort">,
  marker: string,
  countAttribute?: string,
): Promise<Record<string, { N?: string }>> {
  const names: Record<string, string> = { "#w": marker };
  if (countAttribute !== undefined) names["#c"] = countAttribute;
  const out = await client.send<{ Item?: Record<string, { N?: string }> }>(
    "GetItem",
    {
      TableName: slot.table.tableName,
      Key: keyAttributes(slot.table, slot.id, slot.sort),
      ConsistentRead: true,
      ProjectionExpression: countAttribute === undefined ? "#w" : "#w, #c",
      ExpressionAttributeNames: names,
    },
    { idempotent: true, tableName: slot.table.tableName },
  );
  return out.Item ?? {};
}
