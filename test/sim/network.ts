// The simulator's network: requests reach the in-memory DynamoDB on the virtual clock, with the faults the seed picks.
import type { AwsV4Signer } from "aws4fetch";
import { CounterClient, type ClientOptions } from "../../src/index.ts";
import { TimedOut, type Post } from "../../src/core/post.ts";
import type { DynamoModel } from "./dynamo-model.ts";
import type { Rng, World } from "./world.ts";

/** What can happen to one request. */
export type Fault =
  | "ok"
  | "down" // the server refuses connections
  | "lost" // applied, then the connection resets before the answer arrives
  | "reset" // the connection resets before the server read the request
  | "5xx" // the server fails before applying it
  | "5xx-applied" // the server applies it, then answers 500
  | "throttle" // refused for capacity, not applied
  | "denied" // refused for its credentials (an IAM policy being changed): not applied, not retryable
  | "garbled-applied" // applied, then answered 200 with a body that is not JSON (a proxy's page, a cut answer)
  | "hang" // no answer before the client's timeout (applied or not, as the seed says)
  | "slow"; // applied and answered, late

export interface FaultPlan {
  /** Chance that a request meets a fault while faults are on. */
  rate: number;
  /** Which faults, with weights. */
  kinds: Partial<Record<Exclude<Fault, "ok">, number>>;
  /** Faults happen until this virtual time; after it the network is healthy (for liveness checks). */
  until: number;
  /** Intervals of virtual time during which the server refuses connections. */
  down: Array<[number, number]>;
  /** Whose network errors: Node's carry a `code`; Deno's only a message, which holds the URL. */
  runtime: "node" | "deno";
  /** Error answers echo the session token, escaped as JSON allows (`\/`, `\u002b`, `\u003d`). */
  echoSecrets: boolean;
}

/** The simulated credentials: secrets holding `/`, `+` and `=`, which JSON may escape. */
export const SIM_CREDENTIALS = { accessKeyId: "SIMKEY", secretAccessKey: "sim/secret+key=", sessionToken: "sim/token+xyz==" };
/** The endpoint: its path holds words a classifier of free text would take for "never sent". */
export const SIM_ENDPOINT = "http://sim.invalid/cert-refused-ENOTFOUND/";

/** One request as the network saw it (the shrunk trace prints them). */
export interface Delivery {
  at: number;
  client: string;
  operation: string;
  fault: Fault;
  applied: boolean;
  status?: number;
  /** Whether the client got DynamoDB's success answer (an applied request without it may be resent). */
  confirmed: boolean;
  body: Record<string, unknown>;
}

/**
 * Where each request's fate is decided and what DynamoDB applied. `applied but unanswered` requests are
 * remembered, so invariants can tell "may have counted twice, and was reported as ambiguous" from a bug.
 */
export class Network {
  readonly log: Delivery[] = [];
  /** Requests whose effect DynamoDB applied while the client saw a failure (or nothing). */
  get unconfirmed(): Delivery[] {
    return this.log.filter((d) => d.applied && !d.confirmed);
  }
  readonly #rng: Rng;

  constructor(
    readonly world: World,
    readonly model: DynamoModel,
    readonly faults: FaultPlan,
  ) {
    this.#rng = world.rng.fork(7);
  }

  #pick(): Fault {
    const now = this.world.now;
    if (now >= this.faults.until || !this.#rng.chance(this.faults.rate)) return "ok";
    const kinds = Object.entries(this.faults.kinds) as Array<[Exclude<Fault, "ok">, number]>;
    const total = kinds.reduce((a, [, w]) => a + w, 0);
    let r = this.#rng.next() * total;
    for (const [kind, w] of kinds) if ((r -= w) < 0) return kind;
    return "ok";
  }

