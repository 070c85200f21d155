// Signing credentials and their refresh: a provider asked again shortly before expiry, one call at a time.
import { CounterError } from "../errors.js";

/** Credentials used to sign requests.
 *
 * @example
 * ```ts
 * new CounterClient({ credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
 * ```
 */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
  /**
   * When temporary credentials stop working. Read from what a credentials function returns: it is called
   * again shortly before (5 minutes, or half their remaining life when that is shorter).
   */
  expiration?: Date | undefined;
}

/** Where a transport gets the credentials of each attempt: the current ones at once, or a promise while they are fetched. */
export type CredentialSource = () => Credentials | Promise<Credentials>;

/**
 * `provider` behind a cache: called on first use, and again once `expiration` draws near. Until then every
 * request signs with the cached credentials. In the last stretch before expiry (5 minutes, or half the life
 * the credentials had when fetched if that is shorter) requests keep signing with them while one call runs
 * in the background; once they have expired (or before the first ones) requests wait for that one call,
 * however many there are. A failed background refresh is tried again by the next request.
 *
 * @example
 * ```ts
 * const source = refreshing(async () => fetchFromVault()); // { accessKeyId, secretAccessKey, sessionToken, expiration }
 * const credentials = await source();
 * ```
 */
export function refreshing(provider: () => Credentials | Promise<Credentials>): CredentialSource {
  let current: Credentials;
  // Both 0 until the first credentials arrive (and only ever set with them), so `current` is set whenever a
  // comparison below succeeds.
  let refreshAt = 0;
  let expiresAt = 0;
  let pending: Promise<Credentials> | undefined;
  const refresh = () =>
    (pending ??= (async () => {
      try {
        const got = await provider();
        // Wrapped below like anything else the function throws (one message costs a Worker fewer bytes than two).
        if (!got?.accessKeyId || !got.secretAccessKey) throw "no accessKeyId and secretAccessKey";
        // No expiration: good for ever. One that is not a valid Date (NaN) is always near its end: each request
        // signs with these and asks again in the background, one call at a time.
        expiresAt = +(got.expiration ?? Infinity);
        refreshAt = expiresAt - Math.min(300_000, (expiresAt - Date.now()) / 2);
        return (current = got);
      } catch (error) {
        throw error instanceof CounterError
          ? error
          : new CounterError("Config", `The credentials function failed: ${error}`, { cause: error, retryable: true });
      } finally {
        pending = undefined;
      }
    })());
  return () => {
    const now = Date.now();
    if (now < refreshAt) return current;
    if (now >= expiresAt) return refresh();
    // Still valid: sign with them while one call fetches the next (its failure: the next request tries again).
    refresh().catch(() => undefined);
    return current;
  };
}
