// The client's request path: options, credentials, transport, increment and get (everything but table set-up).
import { defaultCredentials } from "./credentials/chain.js";
import { profileRegion } from "./credentials/profile.js";
import { fromEnv } from "./credentials/env.js";
import { refreshing } from "./credentials/provider.js";
import { envReader, type EnvSource } from "./env.js";
import { CounterError, shown } from "./errors.js";
import { DEFAULT_LAYOUT, resolveLayout, dynamoKey, type CounterKey, type TableLayout, type TableOptions } from "./keys.js";
import { amountToWire, wireToValue, type Amount, type CounterValue, type NumberMode } from "./numbers.js";
import {
  callOptionNames,
  checkNames,
  fn,
  lazy,
  int,
  oneOf,
  parseOptions,
  schema,
  text,
  timerMs,
  typed,
  withTable,
  type Shape,
} from "./options.js";
import { AwsV4Signer } from "aws4fetch";
import { nodeFastPath, type Signer } from "./node.js";
import { fetchPost, type Fetch, type Post } from "./post.js";
import { Transport, type Credentials, type RetryOptions, type SendOptions } from "./transport.js";

/** Options of {@link CounterClient}. Every one is optional.
 *
 * @example
 * ```ts
 * new CounterClient({ region: "eu-west-1", tableName: "Counters", timeoutMs: 2000, numbers: "bigint" });
 * ```
 */
export interface ClientOptions<M extends NumberMode = "number"> extends TableOptions {
  /**
   * AWS region. @default env AWS_REGION, then AWS_DEFAULT_REGION, then (Node, Bun, Deno) the `region` of the
   * profile in use in ~/.aws/config, then "us-east-1"
   */
  region?: string;
  /**
   * Signing credentials: keys, or a function that returns (a promise of) keys with an optional `expiration`,
   * called on the first request and again shortly before they expire (5 minutes, or half their remaining life
   * if shorter), one call at a time however many requests wait.
   * @default env AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; then, on Node, Bun and Deno, the
   * AWS SDK's chain: the shared files (~/.aws/credentials and ~/.aws/config, AWS_PROFILE; keys, or a role assumed
   * through STS), a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), container credentials (ECS,
   * EKS Pod Identity) and EC2 instance metadata (IMDSv2)
   */
  credentials?: Credentials | (() => Credentials | Promise<Credentials>);
  /** DynamoDB endpoint URL. @default env AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL, then https://dynamodb.<region>.amazonaws.com */
  endpoint?: string;
  /**
   * Where the variables above are read: any object (a Worker's `env` binding, whatever its type), or a getter;
   * what it does not have is read from the runtime's environment. @default the runtime's environment
   */
  env?: EnvSource;
  /** Time limit of one attempt, answer body included. @default 5000 */
  timeoutMs?: number;
  /**
   * Retry policy. Throttling (certainly not applied) has its own, longer budget under `retry.throttle`.
   * @default { attempts: 4, baseDelayMs: 25, maxDelayMs: 2000, atLeastOnce: false, throttle: { attempts: 10, baseDelayMs: 50, maxDelayMs: 2000 } }
   */
  retry?: RetryOptions;
  /** The `fetch` to send requests with; given, it is always used. @default globalThis.fetch (Node: see `transport`) */
  fetch?: Fetch;
  /**
   * `"auto"`: on Node (not Bun, Deno or workerd) and without a `fetch` option, requests go over Node's own
   * HTTP(S) client with a keep-alive agent and are signed with aws4fetch's signer hashing through
   * `node:crypto`: about half the CPU of `fetch` and WebCrypto per request; elsewhere over `fetch`.
   * `"fetch"`: always `fetch` and WebCrypto, as on every other runtime. Timeouts, aborts, retries, errors and
   * signatures are the same either way.
   * @default "auto"
   */
  transport?: "auto" | "fetch";
  /** Return values as numbers (exact up to 2^53 − 1, else a PrecisionLoss error) or as bigints. @default "number" */
  numbers?: M;
}

/** Options of {@link CounterClient.increment}.
 *
 * @example
 * ```ts
 * await client.increment("stock:sku-1", { by: -2, tableName: "Inventory" });
 * ```
 */
export interface IncrementOptions extends TableOptions {
  /** Amount to add; negative and zero are allowed. @default 1 */
  by?: Amount;
  /** Retry ambiguous failures too (may count twice). @default the client's retry.atLeastOnce */
  atLeastOnce?: boolean;
}

/** Options of {@link CounterClient.get}.
 *
 * @example
 * ```ts
 * await client.get("page:/home", { consistent: false }); // eventually consistent, half the read cost
 * ```
 */
export interface GetOptions extends TableOptions {
  /** Strongly consistent read. @default true */
  consistent?: boolean;
}

