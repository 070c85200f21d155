// The default credential chain, in the AWS SDK's order: environment, shared files, web identity, container, instance metadata.
import { envReader, type EnvSource } from "../env.js";
import { CounterError } from "../errors.js";
import { fromContainer } from "./container.js";
import { fromEnv } from "./env.js";
import { fromInstanceMetadata } from "./imds.js";
import { fromSharedFiles } from "./profile.js";
import { refreshing, type Credentials, type CredentialSource } from "./provider.js";
import { homeDirectory, Refusals, type ChainContext } from "./system.js";
import { fromWebIdentityEnv } from "./web-identity.js";

/**
 * The credentials of a client given none: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from
 * `env` (and the runtime's environment); then, on Node, Bun and Deno, the rest of the AWS SDK's chain, looked up
 * on the first request ({@link chain}). The build for Workers and browsers (DYNACOUNT_WEB_BUILD) has no files,
 * no instance metadata and no container agent: there the variables are all, checked here, and the rest of the
 * chain is left out of the bundle.
 *
 * @example
 * ```ts
 * const source = defaultCredentials(env, "eu-west-1");
 * const { accessKeyId } = await source();
 * ```
 */
export const defaultCredentials = (source: EnvSource | undefined, region: string): CredentialSource =>
  typeof DYNACOUNT_WEB_BUILD === "undefined" ? chain(source, region) : variablesOnly(source);
declare const DYNACOUNT_WEB_BUILD: true | undefined;

function variablesOnly(source: EnvSource | undefined): CredentialSource {
  const found = fromEnv(envReader(source));
  if (!found) {
    throw new CounterError(
      "Config",
      "No AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or pass { credentials } or a Worker's { env }",
    );
  }
  return () => found;
}

/** Every variable the chain past the environment reads: what makes two clients' chains the same. */
const VARIABLES = [
  "AWS_PROFILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CONFIG_FILE",
  "AWS_ENDPOINT_URL_STS",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_ROLE_SESSION_NAME",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
  "AWS_EC2_METADATA_DISABLED",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
  // For a profile's `credential_source = Environment` (reached only with AWS_PROFILE set).
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
];

/**
 * Chains by what they read, shared by every client that reads the same: an app that builds a client per request
 * (`new CounterClient({ env: c.env })` in a Hono handler) assumes a role or asks instance metadata once per
 * expiry, not once per request.
 */
const chains = /* @__PURE__ */ new Map<string, CredentialSource>();

/**
 * The AWS SDK for JavaScript's default chain. The variables come first, unless AWS_PROFILE is set: then, as in
 * that SDK, the profile wins over them. Every variable is read now, when the client is built; the files and
 * endpoints on the first request, and again shortly before temporary credentials expire ({@link refreshing}).
 * Nothing found: a Config error naming every place it looked (and, on Deno, the permission flags that
 * hid any of them). A source that is there but fails is an error of its own, not a reason to look further.
 */
function chain(source: EnvSource | undefined, region: string): CredentialSource {
  const refusals = new Refusals();
  const env = envReader(source, (name) => refusals.add("env", name));
  // The keys are read first so that a Deno refusal lists them first: they are what most people mean to grant.
  const keys = fromEnv(env);
  if (keys && env("AWS_PROFILE") === undefined) return () => keys;
  const vars: Record<string, string | undefined> = {};
  for (const name of VARIABLES) vars[name] = env(name);
  const home = homeDirectory(env);
  const key = JSON.stringify([vars, home ?? null, region]);
  let found = chains.get(key);
  if (!found) {
    if (chains.size >= 64) chains.clear();
    const context = { env: (name: string) => vars[name], home, region, refusals };
    chains.set(key, (found = refreshing(() => run({ ...context, notes: [] }))));
  }
  return found;
}

async function run(context: ChainContext): Promise<Credentials> {
  context.notes.push(
    context.env("AWS_PROFILE") !== undefined
      ? "the environment (not AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: AWS_PROFILE is set, and names where to look)"
      : context.refusals.has("env", "AWS_ACCESS_KEY_ID")
        ? "the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not permitted)"
        : "the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set)",
  );
  for (const source of [fromSharedFiles, fromWebIdentityEnv, fromContainer, fromInstanceMetadata]) {
    const found = await source(context);
    if (found) return found;
  }
  const flags = context.refusals.flags();
  throw new CounterError(
    "Config",
    `No AWS credentials found. Looked at ${context.notes.join("; ")}.` +
      (flags ? ` Some of these are not permitted: run deno with ${flags}.` : "") +
      " Or pass { credentials } (keys, or a function that returns them) or a Worker's { env }",
  );
}
