// The EC2 instance metadata source, IMDSv2: a session token first (PUT), then the role's credentials with it.
import { CounterError } from "../errors.js";
import { scrubber } from "../transport.js";
import type { Credentials } from "./provider.js";
import { send, type ChainContext, type Reply } from "./system.js";

/**
 * Each request gets this long (the AWS SDK's default). Instance metadata is a link-local address answered by the
 * hypervisor: on EC2 it answers in a millisecond, and off EC2 (a laptop, a container elsewhere) nothing does,
 * so a short limit keeps the "no credentials" error quick.
 */
const TIMEOUT_MS = 1000;
const CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/";

/**
 * Credentials of the instance's IAM role, over IMDSv2: `PUT /latest/api/token` with
 * `x-aws-ec2-metadata-token-ttl-seconds`, then `GET /latest/meta-data/iam/security-credentials/` (the role's
 * name) and `…/<role>` with `x-aws-ec2-metadata-token`. Endpoint `http://169.254.169.254`, or
 * `http://[fd00:ec2::254]` when AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE is IPv6, or
 * AWS_EC2_METADATA_SERVICE_ENDPOINT. Undefined (noted) when AWS_EC2_METADATA_DISABLED is true, when nothing
 * answers the token request (not on EC2), or when the instance has no role; past that, failures are errors.
 *
 * @example
 * ```ts
 * await fromInstanceMetadata(context); // on EC2 with an instance profile: its role's credentials
 * ```
 */
export async function fromInstanceMetadata(context: ChainContext): Promise<Credentials | undefined> {
  const { env, notes, refusals } = context;
  const disabled = env("AWS_EC2_METADATA_DISABLED");
  if (disabled !== undefined && disabled.toLowerCase() !== "false") {
    notes.push("EC2 instance metadata (turned off by AWS_EC2_METADATA_DISABLED)");
    return undefined;
  }
  const given = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  const base = (
    given ?? (env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")?.toLowerCase() === "ipv6" ? "http://[fd00:ec2::254]" : "http://169.254.169.254")
  ).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]/.test(base))
    throw new CounterError("Config", `AWS_EC2_METADATA_SERVICE_ENDPOINT must be an http(s) URL, got "${base.slice(0, 100)}"`);
  const what = `EC2 instance metadata (${base})`;

  const tokenReply = await send(
    `${base}/latest/api/token`,
    { method: "PUT", headers: { "x-aws-ec2-metadata-token-ttl-seconds": "21600" } },
    TIMEOUT_MS,
    refusals,
  );
  if ("failed" in tokenReply) {
    // Off EC2 this is the usual answer: not a failure of a source, the absence of one.
    notes.push(`${what}: ${tokenReply.detail}`);
    return undefined;
  }
  if (tokenReply.status === 403) {
    notes.push(`${what}: the token request was refused (403: instance metadata is turned off for this instance)`);
    return undefined;
  }
  const token = tokenReply.text.trim();
  const scrub = scrubber([token]);
  if (tokenReply.status !== 200 || !token) throw failure(what, base, "the IMDSv2 token request", tokenReply, scrub);
  const headers = { "x-aws-ec2-metadata-token": token };

  const roles = await send(`${base}${CREDENTIALS_PATH}`, { headers }, TIMEOUT_MS, refusals);
  if (!("failed" in roles) && roles.status === 404) {
    notes.push(`${what}: this instance has no IAM role (instance profile)`);
    return undefined;
  }
  if ("failed" in roles || roles.status !== 200) throw failure(what, base, "the role's name", roles, scrub);
  const role = roles.text.split("\n")[0]!.trim();
  if (!role) throw failure(what, base, "the role's name", roles, scrub);

  const reply = await send(`${base}${CREDENTIALS_PATH}${encodeURIComponent(role)}`, { headers }, TIMEOUT_MS, refusals);
  if ("failed" in reply || reply.status !== 200) throw failure(what, base, `the credentials of role ${role}`, reply, scrub);
  let answer: Record<string, unknown> = {};
  try {
    answer = JSON.parse(reply.text) as Record<string, unknown>;
  } catch {
    // judged below, never quoted
  }
  const { Code, AccessKeyId, SecretAccessKey, Token, Expiration } = answer;
  const expiration = new Date(typeof Expiration === "string" ? Expiration : NaN);
  if (
    (Code === undefined || Code === "Success") &&
    typeof AccessKeyId === "string" &&
    typeof SecretAccessKey === "string" &&
    typeof Token === "string" &&
    !Number.isNaN(+expiration)
  ) {
    return { accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: Token, expiration };
  }
  throw new CounterError(
    "Service",
    `${what} answered the credentials of role ${role} without Code "Success", AccessKeyId, SecretAccessKey, Token and Expiration${typeof Code === "string" ? ` (Code "${scrub(Code).slice(0, 50)}")` : ""}`,
    {
      retryable: true,
    },
  );
}

/** The error for a request past the token one: instance metadata is there, so this is a failure, not an absence. */
function failure(
  what: string,
  base: string,
  asked: string,
  outcome: Reply | { failed: string; detail: string },
  scrub: (s: string) => string,
): CounterError {
  if ("failed" in outcome) {
    if (outcome.failed === "refused")
      return new CounterError("Config", `${what}: ${outcome.detail}; run with --allow-net=${new URL(base).host}`);
    return new CounterError(
      outcome.failed === "timeout" ? "Timeout" : "Network",
      `${what} failed on ${asked} (${scrub(outcome.detail)}); nothing was sent to DynamoDB`,
      { retryable: true },
    );
  }
  // Instance metadata answers errors as short plain text; quoted scrubbed, and short.
  return new CounterError("Service", `${what} answered ${outcome.status} to ${asked}: ${scrub(outcome.text).slice(0, 200)}`, {
    status: outcome.status,
    retryable: outcome.status >= 500,
  });
}
