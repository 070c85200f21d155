// One TransactWriteItems for limitAll: a ClientRequestToken per attempt, resent only while the token holds, and what a cancellation says.
import type { CounterClient } from "../../core/client.js";
import { CounterError } from "../../core/errors.js";
import type { NumberMode } from "../../core/numbers.js";
import { sleep } from "../../core/timers.js";
import type { Item, Plan } from "./algorithm.js";
import { FAIL_FAST } from "./limiter.js";

/** One conditional update of a transaction. */
export interface Action {
  tableName: string;
  key: Record<string, { S: string }>;
  plan: Plan;
}

/** Why one action of a cancelled transaction did not apply, and the item as it was when known. */
export interface Reason {
  /** DynamoDB's code: "None" (its condition held), "ConditionalCheckFailed", "TransactionConflict", "ThrottlingError", … */
  code: string;
  /** ConditionalCheckFailed: the item (`{}` when there is none), when DynamoDB returned it (else undefined: read it). */
  item: Item | undefined;
}

/** What became of a transaction: applied, cancelled (nothing applied), or not a server that has transactions. */
export type Outcome = { kind: "applied" } | { kind: "cancelled"; reasons: Reason[] } | { kind: "unsupported" };

/**
 * Resends of one transaction after an ambiguous failure. Safe with the same token: DynamoDB answers a
 * transaction it already applied with success and changes nothing, for 10 minutes after the first request
 * with that token; resends happen within {@link RESEND_WINDOW_MS} of it, far inside that.
 */
const RESENDS = 2;
const RESEND_WINDOW_MS = 60_000;

/**
 * A ClientRequestToken unique to one attempt of one call (DynamoDB allows 36 characters): a random id per call
 * and the attempt's number. Never derived from the content: two calls that ask the same would then be taken
 * for one, and the second admitted without being counted.
 */
export const tokenFor = (call: string, attempt: number): string => `${call}-${attempt}`;

/** A random id for a call's tokens: 32 hex digits. */
export const callId = (): string => crypto.randomUUID().replace(/-/g, "");

/**
 * Sends the actions as one TransactWriteItems, each failed condition returning the item as it was
 * (`ReturnValuesOnConditionCheckFailure: ALL_OLD`). An ambiguous failure (timeout, 5xx, a connection lost after
 * sending) or a TransactionInProgressException (a resend that met the first attempt still running) is resent as it
 * is, up to {@link RESENDS} times within {@link RESEND_WINDOW_MS}; a failure after an ambiguous attempt stays
 * ambiguous. Other failures are thrown as they are.
 */
export async function transact(client: CounterClient<NumberMode>, actions: Action[], token: string): Promise<Outcome> {
  const body = {
    TransactItems: actions.map(({ tableName, key, plan }) => ({
      Update: {
        TableName: tableName,
        Key: key,
        UpdateExpression: plan.update,
        ConditionExpression: plan.condition,
        ExpressionAttributeNames: plan.names,
        ExpressionAttributeValues: plan.values,
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      },
    })),
    ClientRequestToken: token,
  };
  const started = Date.now();
  let earlierAmbiguous = false;
  for (let resend = 0; ; resend++) {
    try {
      // The transport resends only what was certainly not applied (throttling, conflicts, refused connections);
      // ambiguous failures come back here, where the token decides.
      await client.send("TransactWriteItems", body, {
        idempotent: false,
        atLeastOnce: false,
        tableName: actions[0]!.tableName,
        throttle: FAIL_FAST,
      });
      return { kind: "applied" };
    } catch (error) {
      if (!(error instanceof CounterError)) throw error;
      // dynalite: nothing was applied, and it never will be.
      if (error.awsType === "UnknownOperationException" && !earlierAmbiguous) return { kind: "unsupported" };
      if (error.awsType === "TransactionCanceledException") return { kind: "cancelled", reasons: reasonsOf(error, actions.length) };
      const again = error.ambiguous || error.awsType === "TransactionInProgressException";
      if (again && resend < RESENDS && Date.now() - started < RESEND_WINDOW_MS) {
        earlierAmbiguous = true;
        await sleep(5 + Math.random() * 20 * 2 ** resend);
        continue;
      }
      if (!earlierAmbiguous || error.ambiguous) throw error;
      throw new CounterError(error.code, `${error.message}; an earlier attempt may have been applied`, {
        ...error,
        ambiguous: true,
        cause: error,
      });
    }
  }
}

/**
 * The reasons of a cancellation, in action order. From the error's `cancellationReasons` when the client keeps
 * them (each with its item); otherwise from the codes DynamoDB lists at the end of its message
 * ("… [ConditionalCheckFailed, None]"), without items; with neither, every action is taken as failed, item unknown.
 */
function reasonsOf(error: CounterError, count: number): Reason[] {
  const kept = (error as { cancellationReasons?: unknown }).cancellationReasons;
  if (Array.isArray(kept) && kept.length === count) {
    return kept.map((r: { Code?: unknown; Item?: unknown } | undefined) => {
      const code = typeof r?.Code === "string" ? r.Code : "Unknown";
      return { code, item: code === "ConditionalCheckFailed" ? ((r?.Item as Item | undefined) ?? {}) : undefined };
    });
  }
  const listed = /\[([A-Za-z, ]*)\][^[]*$/
    .exec(error.message)?.[1]
    ?.split(",")
    .map((c) => c.trim());
  if (listed && listed.length === count) return listed.map((code) => ({ code, item: undefined }));
  return Array.from({ length: count }, () => ({ code: "ConditionalCheckFailed", item: undefined }));
}

/** The items of `actions` (strongly consistent), `{}` for each that does not exist: one BatchGetItem per 100 keys. */
export async function readItems(client: CounterClient<NumberMode>, actions: Action[]): Promise<Item[]> {
  const id = (tableName: string, key: Record<string, { S: string }>) => `${tableName}\u0000${JSON.stringify(Object.entries(key).sort())}`;
  const found = new Map<string, Item>();
  let pending: Record<string, { Keys: Array<Record<string, unknown>>; ConsistentRead: true }> = {};
  for (const { tableName, key } of actions) (pending[tableName] ??= { Keys: [], ConsistentRead: true }).Keys.push(key);
  for (let attempt = 0; Object.keys(pending).length > 0; attempt++) {
    if (attempt > 0) {
      if (attempt > 5) throw new CounterError("Throttled", "BatchGetItem left keys unprocessed five times in a row", { retryable: true });
      await sleep(Math.random() * 10 * 2 ** attempt);
    }
    const out = await client.send<{ Responses?: Record<string, Item[]>; UnprocessedKeys?: typeof pending }>(
      "BatchGetItem",
      { RequestItems: pending },
      { idempotent: true, tableName: actions[0]!.tableName, throttle: FAIL_FAST },
    );
    for (const [tableName, items] of Object.entries(out.Responses ?? {})) {
      for (const item of items) {
        const key = actions.find(
          (a) => a.tableName === tableName && Object.entries(a.key).every(([k, v]) => (item[k] as { S?: string } | undefined)?.S === v.S),
        );
        if (key) found.set(id(tableName, key.key), item);
      }
    }
    pending = out.UnprocessedKeys ?? {};
  }
  return actions.map(({ tableName, key }) => found.get(id(tableName, key)) ?? {});
}
