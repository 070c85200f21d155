// Whether a failed fetch certainly never reached the server, decided per runtime from codes, not free text.

/**
 * Whether `error` (a rejection of `fetch` or of Node's request for `url`) certainly happened before the
 * request reached a server, so that even a non-idempotent write is safe to resend. Anything unrecognised is
 * "maybe sent". The URL is cut out of every message before it is read: a path or host holding "cert" or
 * "refused" decides nothing.
 *
 * Always false in the build for workerd and browsers (package.json `exports` conditions), where nothing can be
 * told apart: workerd reports a refused connection and a reset alike as "Network connection lost.", a browser
 * any failure as a bare TypeError. The rest of this file is left out of a Worker.
 */
export const neverSent = (error: unknown, url: string): boolean => typeof DYNACOUNT_WEB_BUILD === "undefined" && readCodes(error, url);
declare const DYNACOUNT_WEB_BUILD: true | undefined;

function readCodes(error: unknown, url: string): boolean {
  // Codes (Node's node:http, undici's in `cause`, Bun's on the error) of failures before a byte of the request
  // was written: refused, unresolved, or a certificate that failed verification (UNABLE_TO_VERIFY_LEAF_SIGNATURE,
  // DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID, …: the handshake comes first).
  // Anchored: a code is a name the runtime chose, never text that could carry the URL.
  const code =
    /^(?:ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ConnectionRefused|ERR_TLS_CERT_ALTNAME_INVALID|(?:UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|CERT)_[A-Z_]+)$/;
  // Deno gives no code, only hyper's error chain after the URL: "error sending request for url (<url>): client
  // error (Connect): tcp connect error: Connection refused (os error 111)" (Deno 2), "…: error trying to
  // connect: …" (Deno 1). Connect covers DNS, TCP and TLS: no connection, so nothing was sent. Once connected,
  // the message starts "error sending request from <local address> for <url>", which never matches.
  const deno = /^error sending request for url \(\): (?:client error \(Connect\)|error trying to connect)/;
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const { code: name, message } = e as { code?: unknown; message?: unknown };
    if (typeof name === "string" ? code.test(name) : typeof message === "string" && deno.test(message.split(url).join(""))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
