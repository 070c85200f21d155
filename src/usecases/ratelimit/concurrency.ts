// ConcurrencyLimiter: at most `limit` holders per identifier across instances, as slots with an expiry on one item.
import type { CounterClient } from "../../core/client.js";
import { CounterError, validationError } from "../../core/errors.js";
import { resolveLayout, dynamoKey, type CounterKey, type TableLayout, type TableOptions } from "../../core/keys.js";
import type { NumberMode } from "../../core/numbers.js";
import { fn, int, lazy, oneOf, parseOptions, positiveInt, text, timerMs, withTable, type Shape } from "../../core/options.js";
import { ttlSeconds, type Item } from "./algorithm.js";
import { FAIL_FAST, MAX_ROUNDS } from "./limiter.js";

/** Options of {@link ConcurrencyLimiter}.
 *
 * @example
 * ```ts
 * new ConcurrencyLimiter(client, { limit: 5, leaseMs: 30_000, name: "exports" });
 * ```
 */
export interface ConcurrencyLimiterOptions extends TableOptions {
  /** Holders allowed at once per identifier, across all instances (at most 1,000). Required. */
  limit: number;
  /**
   * How long a slot stays taken without a `renew()`: a holder that neither releases nor renews (a crashed
   * Worker) frees its slot this long after its last acquire or renew. Instances sharing an identifier should
   * use one value. @default 30000
   */
  leaseMs?: number;
  /** What the limit is for; part of the default item key. Letters, digits and `_ . -`, at most 64. @default "default" */
  name?: string;
  /** Item key of an identifier, used as it is. @default (identifier) => `concurrency:${name}:${identifier}` */
  key?: (identifier: string) => CounterKey;
  /**
   * What `acquire` answers when DynamoDB fails, times out or throttles (after two quick attempts): a slot that
   * holds nothing (`"open"`) or a denial (`"closed"`). Setup errors are thrown either way. @default "open"
   */
  failureMode?: "open" | "closed";
  /** Attribute holding the item's expiry in epoch seconds, for DynamoDB TTL. @default "expiresAt" */
  ttlAttribute?: string;
  /** Identifiers whose last state seen is remembered (a hint for the next acquire's slot). @default 10000 */
  cacheSize?: number;
  /** The clock, in epoch milliseconds. @default Date.now */
  now?: () => number;
}

/** The answer of {@link ConcurrencyLimiter.acquire}: a slot (or not), with what releases and renews it.
 *
 * @example
 * ```ts
 * const slot = await limiter.acquire(userId);
 * if (!slot.success) return new Response("Too many requests in flight", { status: 429 });
 * try { return await work(); } finally { await slot.release(); }
 * ```
 */
export interface ConcurrencySlot {
  /** Whether the caller may proceed (it holds a slot, or DynamoDB failed and failureMode is "open"). */
  success: boolean;
  /** The configured limit. */
  limit: number;
  /** Slots free after this answer, as DynamoDB answered it. */
  remaining: number;
  /**
   * Epoch ms on this instance's clock. Held: until when the slot is this holder's without a `renew()`. Denied:
   * when the first slot taken runs out if nobody releases or renews it (a bound for `Retry-After`).
   */
  reset: number;
  /** `"failOpen"` / `"failClosed"`: DynamoDB failed (see `error`); a failOpen answer holds no slot. */
  reason?: "failOpen" | "failClosed";
  /** The failure behind `failOpen` / `failClosed`. */
  error?: CounterError;
  /**
   * Frees the slot: one conditional request, fenced to this holder (a late release never frees a slot someone
   * took after this one's lease ran out) and harmless twice (a second call sends nothing). Failures are thrown;
   * the slot then frees itself after `leaseMs`.
   */
  release(): Promise<void>;
  /**
   * Extends the lease by `leaseMs` from now: `true` while this holder still has its slot, `false` once it has
   * lost it (released, or run out and taken by another) or never had one. Failures are thrown.
   */
  renew(): Promise<boolean>;
}

/** Slots per item: 1,000 slots of ~50 bytes stay far below DynamoDB's 400 KB per item. */
const MAX_LIMIT = 1000;
/** The TTL is pushed this far past a slot's expiry: an item outlives every lease written to it by instances sharing `leaseMs`. */
const TTL_MARGIN_MS = 3_600_000;
const SETUP_ERRORS = /* @__PURE__ */ new Set(["Validation", "Config", "TableNotFound", "AccessDenied"]);

