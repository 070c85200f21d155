// Transport: signs, sends, times out and retries DynamoDB JSON API calls.
import { CounterError, errorFromResponse } from "./errors.js";
import type { Credentials, CredentialSource } from "./credentials/provider.js";
import { denoRefusal } from "./credentials/system.js";
import { neverSent } from "./not-sent.js";
import { sleep } from "./timers.js";
import type { Signer } from "./node.js";
import { TimedOut, type Post } from "./post.js";

/** Retry policy for failed requests.
 *
 * @example
 * ```ts
 * new CounterClient({ retry: { attempts: 6, baseDelayMs: 50, maxDelayMs: 5000 } });
 * ```
 */
export interface RetryOptions {
  /** Attempts in all, the first included. `1` disables retries. @default 4 */
  attempts?: number;
  /** Upper bound of the first backoff; doubles each retry (full jitter: a random delay up to the bound). @default 25 */
  baseDelayMs?: number;
  /** Cap of the backoff bound. @default 2000 */
  maxDelayMs?: number;
  /**
   * Also retry failures that may have been applied (5xx, connection reset or timeout after sending) for
   * non-idempotent writes such as `increment`. This can count twice. @default false
   */
  atLeastOnce?: boolean;
  /**
   * The budget for throttling, counted apart from other failures: a throttled request was certainly not
   * applied, and DynamoDB sheds load for seconds, not milliseconds. With the defaults a throttled call gives
   * up after 10 attempts and at most 9.15 s of backoff in all (50 + 100 + … + 1600, then 2000 × 3; full
   * jitter makes the expected wait half that), ending in `Throttled`.
   * @default { attempts: 10, baseDelayMs: 50, maxDelayMs: 2000 }
   */
  throttle?: ThrottleRetryOptions;
}

/** The retry budget of throttled requests ({@link RetryOptions.throttle}).
 *
 * @example
 * ```ts
 * new CounterClient({ retry: { throttle: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 } } }); // fail fast
 * ```
 */
export interface ThrottleRetryOptions {
  /** Attempts in all while throttled, the first included. @default 10 */
  attempts?: number;
  /** Upper bound of the first backoff after throttling; doubles each retry. @default 50 */
  baseDelayMs?: number;
  /** Cap of the backoff bound. @default 2000 */
  maxDelayMs?: number;
}

export type { Credentials } from "./credentials/provider.js";

export interface TransportConfig {
  /** The credentials of each attempt (static ones, or a refreshing cache: {@link refreshing}). */
  credentials: CredentialSource;
  region: string;
  endpoint: string;
  timeoutMs: number;
  retry: Required<Omit<RetryOptions, "throttle">> & { throttle: Required<ThrottleRetryOptions> };
  /** How one attempt is sent (fetch, or Node's own HTTP client). */
  post: Post;
  /** aws4fetch's signer, or on Node the same with node:crypto's hashes. */
  Signer: Signer;
}

/** Per-call facts the transport needs to classify failures.
 *
 * @example
 * ```ts
 * await client.send("DeleteItem", { TableName: "AtomicCounters", Key: { id: { S: "k" } } }, { idempotent: true });
 * ```
 */
export interface SendOptions {
  /** Whether sending the request twice has the same effect as once (reads, conditional writes). Required. */
  idempotent: boolean;
  /** Named in TableNotFound messages. @default undefined */
  tableName?: string | undefined;
  /** Overrides the client's `retry.atLeastOnce` for this call. */
  atLeastOnce?: boolean | undefined;
  /** Overrides the client's throttling budget for this call (a rate limiter fails fast into its failureMode). */
  throttle?: Required<ThrottleRetryOptions> | undefined;
}

/** Full-jitter exponential backoff: a random delay in [0, min(max, base·2^(attempt-1))). */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number): number {
  return Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
}

/**
 * Signs, sends, times out and retries DynamoDB JSON API calls. The only place that sees credentials: they
 * live in private fields, and anything the server echoes back is scrubbed of them before it reaches an error.
 */