  #down(at: number): boolean {
    return at < this.faults.until && this.faults.down.some(([a, b]) => at >= a && at < b);
  }

  /**
   * A transport link for one client: `alive()` false makes every later answer never arrive (a Durable Object
   * that was evicted), while requests already on their way may still be applied, as on a real network.
   */
  link(name: string, alive: () => boolean = () => true): { post: Post; Signer: typeof AwsV4Signer } {
    const post: Post = (_url, headers, body, timeoutMs) =>
      new Promise((resolve, reject) => {
        const world = this.world;
        const operation = (headers.get("x-amz-target") ?? "").split(".")[1] ?? "";
        const request = JSON.parse(body) as Record<string, unknown>;
        const sentAt = world.now;
        const fault: Fault = this.#down(sentAt) ? "down" : this.#pick();
        const entry: Delivery = { at: sentAt, client: name, operation, fault, applied: false, confirmed: false, body: request };
        this.log.push(entry);
        let settled = false;
        const answer = (fn: () => void) => {
          if (settled || !alive()) return;
          settled = true;
          world.clearTimeout(timer);
          fn();
        };
        // The client's own timeout, on the virtual clock, as fetchPost and nodePost do.
        const timer = world.setTimeout(() => answer(() => reject(new TimedOut())), timeoutMs);
        // Node's errors carry a code; Deno's only a message, with the URL in it (Deno 2's wording).
        const deno = this.faults.runtime === "deno";
        const refused = () =>
          deno
            ? new TypeError(
                `error sending request for url (${_url}): client error (Connect): tcp connect error: Connection refused (os error 111)`,
              )
            : Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8000"), { code: "ECONNREFUSED" });
        const reset = () =>
          deno
            ? new TypeError(
                `error sending request from 127.0.0.1:40000 for url (${_url}): client error (SendRequest): connection closed before message completed`,
              )
            : Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
        if (fault === "down") {
          world.setTimeout(() => answer(() => reject(refused())), 1);
          return;
        }
        const reach = this.#rng.int(1, 20);
        const back = this.#rng.int(1, 20);
        const apply = () => {
          const out = this.model.handle(operation, request);
          entry.applied = out.status === 200;
          entry.status = out.status;
          return out;
        };
        const echo = this.faults.echoSecrets;
        const http = (status: number, payload: Record<string, unknown>) => {
          if (status === 200 || !echo) return { status, requestId: undefined, text: JSON.stringify(payload) };
          // A server quoting the request's token back, escaped: legal JSON a scrub of the raw text would miss.
          const escaped = SIM_CREDENTIALS.sessionToken.replace(/\//g, "\\/").replace(/\+/g, "\\u002b").replace(/=/g, "\\u003d");
          const text = JSON.stringify({ ...payload, message: `${String(payload.message)} (token TOKEN, key KEY)` });
          return {
            status,
            requestId: undefined,
            text: text
              .replace("TOKEN", escaped)
              .replace("KEY", escaped.replace("token", "secret").replace("xyz\\u003d\\u003d", "key\\u003d")),
          };
        };
        switch (fault) {
          case "reset":
            world.setTimeout(() => answer(() => reject(reset())), reach);
            return;
          case "5xx":
            world.setTimeout(
              () =>
                answer(() =>
                  resolve(http(500, { __type: "com.amazonaws.dynamodb.v20120810#InternalServerError", message: "Internal server error" })),
                ),
              reach + back,
            );
            return;
          case "denied":
            world.setTimeout(
              () =>
                answer(() =>
                  resolve(
                    http(400, {
                      __type: "com.amazon.coral.service#AccessDeniedException",
                      message: "User is not authorized to perform: dynamodb:UpdateItem",
                    }),
                  ),
                ),
              reach + back,
            );
            return;
          case "throttle":
            world.setTimeout(
              () =>
                answer(() =>
                  resolve(
                    http(400, {
                      __type: "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                      message: "Rate of requests exceeds the allowed throughput.",
                    }),
                  ),
                ),
              reach + back,
            );
            return;
          default:
        }
        world.setTimeout(() => {
          const out = apply();
          if (fault === "lost") {
            world.setTimeout(() => answer(() => reject(reset())), back);
          } else if (fault === "garbled-applied") {
            world.setTimeout(() => answer(() => resolve({ status: 200, requestId: undefined, text: "<html>Bad Gateway</html>" })), back);
          } else if (fault === "5xx-applied") {
            world.setTimeout(
              () =>
                answer(() =>
                  resolve(http(500, { __type: "com.amazonaws.dynamodb.v20120810#InternalServerError", message: "Internal server error" })),
                ),
              back,
            );
          } else if (fault !== "hang") {
            // "hang": never answered, the client's timeout fires. "slow": around the timeout, either side.
            const late = fault === "slow" ? timeoutMs - reach + this.#rng.int(-20, 200) : back;
            world.setTimeout(
              () =>
                answer(() => {
                  entry.confirmed = out.status === 200;
                  resolve(http(out.status, out.body));
                }),
              Math.max(1, late),
            );
          }
        }, reach);
      });
    return { post, Signer: SimSigner as unknown as typeof AwsV4Signer };
  }

  /** A client whose requests go through this network. */
  client(name: string, options: ClientOptions = {}, alive?: () => boolean): CounterClient {
    return new CounterClient(
      { endpoint: SIM_ENDPOINT, region: "us-east-1", credentials: SIM_CREDENTIALS, env: {}, ...options },
      this.link(name, alive),
    );
  }
}

/** Signing does nothing the simulator can observe: the stand-in checks no signatures, and WebCrypto would settle out of order. */
class SimSigner {
  readonly #o: { url: string; headers: Record<string, string> };
  constructor(options: { url: string; headers: Record<string, string> }) {
    this.#o = options;
  }
  async sign(): Promise<{ url: URL; headers: Headers }> {
    return { url: new URL(this.#o.url), headers: new Headers(this.#o.headers) };
  }
}