const clientOptionsShape = /* @__PURE__ */ lazy(
  (): Shape =>
    withTable({
      region: text(1, 64, /^[a-z0-9-]+$/, "must be an AWS region name such as us-east-1"),
      credentials: { accessKeyId: text(1, 1e6), secretAccessKey: text(1, 1e6), sessionToken: typed("string") },
      endpoint: typed("string"),
      env: schema<EnvSource>((v) =>
        typeof v === "function" || (typeof v === "object" && v !== null) ? undefined : "must be an object or a function",
      ),
      timeoutMs: timerMs(1),
      retry: {
        attempts: int(1, 100),
        baseDelayMs: timerMs(),
        maxDelayMs: timerMs(),
        atLeastOnce: typed("boolean"),
        throttle: { attempts: int(1, 100), baseDelayMs: timerMs(), maxDelayMs: timerMs() },
      },
      fetch: fn(),
      transport: oneOf(["auto", "fetch"] as const),
      numbers: oneOf(["number", "bigint"] as const),
    }),
);

// Per-call option names, checked on every call so that a typo is an error, not a silent default.
const INCREMENT = /* @__PURE__ */ callOptionNames("by", "atLeastOnce");
const GET = /* @__PURE__ */ callOptionNames("consistent");

declare const DYNACOUNT_WEB_BUILD: true | undefined;

/** Which data a client reaches besides its endpoint and region (see {@link accountOf}). */
const ACCOUNTS = new WeakMap<object, string>();
/** A name per object: the same credential source, the same name. */
const SOURCES = new WeakMap<object, string>();
let named = 0;
const nameOf = (source: object): string => {
  let name = SOURCES.get(source);
  if (name === undefined) SOURCES.set(source, (name = `source ${++named}`));
  return name;
};

/**
 * What tells apart the data two clients of one endpoint and region reach: the access key id they sign with when it
 * is known without a request, else their credential source. Internal: for caches that must not carry a fact about
 * one account's table over to another's (ShardedCounter's recorded shard counts).
 */
export const accountOf = (client: object): string => ACCOUNTS.get(client) ?? "";

/** A region becomes one label of the endpoint's host name: lowercase letters, digits and inner hyphens only. */
const REGION = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function checkRegion(region: string, source: string): string {
  if (!REGION.test(region)) {
    throw new CounterError("Config", `${source} is "${region.slice(0, 64)}", which is not an AWS region name such as "us-east-1"`);
  }
  return region;
}