export class Transport {
  readonly #c: TransportConfig;
  /** aws4fetch's cache of derived signing keys (one HMAC chain per day instead of per request). */
  readonly #signingKeys = new Map<string, ArrayBuffer>();
  /**
   * The secret keys and session tokens of the last few credentials signed with (refreshed ones replace older
   * ones, and an answer to a request signed before a refresh may still echo the old), each as a pattern of every
   * spelling JSON allows ({@link spellings}).
   */
  #secrets: RegExp[] = [];
  /** The credentials `#secrets` was last brought up to date with. */
  #seen: Credentials | undefined;

  constructor(config: TransportConfig) {
    // aws4fetch's signer alone: its AwsClient's retry loop would resend a non-idempotent ADD on 5xx, and
    // the retries here decide what is safe to resend.
    this.#c = config;
  }

  /** Sends `operation` with `body`, retrying what is safe to retry. Resolves to DynamoDB's JSON answer. */
  async send<T = Record<string, unknown>>(operation: string, body: unknown, options: SendOptions): Promise<T> {
    const json = JSON.stringify(body);
    const retry = this.#c.retry;
    const { attempts, baseDelayMs, maxDelayMs } = retry;
    const throttle = options.throttle ?? retry.throttle;
    const atLeastOnce = options.atLeastOnce ?? retry.atLeastOnce;
    let earlierAmbiguous = false;
    // Two budgets: throttling and other failures are counted apart, so a throttling burst does not use up
    // the attempts meant for network errors, nor the other way round.
    let failures = 0;
    let throttled = 0;
    for (;;) {
      try {
        return (await this.#attempt(operation, json, options)) as T;
      } catch (error) {
        const isThrottle = error instanceof CounterError && error.code === "Throttled";
        const retry =
          error instanceof CounterError &&
          error.retryable &&
          (isThrottle ? ++throttled < throttle.attempts : ++failures < attempts) &&
          (!error.ambiguous || atLeastOnce);
        if (!retry) throw earlierAmbiguous ? stillAmbiguous(error) : error;
        earlierAmbiguous ||= error.ambiguous;
        await sleep(
          isThrottle ? backoffDelay(throttled, throttle.baseDelayMs, throttle.maxDelayMs) : backoffDelay(failures, baseDelayMs, maxDelayMs),
        );
      }
    }
  }

  async #attempt(operation: string, json: string, options: SendOptions): Promise<unknown> {
    const mayHaveApplied = !options.idempotent;
    let status = 0;
    let text: string;
    let requestId: string | undefined;
    // Outside the try: a credential source's failure is its own error (nothing was sent), never a network one.
    const credentials = await this.#c.credentials();
    if (credentials !== this.#seen) {
      this.#seen = credentials;
      this.#secrets = [credentials.secretAccessKey, credentials.sessionToken].filter(long).map(spellings).concat(this.#secrets).slice(0, 6);
    }
    try {
      const { endpoint, region, timeoutMs, Signer, post } = this.#c;
      const signed = await new Signer({
        // aws4fetch reads the three keys (a sessionToken of undefined is none) and ignores `expiration`.
        ...(credentials as { accessKeyId: string; secretAccessKey: string; sessionToken?: string }),
        url: endpoint,
        method: "POST",
        headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": `DynamoDB_20120810.${operation}` },
        body: json,
        service: "dynamodb",
        region,
        cache: this.#signingKeys,
      }).sign();
      ({ status, requestId, text } = await post(signed.url.href, signed.headers, json, timeoutMs));
      // A header is the server's text too.
      requestId &&= this.#scrub(requestId);
    } catch (error) {
      if (error instanceof TimedOut) {
        throw new CounterError(
          "Timeout",
          `DynamoDB ${operation} got no complete answer within ${this.#c.timeoutMs} ms (timeoutMs)` +
            (mayHaveApplied ? "; it may or may not have been applied" : ""),
          { retryable: true, ambiguous: mayHaveApplied },
        );
      }
      if (typeof DYNACOUNT_WEB_BUILD === "undefined" && denoRefusal(error)) {
        const { host } = new URL(this.#c.endpoint);
        throw new CounterError("Config", `Network access to ${host} is not permitted: nothing was sent; run deno with --allow-net=${host}`);
      }
      const refused = neverSent(error, this.#c.endpoint);
      const detail = this.#scrub(error instanceof Error ? error.message : String(error));
      throw new CounterError(
        "Network",
        `DynamoDB ${operation} failed on the network (${detail})` +
          (refused ? "; it was not sent" : mayHaveApplied ? "; it may or may not have been applied" : ""),
        { retryable: true, ambiguous: mayHaveApplied && !refused, cause: scrubbedCause(error, (s) => this.#scrub(s)) },
      );
    }
    if (status === 200) {
      try {
        return JSON.parse(text);
      } catch (_error) {
        // Retryable like a 5xx (a proxy's page, a cut answer): an idempotent call is sent again; a write that may
        // have been applied is ambiguous, resent only with atLeastOnce.
        throw new CounterError("Service", `DynamoDB ${operation} answered 200 with a body that is not JSON`, {
          status,
          retryable: true,
          ambiguous: mayHaveApplied,
          requestId,
        });
      }
    }
    let parsed: { __type?: unknown; message?: unknown; Message?: unknown; Item?: unknown } | undefined;
    try {
      // Scrubbed before parsing (escaped spellings included) and every string again after: what JSON.parse
      // unescapes must not be the secret either, wherever it lands (message, awsType, the item).
      parsed = JSON.parse(this.#scrub(text), (_, value: unknown) =>
        typeof value === "string" ? this.#scrub(value) : value,
      ) as typeof parsed;
    } catch {
      parsed = { message: this.#scrub(text).slice(0, 200) };
    }
    throw errorFromResponse(status, parsed, { requestId, tableName: options.tableName, mayHaveApplied });
  }

  /** `text` with every credential secret replaced, for anything that may reach a message or log. */
  #scrub(text: string): string {
    for (const secret of this.#secrets) text = text.replace(secret, "[redacted]");
    return text;
  }
}

declare const DYNACOUNT_WEB_BUILD: true | undefined;

/** Whether a secret is long enough to scrub: a pattern of one to three characters would redact ordinary text. */
const long = (secret: string | undefined): secret is string => typeof secret === "string" && secret.length >= 4;

/**
 * A function that redacts `secrets` (in every spelling, {@link spellings}) from a text: for the answers of the
 * credential sources (STS, instance metadata, the container endpoint), which hold secrets of their own.
 */
export function scrubber(secrets: Array<string | undefined>): (text: string) => string {
  const patterns = secrets.filter(long).map(spellings);
  return (text) => patterns.reduce((out, pattern) => out.replace(pattern, "[redacted]"), text);
}

/**
 * `secret` as a pattern of each spelling a JSON (or JavaScript) string may give it: every character as itself,
 * backslash-escaped (`\/`) or as `\uXXXX` in either case, once or more (a quoted text quoted again). A server
 * that echoes the session token escaped (`\/`, `\u002b`, `\u003d`: legal JSON) must not slip it past a scrub
 * of the raw text, nor a message that quotes an escaped header. Case-insensitive throughout, which can only
 * redact more.
 */
function spellings(secret: string): RegExp {
  const each = (c: string) => {
    const hex = c.charCodeAt(0).toString(16).padStart(4, "0");
    // In the pattern: backslashes (any number: a text escaped twice) and the character itself, or `\uXXXX`.
    return `(?:\\\\*\\u${hex}|\\\\+u${hex})`;
  };
  return new RegExp(secret.split("").map(each).join(""), "gi");
}

/** The final error of a call an earlier attempt of which may have been applied: ambiguous, whatever it says. */
function stillAmbiguous(error: unknown): unknown {
  if (!(error instanceof CounterError) || error.ambiguous) return error;
  // Its own fields (status, awsType, requestId, retryable) carry over; `ambiguous` and `cause` are new.
  return new CounterError(error.code, `${error.message}; an earlier attempt may have been applied`, {
    ...error,
    ambiguous: true,
    cause: error,
  });
}

/** A copy of a fetch error's useful fields (code, message) with secrets scrubbed, never the request itself. */
function scrubbedCause(error: unknown, scrub: (s: string) => string): unknown {
  if (!(error instanceof Error)) return undefined;
  const inner = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const copy = new Error(scrub(error.message)) as Error & { code?: unknown };
  copy.name = error.name;
  const code = (error as { code?: unknown }).code ?? inner?.code;
  if (typeof code === "string") copy.code = code;
  if (inner && typeof inner.message === "string") copy.message += ` (${scrub(inner.message)})`;
  return copy;
}
