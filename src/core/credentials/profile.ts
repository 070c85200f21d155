// The shared files source: ~/.aws/credentials and ~/.aws/config, a profile's keys, roles through STS, and its region.
import type { Reader } from "../env.js";
import { CounterError } from "../errors.js";
import { fromContainer } from "./container.js";
import { fromEnv } from "./env.js";
import { fromInstanceMetadata } from "./imds.js";
import { profiles, type Profile } from "./ini.js";
import type { Credentials } from "./provider.js";
import { assumeRole } from "./sts.js";
import { canReadFiles, homeDirectory, readText, Refusals, underHome, type ChainContext } from "./system.js";
import { webIdentity } from "./web-identity.js";

/** The two files as found for one lookup. */
interface SharedFiles {
  /** The profile asked for: AWS_PROFILE, else "default". */
  name: string;
  /** Whether AWS_PROFILE named it (then a missing profile is an error, not a reason to look further). */
  named: boolean;
  credentialsPath: string;
  configPath: string;
  /** Profiles of both files; undefined when neither file exists (or could be read). */
  profiles: Record<string, Profile> | undefined;
}

/** The files `env` points at (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, else under ~/.aws), read; undefined when there is no home directory to find them in. */
function sharedFiles(env: Reader, home: string | undefined, refusals: Refusals): SharedFiles | undefined {
  const path = (variable: string, file: string) => {
    const given = env(variable);
    // "~/" as the AWS SDKs expand it; any other path is the runtime's to resolve.
    if (given && !given.startsWith("~/")) return given;
    return home === undefined ? undefined : underHome(home, ...(given ? given.slice(2).split("/") : [".aws", file]));
  };
  const credentialsPath = path("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  const configPath = path("AWS_CONFIG_FILE", "config");
  if (credentialsPath === undefined || configPath === undefined) return undefined;
  const profile = env("AWS_PROFILE");
  const credentialsText = readText(credentialsPath, refusals);
  const configText = readText(configPath, refusals);
  return {
    name: profile ?? "default",
    named: profile !== undefined,
    credentialsPath,
    configPath,
    profiles: credentialsText === undefined && configText === undefined ? undefined : profiles(configText, credentialsText),
  };
}

/**
 * Where the region of the profile in use (AWS_PROFILE, else "default") was found in the shared files (for an
 * error that says which setting is wrong), and the region; undefined when there is none. Synchronous: the client's
 * constructor decides the region. Deno refusing a variable or a file means "none" here: the region has a default.
 *
 * @example
 * ```ts
 * profileRegion(envReader(env)); // ['region of profile "default" in /home/me/.aws/config …', "eu-west-1"] | undefined
 * ```
 */
export function profileRegion(env: Reader): [string, string] | undefined {
  if (!canReadFiles()) return undefined;
  const refusals = new Refusals();
  const files = sharedFiles(env, homeDirectory(env), refusals);
  const region = files?.profiles?.[files.name]?.region;
  return region === undefined
    ? undefined
    : [`region of profile "${files!.name}" in ${files!.configPath} or ${files!.credentialsPath}`, region];
}

/**
 * Credentials of the profile in use, or undefined (with a note of where it looked) when the files or the default
 * profile are missing or the profile holds no credentials. A profile that AWS_PROFILE names but that is missing
 * or empty, a broken `source_profile` chain, or a failing STS call is an error.
 *
 * @example
 * ```ts
 * await fromSharedFiles(context); // { accessKeyId, secretAccessKey, sessionToken?, expiration? } | undefined
 * ```
 */
export async function fromSharedFiles(context: ChainContext): Promise<Credentials | undefined> {
  const { env, home, refusals, notes } = context;
  if (!canReadFiles()) {
    notes.push("the shared files (this runtime cannot read them: on Node, that takes 20.16 or later)");
    return undefined;
  }
  const files = sharedFiles(env, home, refusals);
  if (!files) {
    notes.push(`the shared files (no home directory: ${refusals.has("env", "HOME") ? "HOME is not permitted" : "HOME is not set"})`);
    return undefined;
  }
  const { name, named, credentialsPath, configPath } = files;
  const where = `${credentialsPath} and ${configPath}`;
  const found = files.profiles?.[name];
  if (!found) {
    const missing = files.profiles ? `have no profile "${name}"` : "do not exist";
    if (named) throw new CounterError("Config", `AWS_PROFILE is "${name}", but ${where} ${missing}`);
    notes.push(`the shared files (${where} ${missing})`);
    return undefined;
  }
  const credentials = await resolve(name, found, files.profiles!, [], context, where);
  if (!credentials) {
    const problem = `profile "${name}" in ${where} has no credentials (aws_access_key_id and aws_secret_access_key, or role_arn with source_profile, credential_source or web_identity_token_file)`;
    if (named) throw new CounterError("Config", `AWS_PROFILE is "${name}", but ${problem}`);
    notes.push(`the shared files (${problem})`);
  }
  return credentials;
}

const hasKeys = (p: Profile) => p.aws_access_key_id !== undefined && p.aws_secret_access_key !== undefined;
const keysOf = (p: Profile): Credentials => ({
  accessKeyId: p.aws_access_key_id!,
  secretAccessKey: p.aws_secret_access_key!,
  sessionToken: p.aws_session_token,
});

/**
 * The credentials profile `name` stands for, as the AWS SDK for JavaScript resolves them: a role with a source
 * (another profile, followed with cycle detection, or a `credential_source`) is assumed through STS; a profile
 * reached as a `source_profile` gives its keys first. Undefined when the profile holds none.
 */
async function resolve(
  name: string,
  p: Profile,
  all: Record<string, Profile>,
  visited: string[],
  context: ChainContext,
  where: string,
): Promise<Credentials | undefined> {
  const what = `profile "${name}" in ${where}`;
  if (visited.length > 0 && hasKeys(p)) return keysOf(p);
  const source = p.source_profile;
  if (p.role_arn !== undefined && (source !== undefined || p.credential_source !== undefined)) {
    if (p.mfa_serial !== undefined) {
      throw new CounterError(
        "Config",
        `${what} needs an MFA code (mfa_serial), which dynacount cannot ask for: pass { credentials } from a function that can`,
      );
    }
    let from: Credentials | undefined;
    if (source !== undefined) {
      // `visited` holds the source profiles followed so far: a profile may be its own source (its keys sign the
      // call), and A → B → A works when A has keys, as in the AWS SDK; anything else that comes back is a cycle.
      if (visited.includes(source))
        throw new CounterError("Config", `${what}: source_profile makes a cycle (${[...visited, source].join(" → ")})`);
      const next = all[source];
      if (!next) throw new CounterError("Config", `${what} names source_profile "${source}", which is not there`);
      from = await resolve(source, next, all, [...visited, source], context, where);
      if (!from) throw new CounterError("Config", `${what} names source_profile "${source}", which has no credentials`);
    } else {
      from = await credentialSource(p.credential_source!, what, context);
    }
    return assumeRole(
      from,
      {
        RoleArn: p.role_arn,
        RoleSessionName: p.role_session_name ?? `dynacount-${Date.now()}`,
        DurationSeconds: p.duration_seconds ?? "3600",
        ...(p.external_id !== undefined && { ExternalId: p.external_id }),
      },
      { region: p.region ?? context.region, endpoint: context.env("AWS_ENDPOINT_URL_STS"), refusals: context.refusals },
    );
  }
  if (hasKeys(p)) return keysOf(p);
  if (p.role_arn !== undefined && p.web_identity_token_file !== undefined) {
    return webIdentity(p.web_identity_token_file, p.role_arn, p.role_session_name, { ...context, region: p.region ?? context.region });
  }
  if (p.credential_source !== undefined) return credentialSource(p.credential_source, what, context);
  const other = ["sso_session", "sso_start_url", "credential_process", "login_session"].find((key) => p[key] !== undefined);
  if (other) {
    throw new CounterError(
      "Config",
      `${what} uses ${other}, which dynacount does not read. Export credentials for it ` +
        `(\`aws configure export-credentials --profile ${name} --format env\`) or pass { credentials } from a function`,
    );
  }
  return undefined;
}

/** A profile's `credential_source`: `Environment`, `Ec2InstanceMetadata` or `EcsContainer`. */
async function credentialSource(kind: string, what: string, context: ChainContext): Promise<Credentials> {
  const notes: string[] = [];
  const inner = { ...context, notes };
  const found =
    kind === "Environment"
      ? fromEnv(context.env)
      : kind === "Ec2InstanceMetadata"
        ? await fromInstanceMetadata(inner)
        : kind === "EcsContainer"
          ? await fromContainer(inner)
          : null;
  if (found === null)
    throw new CounterError("Config", `${what} has credential_source "${kind}"; expected Environment, Ec2InstanceMetadata or EcsContainer`);
  if (!found)
    throw new CounterError(
      "Config",
      `${what} has credential_source "${kind}", which has no credentials: looked at ${notes.join("; ") || "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}`,
    );
  return found;
}
