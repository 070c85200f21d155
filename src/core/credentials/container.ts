// The container source: ECS task roles and EKS Pod Identity, from AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or …_FULL_URI.
import { CounterError } from "../errors.js";
import { scrubber } from "../transport.js";
import type { Credentials } from "./provider.js";
import { readText, send, type ChainContext, type Outcome } from "./system.js";

/** Each attempt gets this long (the AWS SDK's default): the agent is local, a slow answer is a sick one. */
const TIMEOUT_MS = 1000;
const ATTEMPTS = 3;

/** Hosts a plain-http full URI may name, as in the AWS SDKs: loopback, the ECS agent, the EKS Pod Identity agent. */
const HTTP_HOSTS = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\]|169\.254\.170\.2|169\.254\.170\.23|\[fd00:ec2::23\])$/;

/**
 * Credentials from the container endpoint: `http://169.254.170.2` + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS),
 * or AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity, Greengrass, a local agent), with the
 * `Authorization` header from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read on every call: it rotates) or
 * AWS_CONTAINER_AUTHORIZATION_TOKEN. Undefined (noted) when neither URI variable is set; once one is, any
 * failure is an error. Up to 3 attempts of 1 s each.
 *
 * @example
 * ```ts
 * await fromContainer(context); // on ECS: the task role's credentials
 * ```
 */
export async function fromContainer(context: ChainContext): Promise<Credentials | undefined> {
  const { env, notes, refusals } = context;
  const relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (relative === undefined && full === undefined) {
    notes.push("container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set)");
    return undefined;
  }
  // The relative URI wins when both are set, as in the AWS SDKs.
  const variable = relative !== undefined ? "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" : "AWS_CONTAINER_CREDENTIALS_FULL_URI";
  let url: URL;
  try {
    url = new URL(relative !== undefined ? `http://169.254.170.2${relative.startsWith("/") ? "" : "/"}${relative}` : full!);
  } catch {
    throw new CounterError("Config", `${variable} does not make a URL`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && HTTP_HOSTS.test(url.hostname))) {
    throw new CounterError(
      "Config",
      `${variable} must be https, or http to a loopback address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]; it is ${url.protocol}//${url.host}`,
    );
  }
  const tokenFile = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  let token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  if (tokenFile !== undefined) {
    token = readText(tokenFile, refusals, false)?.trim();
    if (!token) {
      throw new CounterError(
        "Config",
        refusals.has("read", tokenFile)
          ? `Reading AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (${tokenFile}) is not permitted: run deno with --allow-read=${tokenFile}`
          : `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (${tokenFile}) does not exist or is empty`,
      );
    }
  }
  if (token !== undefined && /[\r\n]/.test(token)) throw new CounterError("Config", "The container authorization token holds a line break");
  // The answer holds new secrets, the request the token: neither is ever quoted unscrubbed.
  const scrub = scrubber([token]);
  // Where it went, without the path: a relative URI is a secret of the task in all but name.
  const what = `Container credentials (${variable}, ${url.protocol}//${url.host})`;
  let outcome: Outcome | undefined;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    outcome = await send(url.href, { headers: token !== undefined ? { authorization: token } : {} }, TIMEOUT_MS, refusals);
    if ("failed" in outcome) {
      if (outcome.failed === "refused") throw new CounterError("Config", `${what}: ${outcome.detail}; run with --allow-net=${url.host}`);
      continue;
    }
    if (outcome.status === 200) {
      let answer: Record<string, unknown> = {};
      try {
        answer = JSON.parse(outcome.text) as Record<string, unknown>;
      } catch {
        // judged below, never quoted
      }
      const { AccessKeyId, SecretAccessKey, Token, Expiration } = answer;
      const expiration = new Date(typeof Expiration === "string" ? Expiration : NaN);
      if (
        typeof AccessKeyId === "string" &&
        typeof SecretAccessKey === "string" &&
        typeof Token === "string" &&
        !Number.isNaN(+expiration)
      ) {
        return { accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: Token, expiration };
      }
      throw new CounterError("Service", `${what} answered 200 without AccessKeyId, SecretAccessKey, Token and Expiration`, {
        status: 200,
        retryable: true,
      });
    }
    // A 4xx will not change by asking again (a wrong token, a role the agent does not know).
    if (outcome.status < 500) break;
  }
  if (outcome && "failed" in outcome) {
    throw new CounterError(
      outcome.failed === "timeout" ? "Timeout" : "Network",
      `${what} failed ${ATTEMPTS} times (${scrub(outcome.detail)}); nothing was sent to DynamoDB`,
      {
        retryable: true,
      },
    );
  }
  const { status, text } = outcome as { status: number; text: string };
  let said = "";
  try {
    const { Code, Message, code, message } = JSON.parse(text) as Record<string, unknown>;
    said = [Code ?? code, Message ?? message].filter((v) => typeof v === "string").join(": ");
  } catch {
    // not JSON: nothing quoted
  }
  throw new CounterError(
    status === 401 || status === 403 ? "AccessDenied" : status >= 500 ? "Service" : "Config",
    `${what} answered ${status}${said ? `: ${scrub(said).slice(0, 300)}` : ""}`,
    {
      status,
      retryable: status >= 500,
    },
  );
}
