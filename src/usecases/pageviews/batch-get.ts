// BatchGetItem over any number of keys: 100 per request, unprocessed keys retried with backoff.
import { chunks } from "../../core/chunks.js";
import type { Sender } from "../../buffer/writer.js";
import { CounterError } from "../../core/errors.js";
import { sleep } from "../../core/timers.js";
import { backoffDelay } from "../../core/transport.js";

/** An item as DynamoDB returns it. */
export type Item = Record<string, { N?: string; S?: string } | undefined>;

interface KeysAndAttributes {
  Keys: Record<string, unknown>[];
  ConsistentRead?: boolean;
  ProjectionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
}

/**
 * Every item of `keys` that exists in `tableName` (in no particular order), read with `BatchGetItem`s of at most
 * 100 keys in parallel, retrying `UnprocessedKeys` up to 10 times.
 *
 * @example
 * ```ts
 * const items = await batchGet(client, "AtomicCounters", [{ id: { S: "a" } }, { id: { S: "b" } }], { consistent: true });
 * ```
 */
export async function batchGet(
  client: Sender,
  tableName: string,
  keys: Record<string, unknown>[],
  options: { consistent: boolean; names?: string[] },
): Promise<Item[]> {
  const found: Item[] = [];
  const projection = options.names && {
    ProjectionExpression: options.names.map((_, i) => `#p${i}`).join(", "),
    ExpressionAttributeNames: Object.fromEntries(options.names.map((n, i) => [`#p${i}`, n])),
  };
  await Promise.all(
    chunks(keys, 100).map(async (part) => {
      let request: KeysAndAttributes | undefined = { Keys: part, ConsistentRead: options.consistent, ...projection };
      for (let attempt = 1; request !== undefined; attempt++) {
        if (attempt > 10)
          throw new CounterError("Throttled", `BatchGetItem left keys unprocessed after ${attempt - 1} attempts`, { retryable: true });
        if (attempt > 1) await sleep(backoffDelay(attempt - 1, 25, 1000));
        const out: { Responses?: Record<string, Item[]>; UnprocessedKeys?: Record<string, KeysAndAttributes> } = await client.send(
          "BatchGetItem",
          { RequestItems: { [tableName]: request } },
          { idempotent: true, tableName },
        );
        found.push(...(out.Responses?.[tableName] ?? []));
        const left: KeysAndAttributes | undefined = out.UnprocessedKeys?.[tableName];
        request = left !== undefined && left.Keys.length > 0 ? left : undefined;
      }
    }),
  );
  return found;
}