const shape = /* @__PURE__ */ lazy(
  (): Shape =>
    withTable({
      limit: int(1, MAX_LIMIT),
      leaseMs: timerMs(1),
      name: text(1, 64, /^[A-Za-z0-9_.-]+$/, "may contain only letters, digits, '_', '-' and '.'"),
      key: fn(),
      failureMode: oneOf(["open", "closed"] as const),
      ttlAttribute: text(1, 255),
      cacheSize: positiveInt(),
      now: fn(),
    }),
);

/** The holder id attribute of slot `i`. */
export const holderAttribute = (i: number): string => `h${i}`;
/** The expiry attribute (epoch ms) of slot `i`. */
export const expiryAttribute = (i: number): string => `e${i}`;

type Key = Record<string, { S: string }>;

/**
 * Concurrency limits on DynamoDB: at most `limit` holders per identifier at once, across every instance.
 *
 * Storage: one item per identifier with `limit` slots, slot `i` being two attributes, the holder's random id
 * (`h<i>`) and its lease's expiry in epoch ms (`e<i>`). `acquire` claims one free slot (missing or expired) with
 * one conditional `UpdateItem` (the condition: still free, or already this holder's, so a resend is harmless);
 * when the slot was taken meanwhile, the failed condition returns the item and another free slot is tried; when
 * none is free the call is denied and nothing changed. `release` removes the slot's two attributes on condition
 * that they still name the holder; `renew` moves the expiry on the same condition. The item is bounded by `limit`
 * slots, and an expired slot is simply overwritten by the next holder.
 *
 * Clocks: a slot is free for an instance once its clock passes the expiry written by the holder's clock. With
 * clocks that disagree by at most S, a holder keeps its slot to itself for `leaseMs − S` after its acquire (or
 * renew) began: renew well inside that (e.g. every `leaseMs / 3`) or finish within it. An expiry more than
 * `2 × leaseMs` ahead of a reader's clock (a clock far ahead) is written back to `leaseMs` from now, so one wrong
 * clock cannot lock a slot for long.
 *
 * @example
 * ```ts
 * const exports = new ConcurrencyLimiter(client, { limit: 2, leaseMs: 60_000, name: "exports" });
 * const slot = await exports.acquire(`user:${userId}`);
 * if (!slot.success) return new Response("Two exports at a time", { status: 429 });
 * const timer = setInterval(() => void slot.renew(), 20_000);
 * try { return await runExport(); } finally { clearInterval(timer); await slot.release(); }
 * ```
 */
export class ConcurrencyLimiter {
  /** Holders allowed at once per identifier. */
  readonly limit: number;
  /** How long a slot stays taken without a renew. */
  readonly leaseMs: number;
  /** What the limit is for. */
  readonly name: string;
  readonly #client: CounterClient<NumberMode>;
  readonly #table: TableLayout;
  readonly #key: (identifier: string) => CounterKey;
  readonly #failOpen: boolean;
  readonly #ttl: string;
  readonly #now: () => number;
  readonly #cacheSize: number;
  /** identifier → the item as last seen (a hint for which slot is free); insertion order is use order. */
  readonly #seen = new Map<string, Item>();

  constructor(client: CounterClient<NumberMode>, options: ConcurrencyLimiterOptions) {
    const o = parseOptions(shape, options, "concurrency limiter", ["limit"]);
    this.#client = client;
    this.#table = resolveLayout(client.table, o);
    this.limit = o.limit;
    this.leaseMs = o.leaseMs ?? 30_000;
    this.name = o.name ?? "default";
    const prefix = `concurrency:${this.name}:`;
    this.#key = (o.key as ConcurrencyLimiterOptions["key"]) ?? ((identifier) => prefix + identifier);
    this.#failOpen = (o.failureMode ?? "open") === "open";
    this.#ttl = o.ttlAttribute ?? "expiresAt";
    this.#now = (o.now as ConcurrencyLimiterOptions["now"]) ?? Date.now;
    this.#cacheSize = o.cacheSize ?? 10_000;
  }

