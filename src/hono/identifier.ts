// Identifiers the limiter can always store, whatever a header or an identifier function produced.

/** Longest identifier used as it is; a longer one is hashed (DynamoDB keys have a size limit). */
const MAX_IDENTIFIER = 256;

/**
 * An identifier the limiter accepts, whatever `id` is: empty counts as "unknown"; a long one, one with a lone
 * surrogate (not UTF-8), or one that looks like a hash (`sha256:…`, so that a client cannot name another
 * identifier's hashed budget, and the prefix always means "hashed here") as its SHA-256.
 */
export function usable(id: unknown): string | Promise<string> {
  const text = typeof id === "string" ? id : id == null ? "" : String(id);
  return !text ? "unknown" : text.length > MAX_IDENTIFIER || /\p{Cs}/u.test(text) || isHashed(text) ? hashed(text) : text;
}

/** Whether `id` was hashed here ({@link usable} hashes any other identifier with the prefix). */
export const isHashed = (id: string): boolean => id.startsWith("sha256:");

/** `"sha256:"` and the hex SHA-256 of `text` (a lone surrogate encodes as U+FFFD). */
export async function hashed(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return `sha256:${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
