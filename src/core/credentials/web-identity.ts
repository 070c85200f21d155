// The web identity source: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (EKS, GitHub Actions) through STS AssumeRoleWithWebIdentity.
import { CounterError } from "../errors.js";
import type { Credentials } from "./provider.js";
import { assumeRoleWithWebIdentity } from "./sts.js";
import { readText, type ChainContext } from "./system.js";

/**
 * Credentials for AWS_ROLE_ARN from the token in AWS_WEB_IDENTITY_TOKEN_FILE (session name AWS_ROLE_SESSION_NAME),
 * or undefined (noted) when the file variable is not set. One without the other is an error.
 *
 * @example
 * ```ts
 * await fromWebIdentityEnv(context); // on EKS with IRSA: the pod's role
 * ```
 */
export function fromWebIdentityEnv(context: ChainContext): Promise<Credentials | undefined> | undefined {
  const { env, notes } = context;
  const file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  const role = env("AWS_ROLE_ARN");
  if (file === undefined) {
    notes.push("a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE is not set)");
    return undefined;
  }
  if (role === undefined)
    throw new CounterError("Config", `AWS_WEB_IDENTITY_TOKEN_FILE is set (${file}) but AWS_ROLE_ARN, the role to assume with it, is not`);
  return webIdentity(file, role, env("AWS_ROLE_SESSION_NAME"), context);
}

/**
 * Assumes `roleArn` with the token in `file`, read again on every call: the platform rotates it (EKS hourly).
 * Also the source of a profile with `web_identity_token_file`.
 *
 * @example
 * ```ts
 * await webIdentity("/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "arn:aws:iam::123456789012:role/app", undefined, context);
 * ```
 */
export async function webIdentity(
  file: string,
  roleArn: string,
  sessionName: string | undefined,
  context: ChainContext,
): Promise<Credentials> {
  const { refusals } = context;
  const token = readText(file, refusals, false)?.trim();
  if (!token) {
    throw new CounterError(
      "Config",
      refusals.has("read", file)
        ? `Reading the web identity token file ${file} is not permitted: run deno with --allow-read=${file}`
        : `The web identity token file ${file} (AWS_WEB_IDENTITY_TOKEN_FILE or web_identity_token_file) does not exist or is empty`,
    );
  }
  return assumeRoleWithWebIdentity(
    { RoleArn: roleArn, RoleSessionName: sessionName ?? `dynacount-${Date.now()}`, WebIdentityToken: token },
    { region: context.region, endpoint: context.env("AWS_ENDPOINT_URL_STS"), refusals },
  );
}
