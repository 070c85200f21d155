// The first source of the default chain: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
import type { Credentials } from "./provider.js";

/**
 * Credentials from the environment variables, or undefined when the key id or the secret is missing (then the
 * chain looks further; a session token alone means nothing).
 *
 * @example
 * ```ts
 * const credentials = fromEnv(envReader(env)); // { accessKeyId, secretAccessKey, sessionToken? } | undefined
 * ```
 */
export function fromEnv(env: (name: string) => string | undefined): Credentials | undefined {
  const accessKeyId = env("AWS_ACCESS_KEY_ID");
  const secretAccessKey = env("AWS_SECRET_ACCESS_KEY");
  return accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey, sessionToken: env("AWS_SESSION_TOKEN") } : undefined;
}
