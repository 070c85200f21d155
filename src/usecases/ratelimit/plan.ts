// Per-plan limits: a limiter's limit for one identifier (a number, or a function of the identifier), cached per identifier.
import { shown, validationError } from "../../core/errors.js";
import type { Algorithm } from "./algorithm.js";
import type { Memory } from "./memory.js";

/**
 * A limiter's `limit`: one number for every identifier, or a function that answers per identifier (free and pro
 * plans), called again for an identifier at most once per refresh period.
 *
 * @example
 * ```ts
 * const limit: LimitSource = async (userId) => ((await plans.get(userId)) === "pro" ? 1000 : 100);
 * ```
 */
export type LimitSource = number | ((identifier: string) => number | Promise<number>);

/** What applies to one identifier: its limit, the algorithm's maths for it, and the lease size. */
export interface Policy {
  readonly limit: number;
  readonly algo: Algorithm;
  /** Units taken per request at most (`lease`, never more than the limit). */
  readonly lease: number;
}

/**
 * Resolves a limiter's policy per identifier. A number gives one policy, built once. A function is called on an
 * identifier's first call and again once its answer is `refreshMs` old (the limiter's clock); concurrent calls
 * share one call; the answer lives in the identifier's memory (so the limiter's `cacheSize` bounds it too). A
 * function that fails when an earlier answer exists leaves that answer in use (and is asked again on the next
 * call); with no earlier answer, its error reaches the caller. The item key does not depend on the limit, so a
 * new limit applies to the counts already there (upgrading a plan keeps what was used).
 */
export class Policies {
  readonly #source: LimitSource;
  readonly #make: (limit: number) => Algorithm;
  readonly #lease: number;
  readonly #refreshMs: number;
  readonly #fixed: Policy | undefined;

  constructor(source: LimitSource, make: (limit: number) => Algorithm, lease: number, refreshMs: number) {
    this.#source = source;
    this.#make = make;
    this.#lease = lease;
    this.#refreshMs = refreshMs;
    if (typeof source === "number") this.#fixed = this.#build(source);
  }

  /** The limit when it is one number for every identifier. */
  get fixed(): number | undefined {
    return this.#fixed?.limit;
  }

  /** The policy of `identifier`: synchronous for a number or a fresh cached answer, else a promise. */
  of(identifier: string, memory: Memory, now: number): Policy | Promise<Policy> {
    if (this.#fixed) return this.#fixed;
    if (memory.policy && now < memory.policyUntil) return memory.policy;
    if (!memory.resolving) {
      const resolving = this.#resolve(identifier, memory, now);
      memory.resolving = resolving;
      const done = () => {
        if (memory.resolving === resolving) memory.resolving = undefined;
      };
      resolving.then(done, done);
    }
    return memory.resolving;
  }

  async #resolve(identifier: string, memory: Memory, now: number): Promise<Policy> {
    let limit: unknown;
    try {
      limit = await (this.#source as (identifier: string) => number | Promise<number>)(identifier);
    } catch (error) {
      if (memory.policy) return memory.policy;
      throw error;
    }
    if (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 1) {
      throw validationError(
        `the "limit" function answered ${typeof limit === "number" ? limit : typeof limit} for identifier ${shown(identifier)}: it must be a positive integer`,
      );
    }
    if (memory.policy?.limit !== limit) {
      memory.policy = this.#build(limit);
      // A block was reckoned with the old limit: a raised limit (an upgrade) must not wait for it.
      memory.blockedUntil = undefined;
    }
    memory.policyUntil = now + this.#refreshMs;
    return memory.policy;
  }

  #build(limit: number): Policy {
    return { limit, algo: this.#make(limit), lease: Math.min(this.#lease, limit) };
  }
}
