// STS AssumeRole (signed with aws4fetch) and AssumeRoleWithWebIdentity (unsigned): the Query API over HTTPS POST, XML answers.
import { AwsV4Signer } from "aws4fetch";
import { CounterError } from "../errors.js";
import { scrubber } from "../transport.js";
import type { Credentials } from "./provider.js";
import { send, type Refusals } from "./system.js";

/** Where STS is and what to tell Deno. */
export interface StsContext {
  /** The region of the endpoint and of the signature. */
  region: string;
  /** `AWS_ENDPOINT_URL_STS`, when set; else `https://sts.<region>.amazonaws.com`. */
  endpoint: string | undefined;
  refusals: Refusals;
}

/** STS answers within this, or the attempt fails (the client's retry policy may try again). */
const TIMEOUT_MS = 5000;

/**
 * Temporary credentials for `RoleArn`, signed with `source` (the `source_profile`'s or `credential_source`'s).
 *
 * @example
 * ```ts
 * await assumeRole(source, { RoleArn: "arn:aws:iam::123456789012:role/app", RoleSessionName: "dynacount" }, context);
 * ```
 */
export function assumeRole(source: Credentials, params: Record<string, string>, context: StsContext): Promise<Credentials> {
  return call("AssumeRole", params, context, source, [source.secretAccessKey, source.sessionToken]);
}

/**
 * Temporary credentials for `RoleArn` from an OIDC token (EKS, GitHub Actions, …): no signature, the token is
 * the proof.
 *
 * @example
 * ```ts
 * await assumeRoleWithWebIdentity({ RoleArn, RoleSessionName, WebIdentityToken: token }, context);
 * ```
 */
export function assumeRoleWithWebIdentity(params: Record<string, string>, context: StsContext): Promise<Credentials> {
  return call("AssumeRoleWithWebIdentity", params, context, undefined, [params.WebIdentityToken]);
}

async function call(
  action: string,
  params: Record<string, string>,
  { region, endpoint, refusals }: StsContext,
  signer: Credentials | undefined,
  secrets: Array<string | undefined>,
): Promise<Credentials> {
  const url = endpoint ?? `https://sts.${region}.amazonaws.com/`;
  const what = `STS ${action} for ${params.RoleArn} at ${url}`;
  const body = new URLSearchParams({ Action: action, Version: "2011-06-15", ...params }).toString();
  let headers: Headers | Record<string, string> = { "content-type": "application/x-www-form-urlencoded; charset=utf-8" };
  if (signer) {
    const { accessKeyId, secretAccessKey, sessionToken } = signer;
    const token = sessionToken ? { sessionToken } : {};
    ({ headers } = await new AwsV4Signer({
      url,
      method: "POST",
      headers,
      body,
      service: "sts",
      region,
      accessKeyId,
      secretAccessKey,
      ...token,
    }).sign());
  }
  const outcome = await send(url, { method: "POST", headers, body }, TIMEOUT_MS, refusals);
  const scrub = scrubber(secrets);
  if ("failed" in outcome) {
    if (outcome.failed === "refused") {
      throw new CounterError("Config", `${what}: ${outcome.detail}; run with --allow-net=${new URL(url).host}`);
    }
    throw new CounterError(
      outcome.failed === "timeout" ? "Timeout" : "Network",
      `${what} failed (${scrub(outcome.detail)}); nothing was sent to DynamoDB`,
      {
        retryable: true,
      },
    );
  }
  const { status, text } = outcome;
  if (status === 200) {
    const credentials = element(text, "Credentials", true);
    const accessKeyId = element(credentials, "AccessKeyId");
    const secretAccessKey = element(credentials, "SecretAccessKey");
    const sessionToken = element(credentials, "SessionToken");
    const expiration = new Date(element(credentials, "Expiration") ?? "");
    if (accessKeyId && secretAccessKey && sessionToken && !Number.isNaN(+expiration))
      return { accessKeyId, secretAccessKey, sessionToken, expiration };
    // Never quoted: part of it may be a secret.
    throw new CounterError("Service", `${what} answered 200 without AccessKeyId, SecretAccessKey, SessionToken and Expiration`, {
      status,
      retryable: true,
    });
  }
  // <ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>…</Message></Error><RequestId>…</RequestId></ErrorResponse>
  const code = scrub(element(text, "Code") ?? "").slice(0, 100);
  const message = scrub(element(text, "Message") ?? "").slice(0, 500);
  const requestId = scrub(element(text, "RequestId") ?? "").slice(0, 100) || undefined;
  const said = `${what} answered ${status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""}`;
  if (status === 403 || code === "AccessDenied") {
    throw new CounterError("AccessDenied", `${said}. Check the role's trust policy and the source credentials`, {
      status,
      awsType: code || undefined,
      requestId,
    });
  }
  if (status === 429 || /^Throttl/.test(code))
    throw new CounterError("Throttled", said, { status, awsType: code, requestId, retryable: true });
  throw new CounterError(status >= 500 ? "Service" : "Config", said, {
    status,
    awsType: code || undefined,
    requestId,
    retryable: status >= 500,
  });
}

/** The text of the first `<name>` element in `xml`, entities decoded unless `raw`; undefined when there is none. */
function element(xml: string | undefined, name: string, raw = false): string | undefined {
  const found = xml && new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`).exec(xml)?.[1]?.trim();
  return !found ? undefined : raw ? found : decode(found);
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

const code = (point: number): string | undefined => (point <= 0x10ffff ? String.fromCodePoint(point) : undefined);

/** XML's five named entities and numeric character references. */
const decode = (text: string): string =>
  text.replace(/&(?:#x([0-9a-f]+)|#(\d+)|(\w+));/gi, (all, hex: string | undefined, dec: string | undefined, name: string | undefined) =>
    hex || dec ? (code(parseInt(hex ?? dec!, hex ? 16 : 10)) ?? all) : (ENTITIES[name!] ?? all),
  );