  /**
   * Takes a slot for `identifier` if one is free: one request in the common case, a few when other instances
   * take slots at the same moment. A denied call changes nothing.
   *
   * @example
   * ```ts
   * const slot = await limiter.acquire(ip);
   * if (slot.success) try { await handle(); } finally { await slot.release(); }
   * ```
   */
  async acquire(identifier: string): Promise<ConcurrencySlot> {
    const key = this.#dynamoKey(identifier);
    // Random per acquire: the fence of release and renew, and what makes a resent claim harmless.
    const holder = crypto.randomUUID().replace(/-/g, "");
    let seen = this.#recall(identifier);
    let learned = false;
    let now = this.#now();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      now = this.#now();
      const fix = this.#normalize(now, seen);
      const slot = fix === undefined ? this.#pick(now, seen) : undefined;
      // Denied only on what DynamoDB said during this call: a remembered item may predate releases.
      if (fix === undefined && slot === undefined && learned) return this.#denied(now, seen);
      const i = fix?.slot ?? slot ?? this.#earliest(seen);
      const expires = now + this.leaseMs;
      try {
        const out = await this.#client.send<{ Attributes?: Item }>(
          "UpdateItem",
          fix
            ? this.#request(key, "SET #e = :to", "#e = :seen", i, {
                ":to": { N: String(now + this.leaseMs) },
                ":seen": { N: String(fix.expiry) },
              })
            : this.#request(
                key,
                "SET #h = :me, #e = :exp, #t = :ttl",
                "attribute_not_exists(#e) OR #e <= :now OR #h = :me",
                i,
                {
                  ":me": { S: holder },
                  ":exp": { N: String(expires) },
                  ":now": { N: String(now) },
                  ":ttl": { N: ttlSeconds(expires + TTL_MARGIN_MS) },
                },
                true,
              ),
          // A resend is harmless (the condition accepts this holder's own claim), so ambiguous failures are resent.
          { idempotent: false, atLeastOnce: true, tableName: this.#table.tableName, throttle: FAIL_FAST },
        );
        seen = this.#remember(identifier, out.Attributes ?? {});
        if (fix) continue;
        return this.#held(key, identifier, holder, i, expires, now, seen);
      } catch (error) {
        try {
          seen = this.#remember(identifier, await this.#failedItem(error, key));
          learned = true;
        } catch (failure) {
          return this.#failure(failure, now);
        }
      }
    }
    // Contention is not an outage: a slot nobody claimed is never handed out.
    const busy = this.#slot(false, 0, now + 1, "failClosed");
    busy.error = new CounterError("Conflict", `acquire: the item kept changing under ${MAX_ROUNDS} conditional requests in a row`, {
      retryable: true,
    });
    return busy;
  }

  /** A held slot's handle. */
  #held(key: Key, identifier: string, holder: string, i: number, expires: number, now: number, item: Item): ConcurrencySlot {
    let state: "held" | "lost" = "held";
    let releasing: Promise<void> | undefined;
    const slot = this.#slot(true, this.#free(now, item).length, expires);
    slot.release = () =>
      (releasing ??= (async () => {
        if (state === "lost") return;
        try {
          const out = await this.#client.send<{ Attributes?: Item }>(
            "UpdateItem",
            this.#request(key, "REMOVE #h, #e", "#h = :me", i, { ":me": { S: holder } }, true),
            { idempotent: false, atLeastOnce: true, tableName: this.#table.tableName },
          );
          this.#remember(identifier, out.Attributes ?? {});
        } catch (error) {
          // Not this holder's any more (run out and taken, or released by an earlier attempt): nothing to free.
          if (!(error instanceof CounterError && error.awsType === "ConditionalCheckFailedException")) {
            releasing = undefined;
            throw error;
          }
        }
        state = "lost";
      })());
    slot.renew = async () => {
      if (state === "lost" || releasing) return false;
      const expires = this.#now() + this.leaseMs;
      try {
        // `#e <= :exp`: a renewal overtaken by a later one (or resent after it) never moves the lease back.
        await this.#client.send(
          "UpdateItem",
          this.#request(key, "SET #e = :exp, #t = :ttl", "#h = :me AND #e <= :exp", i, {
            ":me": { S: holder },
            ":exp": { N: String(expires) },
            ":ttl": { N: ttlSeconds(expires + TTL_MARGIN_MS) },
          }),
          { idempotent: false, atLeastOnce: true, tableName: this.#table.tableName },
        );
        slot.reset = Math.max(slot.reset, expires);
        return true;
      } catch (error) {
        const item = await this.#failedItem(error, key);
        // Still this holder's, with a later expiry than this renewal's: a later renewal already stands.
        if ((item[holderAttribute(i)] as { S?: string } | undefined)?.S === holder) {
          slot.reset = Math.max(slot.reset, Number(item[expiryAttribute(i)]?.N));
          return true;
        }
        state = "lost";
        return false;
      }
    };
    return slot;
  }

  /** One conditional UpdateItem on slot `i` (`#h`, `#e`, and `#t` when `ttl`). */
  #request(
    key: Key,
    update: string,
    condition: string,
    i: number,
    values: Record<string, { S: string } | { N: string }>,
    allNew = false,
  ): Record<string, unknown> {
    const names: Record<string, string> = { "#e": expiryAttribute(i) };
    if (/#h/.test(update + condition)) names["#h"] = holderAttribute(i);
    if (/#t/.test(update)) names["#t"] = this.#ttl;
    return {
      TableName: this.#table.tableName,
      Key: key,
      UpdateExpression: update,
      ConditionExpression: condition,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      ...(allNew ? { ReturnValues: "ALL_NEW" } : {}),
    };
  }

  /** Slots free at `now` in `item` (missing or expired). */
  #free(now: number, item: Item | undefined): number[] {
    const free: number[] = [];
    for (let i = 0; i < this.limit; i++) {
      const expiry = item?.[expiryAttribute(i)]?.N;
      if (expiry === undefined || Number(expiry) <= now) free.push(i);
    }
    return free;
  }

  /** A free slot at random (claims of several instances then rarely meet), or undefined when none is free. */
  #pick(now: number, item: Item | undefined): number | undefined {
    const free = this.#free(now, item);
    return free.length === 0 ? undefined : free[Math.floor(Math.random() * free.length)];
  }

  /** The slot that runs out first: the one to try when a remembered item shows none free (it may have been released). */
  #earliest(item: Item | undefined): number {
    let best = 0;
    for (let i = 1; i < this.limit; i++)
      if (Number(item?.[expiryAttribute(i)]?.N ?? 0) < Number(item?.[expiryAttribute(best)]?.N ?? 0)) best = i;
    return best;
  }

  /** A slot whose expiry is further ahead than any clock within tolerance writes: to be written back to this clock. */
  #normalize(now: number, item: Item | undefined): { slot: number; expiry: number } | undefined {
    for (let i = 0; i < this.limit; i++) {
      const expiry = Number(item?.[expiryAttribute(i)]?.N ?? 0);
      if (expiry > now + 2 * this.leaseMs) return { slot: i, expiry };
    }
    return undefined;
  }

  #denied(now: number, item: Item | undefined): ConcurrencySlot {
    let first = Infinity;
    for (let i = 0; i < this.limit; i++) first = Math.min(first, Number(item?.[expiryAttribute(i)]?.N ?? now));
    return this.#slot(false, 0, Math.max(now, first));
  }

  #failure(error: unknown, now: number): ConcurrencySlot {
    if (!(error instanceof CounterError) || SETUP_ERRORS.has(error.code)) throw error;
    const slot = this.#failOpen
      ? this.#slot(true, this.limit, now + this.leaseMs, "failOpen")
      : this.#slot(false, 0, now + 1, "failClosed");
    slot.error = error;
    return slot;
  }

  /** An answer holding nothing (release does nothing, renew says false) until {@link #held} gives it a slot. */
  #slot(success: boolean, remaining: number, reset: number, reason?: ConcurrencySlot["reason"]): ConcurrencySlot {
    const slot: ConcurrencySlot = { success, limit: this.limit, remaining, reset, release: async () => {}, renew: async () => false };
    if (reason) slot.reason = reason;
    return slot;
  }

  /** The item behind a failed condition (from the error; servers that omit it are read once); rethrows other failures. */
  async #failedItem(error: unknown, key: Key): Promise<Item> {
    if (!(error instanceof CounterError) || error.awsType !== "ConditionalCheckFailedException") throw error;
    if (error.item) return error.item as Item;
    const out = await this.#client.send<{ Item?: Item }>(
      "GetItem",
      { TableName: this.#table.tableName, Key: key, ConsistentRead: true },
      { idempotent: true, tableName: this.#table.tableName, throttle: FAIL_FAST },
    );
    return out.Item ?? {};
  }

  #recall(identifier: string): Item | undefined {
    const item = this.#seen.get(identifier);
    if (item) {
      this.#seen.delete(identifier);
      this.#seen.set(identifier, item);
    }
    return item;
  }

  #remember(identifier: string, item: Item): Item {
    this.#seen.delete(identifier);
    this.#seen.set(identifier, item);
    if (this.#seen.size > this.#cacheSize) this.#seen.delete(this.#seen.keys().next().value!);
    return item;
  }

  #dynamoKey(identifier: string): Key {
    if (typeof identifier !== "string" || identifier.length === 0) throw validationError(`identifier must be a non-empty string`);
    return dynamoKey(this.#table, this.#key(identifier));
  }
}
