// Visitor hashing: HMAC-SHA-256(secret, day, visitor) through crypto.subtle, sent and stored as 64 bits, never the visitor.
const encoder = new TextEncoder();

/** What a visitor hashed by {@link hashVisitor} looks like: this prefix and 16 hex digits (64 bits of the HMAC). */
export const HASHED_PREFIX = "~h1:";
const HASHED = /^~h1:[0-9a-f]{16}$/;

/** Whether `visitor` is already a hash made by {@link hashVisitor} (a tracker that has the secret sends these). */
export const isHashed = (visitor: string): boolean => HASHED.test(visitor);

/** HMAC keys by secret: importing one costs more than a signature. */
const keys = new Map<string, Promise<CryptoKey>>();

function keyOf(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    if (keys.size >= 16) keys.clear();
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  return key;
}

/**
 * HMAC-SHA-256 of `day` and `visitor` under `secret`, as {@link HASHED_PREFIX} + 16 hex digits. Every object and
 * tracker with the secret agrees on it within a day; without the secret nobody can tell whose it is, and the
 * day in the message makes one person's hashes on two days unlinkable.
 *
 * @example
 * ```ts
 * await hashVisitor(env.PAGEVIEWS_SECRET, "2026-11-21", `${ip}\n${userAgent}`); // "~h1:3f9c…"
 * ```
 */
export async function hashVisitor(secret: string, day: string, visitor: string): Promise<string> {
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await keyOf(secret), encoder.encode(`${day}\n${visitor}`)));
  let hex = HASHED_PREFIX;
  for (let i = 0; i < 8; i++) hex += mac[i]!.toString(16).padStart(2, "0");
  return hex;
}

/** The high and low 32 bits of a hashed visitor, what the sketch takes. */
export function hashBits(hashed: string): [number, number] {
  return [parseInt(hashed.slice(4, 12), 16), parseInt(hashed.slice(12, 20), 16)];
}
