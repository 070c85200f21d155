// What a limiter instance remembers per identifier (last item seen, local block, lease), least recently used first out.
import type { Item } from "./algorithm.js";
import type { Policy } from "./plan.js";

/** What an instance remembers of an identifier. */
export interface Memory {
  /** The item as last seen (a hint for the next request's plan). */
  seen: Item | undefined;
  /** Answer "no" locally until then. */
  blockedUntil: number | undefined;
  /** Units taken and not yet handed out, usable until `until`. */
  leased: number;
  until: number;
  /** Which lease `leased` belongs to (one more each lease taken): a unit handed back goes only to its own lease. */
  lease: number;
  /** The size of the last lease taken (leases grow while an identifier stays busy). */
  grant: number;
  /** What DynamoDB had left at the last answer, valid until `reset`. */
  left: number;
  reset: number;
  /** A lease request in flight: concurrent calls wait for it rather than each take a lease. */
  taking: Promise<void> | undefined;
  /** Per-plan limits: the identifier's limit (and its algorithm) as last resolved, used until `policyUntil`. */
  policy: Policy | undefined;
  policyUntil: number;
  /** A call of the limit function in flight: concurrent calls share it. */
  resolving: Promise<Policy> | undefined;
}

/**
 * Memory per identifier, bounded: at most `size` identifiers, the least recently used forgotten first (a
 * forgotten identifier only costs its next call a request, never a wrong answer: DynamoDB holds the truth).
 */
export class Memories {
  /** identifier → memory; insertion order is use order, so the first entry is the coldest. */
  readonly #entries = new Map<string, Memory>();

  constructor(readonly size: number) {}

  /** The memory of `identifier`, created empty if needed, and marked most recently used. */
  recall(identifier: string): Memory {
    let memory = this.#entries.get(identifier);
    if (memory) this.#entries.delete(identifier);
    else
      memory = {
        seen: undefined,
        blockedUntil: undefined,
        leased: 0,
        until: 0,
        lease: 0,
        grant: 0,
        left: 0,
        reset: 0,
        taking: undefined,
        policy: undefined,
        policyUntil: 0,
        resolving: undefined,
      };
    this.#entries.set(identifier, memory);
    if (this.#entries.size > this.size) this.#entries.delete(this.#entries.keys().next().value!);
    return memory;
  }

  forget(identifier: string): void {
    this.#entries.delete(identifier);
  }
}
