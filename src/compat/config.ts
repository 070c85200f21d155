// AWS SDK v2 `AWS.Config` fields, as dynamodb-atomic-counter's `config.update` took them, mapped to client options.
import type { ClientOptions } from "../core/base-client.js";
import { validationError } from "../core/errors.js";
import { checkNames, MAX_TIMER_MS } from "../core/options.js";
import type { Credentials } from "../core/transport.js";

/**
 * The `AWS.Config` fields `config.update` takes. The old package's `config` *was* AWS SDK v2's global
 * `AWS.config`, so any of its fields may appear in code being migrated: the ones below are applied, every
 * other `AWS.Config` field (`logger`, `sslEnabled`, `apiVersion`, `paramValidation`, `correctClockSkew`, …)
 * is accepted and ignored (the README lists them); a name `AWS.Config` never had is a Validation error.
 *
 * @example
 * ```ts
 * config.update({ region: "eu-west-1", maxRetries: 5, httpOptions: { timeout: 2000 }, logger: console });
 * ```
 */
export interface CompatConfig extends IgnoredConfig {
  /** AWS region. @default env AWS_REGION, then AWS_DEFAULT_REGION, then "us-east-1" */
  region?: string;
  /** DynamoDB endpoint URL (a string, or an `AWS.Endpoint` whose `href` is used). @default env AWS_ENDPOINT_URL_DYNAMODB, then https://dynamodb.<region>.amazonaws.com */
  endpoint?: string | { href: string };
  /** @default env AWS_ACCESS_KEY_ID */
  accessKeyId?: string;
  /** @default env AWS_SECRET_ACCESS_KEY */
  secretAccessKey?: string;
  /** @default env AWS_SESSION_TOKEN */
  sessionToken?: string;
  /**
   * Credentials: keys; a function that returns (a promise of) keys with an optional `expiration`, called again
   * shortly before it; or an AWS SDK v2 `AWS.Credentials` object (`SharedIniFileCredentials`,
   * `EC2MetadataCredentials`, `ChainableTemporaryCredentials`, …), asked through its `getPromise()` on the first
   * call and again shortly before its `expireTime`.
   * @default the fields above; else `credentialProvider`; else the client's chain: the environment, the shared
   * files (AWS_PROFILE), a web identity token, container credentials and EC2 instance metadata
   */
  credentials?: Credentials | (() => Credentials | Promise<Credentials>) | V2Credentials;
  /** An AWS SDK v2 `AWS.CredentialProviderChain`, resolved through its `resolvePromise()`. @default the client's chain */
  credentialProvider?: { resolvePromise(): Promise<V2Credentials> };
  /** Retries after the first attempt. @default 3 */
  maxRetries?: number;
  /**
   * `timeout`: time limit of one attempt in ms; `0` means none, as in AWS SDK v2 (the longest a timer can wait,
   * 2^31 − 1 ms, about 24.8 days, which is also the most a larger value gets). Its other fields are ignored.
   * @default { timeout: 5000 }
   */
  httpOptions?: {
    timeout?: number;
    connectTimeout?: number;
    agent?: unknown;
    proxy?: string;
    xhrAsync?: boolean;
    xhrWithCredentials?: boolean;
  };
  /** `base`: upper bound of the first retry's backoff in ms (`customBackoff` is ignored). @default { base: 25 } */
  retryDelayOptions?: { base?: number; customBackoff?: unknown };
  /** Settings for DynamoDB only (AWS SDK v2's service-specific configuration), over the ones above. @default {} */
  dynamodb?: Omit<CompatConfig, "dynamodb" | "client">;
  /** dynacount's own client options, for anything not above; they win over the AWS fields. @default {} */
  client?: ClientOptions;
}

/** What dynacount reads of an AWS SDK v2 `AWS.Credentials` object: the keys after `getPromise()`, and `expireTime`.
 *
 * @example
 * ```ts
 * config.update({ credentials: new AWS.SharedIniFileCredentials({ profile: "dev" }) });
 * ```
 */
export interface V2Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | null | undefined;
  expireTime?: Date | null | undefined;
  /** Refreshes the keys when they are expired or about to be (AWS SDK v2's own rule), then resolves. */
  getPromise(): Promise<void>;
}

/** The `AWS.Config` fields `config.update` accepts and ignores (listed in {@link IGNORED_FIELDS}). */
export type IgnoredConfig = { [K in (typeof IGNORED_FIELDS)[number]]?: unknown };

const APPLIED = [
  "region",
  "endpoint",
  "accessKeyId",
  "secretAccessKey",
  "sessionToken",
  "credentials",
  "credentialProvider",
  "maxRetries",
  "httpOptions",
  "retryDelayOptions",
];