function checkEndpoint(endpoint: string, source: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new CounterError("Config", `${source} is not a URL: "${endpoint}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CounterError("Config", `${source} must be an http(s) URL, got "${endpoint}"`);
  }
  return url.href;
}

/**
 * The request path of {@link CounterClient}: options, credentials, transport, `increment`, `get` and `send`.
 * `dynacount/compat` builds on this alone, so its bundle carries no table set-up it never calls.
 *
 * @example
 * ```ts
 * const client = new BaseClient({ env }); // what dynacount/compat holds; apps use CounterClient
 * await client.increment("users");
 * ```
 */
export class BaseClient<M extends NumberMode = "number"> {
  /** The region requests are signed for. */
  readonly region: string;
  /** The endpoint requests go to. */
  readonly endpoint: string;
  /** How values are returned. */
  readonly numbers: M;
  /** The default table layout (per-call options override it). */
  readonly table: TableLayout;
  readonly #transport: Transport;

  /**
   * @param link How requests leave, in place of fetch or Node's HTTP client and the signer: the simulator's
   *   network (test/sim), which needs every step on its virtual clock. Internal; not part of the API.
   */
  constructor(options: ClientOptions<M> = {}, link?: { post: Post; Signer: Signer }) {
    // A credentials function is checked by what it returns; keys by the schema.
    const given = options?.credentials; // null options: refused by the schema below, not a TypeError here
    const o = parseOptions(
      clientOptionsShape,
      typeof given === "function" ? { ...options, credentials: undefined } : options,
      "client",
      ["credentials.accessKeyId", "credentials.secretAccessKey"],
      ["credentials"],
    );
    const env = envReader(o.env);
    const [regionSource, region] =
      o.region !== undefined
        ? ["region", o.region]
        : (["AWS_REGION", "AWS_DEFAULT_REGION"].map((name) => [name, env(name)]).find(([, value]) => value) ??
          ((typeof DYNACOUNT_WEB_BUILD === "undefined" && profileRegion(env)) || ["", "us-east-1"]));
    // Checked even when an endpoint is given: the region is also part of every signature.
    this.region = checkRegion(region!, regionSource!);
    const [endpointSource, endpoint] =
      o.endpoint !== undefined
        ? ["endpoint", o.endpoint]
        : (["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"].map((name) => [name, env(name)]).find(([, value]) => value) ?? []);
    this.endpoint =
      endpointSource !== undefined ? checkEndpoint(endpoint!, endpointSource) : `https://dynamodb.${this.region}.amazonaws.com/`;
    this.numbers = (o.numbers ?? "number") as M;
    this.table = resolveLayout(DEFAULT_LAYOUT, o);

    const keys = o.credentials as Credentials | undefined;
    // Keys given are copied: a caller's later change to its object would escape the transport's scrubbing.
    const credentials =
      typeof given === "function"
        ? refreshing(given)
        : keys
          ? (
              (copy) => () =>
                copy
            )({ ...keys })
          : defaultCredentials(o.env, this.region);
    // The account: keys given, or the environment's when the chain signs with them (not with AWS_PROFILE set), name
    // it by their key id; a credentials function, or the chain's other sources (shared by clients that read the
    // same variables), by the source itself, so that clients built per request still share it.
    const envKeys = typeof DYNACOUNT_WEB_BUILD !== "undefined" || env("AWS_PROFILE") === undefined ? fromEnv(env) : undefined;
    ACCOUNTS.set(this, keys?.accessKeyId ?? (typeof given === "function" ? nameOf(given) : (envKeys?.accessKeyId ?? nameOf(credentials))));
    this.#transport = new Transport({
      credentials,
      region: this.region,
      endpoint: this.endpoint,
      timeoutMs: o.timeoutMs ?? 5000,
      retry: {
        attempts: o.retry?.attempts ?? 4,
        baseDelayMs: o.retry?.baseDelayMs ?? 25,
        maxDelayMs: o.retry?.maxDelayMs ?? 2000,
        atLeastOnce: o.retry?.atLeastOnce ?? false,
        throttle: {
          attempts: o.retry?.throttle?.attempts ?? 10,
          baseDelayMs: o.retry?.throttle?.baseDelayMs ?? 50,
          maxDelayMs: o.retry?.throttle?.maxDelayMs ?? 2000,
        },
      },
      ...(link ?? ((!o.fetch && o.transport !== "fetch" && nodeFastPath()) || { post: fetchPost(o.fetch), Signer: AwsV4Signer })),
    });
  }

  /**
   * Adds `by` (default 1) to the counter and returns its new value: one `UpdateItem` with `ADD`.
   * Concurrent calls on one key return distinct values.
   *
   * @example
   * ```ts
   * const n = await client.increment("signups");          // +1
   * await client.increment("stock:sku-1", { by: -3 });     // −3
   * ```
   */
  async increment(key: CounterKey, options: IncrementOptions = {}): Promise<CounterValue<M>> {
    checkNames(options, INCREMENT, "increment");
    const table = resolveLayout(this.table, options);
    const by = amountToWire(options.by ?? 1, "by");
    const out = await this.send<{ Attributes?: Record<string, { N?: string }> }>(
      "UpdateItem",
      {
        TableName: table.tableName,
        Key: dynamoKey(table, key),
        UpdateExpression: "ADD #c :by",
        ExpressionAttributeNames: { "#c": table.countAttribute },
        ExpressionAttributeValues: { ":by": { N: by } },
        ReturnValues: "UPDATED_NEW",
      },
      { idempotent: false, tableName: table.tableName, atLeastOnce: options.atLeastOnce },
    );
    // A value this client cannot return still was written: the error says so, so that no one sends it again.
    return wireToValue(
      out.Attributes?.[table.countAttribute]?.N,
      this.numbers,
      `counter ${shown(table.countAttribute)} (the increment was applied)`,
    );
  }

  /**
   * Reads the counter (strongly consistent by default); `0` when the item or attribute is missing.
   *
   * @example
   * ```ts
   * const views = await client.get("page:/home");
   * ```
   */
  async get(key: CounterKey, options: GetOptions = {}): Promise<CounterValue<M>> {
    checkNames(options, GET, "get");
    const table = resolveLayout(this.table, options);
    const out = await this.send<{ Item?: Record<string, { N?: string }> }>(
      "GetItem",
      {
        TableName: table.tableName,
        Key: dynamoKey(table, key),
        ConsistentRead: options.consistent ?? true,
        ProjectionExpression: "#c",
        ExpressionAttributeNames: { "#c": table.countAttribute },
      },
      { idempotent: true, tableName: table.tableName },
    );
    return wireToValue(out.Item?.[table.countAttribute]?.N, this.numbers, `counter ${shown(table.countAttribute)}`);
  }

  /**
   * Sends any DynamoDB JSON API operation with this client's signing, timeout and retry policy; the
   * building block of the buffers and use cases. `idempotent: false` marks writes that must not be resent
   * after an ambiguous failure.
   *
   * @example
   * ```ts
   * const out = await client.send("DescribeTable", { TableName: "AtomicCounters" }, { idempotent: true });
   * ```
   */
  send<T = Record<string, unknown>>(operation: string, body: unknown, options: SendOptions): Promise<T> {
    return this.#transport.send<T>(operation, body, options);
  }
}