/** AWS SDK v2's other `AWS.Config` fields: none changes what a counter returns, so each is ignored. */
export const IGNORED_FIELDS = [
  "apiVersion",
  "apiVersions",
  "clientSideMonitoring",
  "computeChecksums",
  "convertResponseTypes",
  "correctClockSkew",
  "customUserAgent",
  "dynamoDbCrc32",
  "endpointCacheSize",
  "endpointDiscoveryEnabled",
  "hostPrefixEnabled",
  "logger",
  "maxRedirects",
  "paramValidation",
  "s3BucketEndpoint",
  "s3DisableBodySigning",
  "s3ForcePathStyle",
  "s3UsEast1RegionalEndpoint",
  "s3UseArnRegion",
  "signatureCache",
  "signatureVersion",
  "sslEnabled",
  "stsRegionalEndpoints",
  "systemClockOffset",
  "token",
  "useAccelerateEndpoint",
  "useDualstackEndpoint",
  "useFipsEndpoint",
] as const;

const FIELDS = /* @__PURE__ */ new Set([...APPLIED, ...IGNORED_FIELDS]);
const TOP = /* @__PURE__ */ new Set([...FIELDS, "dynamodb", "client"]);
const HTTP = /* @__PURE__ */ new Set(["timeout", "connectTimeout", "agent", "proxy", "xhrAsync", "xhrWithCredentials"]);
const DELAY = /* @__PURE__ */ new Set(["base", "customBackoff"]);

/**
 * Checks the field names of one `config.update` argument (unless `allowUnknownKeys`, AWS.Config.update's
 * own second argument, says to ignore unknown ones); the values are checked by the client built from them.
 */
export function checkConfig(options: CompatConfig, allowUnknownKeys: boolean): void {
  if (typeof options !== "object" || options === null) throw validationError("config.update takes an object");
  const check = (object: unknown, names: ReadonlySet<string>, what: string) => {
    if (object === undefined || object === null) return;
    if (typeof object !== "object") throw validationError(`Invalid ${what}: must be an object`);
    if (!allowUnknownKeys) checkNames(object, names, what);
  };
  check(options, TOP, "config");
  check(options.dynamodb, FIELDS, "config.dynamodb");
  for (const scope of [options, options.dynamodb ?? {}]) {
    check(scope.httpOptions, HTTP, "config.httpOptions");
    check(scope.retryDelayOptions, DELAY, "config.retryDelayOptions");
  }
}

/** Client options from the merged configuration: DynamoDB-specific fields over global ones, `client` over both. */
export function clientOptions(settings: CompatConfig): ClientOptions {
  const s = { ...settings, ...settings.dynamodb };
  const options: ClientOptions = {};
  if (s.region != null) options.region = s.region;
  if (s.endpoint != null) options.endpoint = typeof s.endpoint === "string" ? s.endpoint : s.endpoint.href;
  const given = s.credentials;
  const chain = s.credentialProvider;
  if (typeof given === "function") {
    options.credentials = given;
  } else if (typeof (given as V2Credentials | undefined)?.getPromise === "function") {
    // AWS SDK v2 refreshes an AWS.Credentials object in place: asked again before its expireTime, it has new keys.
    const v2 = given as V2Credentials;
    options.credentials = () => v2.getPromise().then(() => fromV2(v2));
  } else if (given == null && typeof chain?.resolvePromise === "function") {
    options.credentials = () => chain.resolvePromise().then(async (found) => (await found.getPromise(), fromV2(found)));
  } else {
    const { accessKeyId, secretAccessKey, sessionToken } = (given as Credentials | undefined) ?? s;
    if (accessKeyId != null || secretAccessKey != null) {
      options.credentials = sessionToken
        ? { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey!, sessionToken }
        : { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey! };
    }
  }
  const retry: NonNullable<ClientOptions["retry"]> = {};
  const maxRetries = int(s.maxRetries, "maxRetries", 0);
  if (maxRetries !== undefined) retry.attempts = maxRetries + 1;
  const base = int(s.retryDelayOptions?.base, "retryDelayOptions.base", 0);
  if (base !== undefined) retry.baseDelayMs = base;
  if (maxRetries !== undefined || base !== undefined) options.retry = retry;
  // AWS SDK v2's 0 is "no timeout"; timers cannot wait longer than MAX_TIMER_MS (a longer one fires at once).
  const timeout = int(s.httpOptions?.timeout, "httpOptions.timeout", 0);
  if (timeout !== undefined) options.timeoutMs = Math.min(timeout || MAX_TIMER_MS, MAX_TIMER_MS);
  const own = settings.client;
  return { ...options, ...own, ...(own?.retry && { retry: { ...retry, ...own.retry } }) };
}

/** The keys and expiry of an AWS SDK v2 credentials object, as a copy (the object changes on its next refresh). */
function fromV2(v2: V2Credentials): Credentials {
  const { accessKeyId, secretAccessKey, sessionToken, expireTime } = v2;
  return { accessKeyId, secretAccessKey, sessionToken: sessionToken || undefined, expiration: expireTime || undefined };
}

/**
 * An applied numeric field, checked under its AWS name (the client would report `retry.attempts` or
 * `timeoutMs`). Not parseOptions: AWS.Config took `null` as unset, which parseOptions rejects.
 */
function int(value: unknown, name: string, min: number): number | undefined {
  if (value == null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw validationError(`Invalid config option "${name}": must be an integer of at least ${min}`);
  }
  return value;
}
