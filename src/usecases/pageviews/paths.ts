// Path normalisation: the page a URL counts as (no query, safe percent-decoding, slashes, case, a length cap).
import { OTHER_PAGE } from "./layout.js";
import { MAX_PAGE_BYTES } from "./views.js";

/** How URL paths become pages.
 *
 * @example
 * ```ts
 * new PageViewTracker(env.PAGE_VIEWS, { paths: { lowercase: true, trailingSlash: "keep", maxLength: 128 } });
 * ```
 */
export interface PathOptions {
  /** Lowercase paths (for sites whose paths are case-insensitive). @default false: `/About` and `/about` are two pages */
  lowercase?: boolean;
  /** `"strip"`: `/docs/` counts as `/docs`; `"keep"`: two pages. The root is always `/`. @default "strip" */
  trailingSlash?: "strip" | "keep";
  /** Longest page, in characters: a longer path is cut there. @default 256 */
  maxLength?: number;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const decoder = /* @__PURE__ */ new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * Decodes what percent-encoding may hide without changing a path's meaning: unreserved ASCII (`%7E` → `~`) and
 * valid UTF-8 sequences of printable characters (`%C3%A9` → `é`). Reserved and control characters stay
 * encoded, in uppercase hex (`%2f` → `%2F`), so `/a%2Fb` stays one segment.
 */
export function decodeSafe(path: string): string {
  return path.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    const bytes = run
      .slice(1)
      .split("%")
      .map((h) => parseInt(h, 16));
    let out = "";
    for (let i = 0; i < bytes.length; ) {
      const b = bytes[i]!;
      if (b < 0x80) {
        const c = String.fromCharCode(b);
        out += UNRESERVED.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
        i++;
        continue;
      }
      const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      let text: string | undefined;
      try {
        text = decoder.decode(new Uint8Array(bytes.slice(i, i + length)));
      } catch {
        text = undefined;
      }
      // Printable characters only: no controls, format characters or separators that would hide in a report.
      if (text !== undefined && length > 1 && !/[\p{C}\p{Z}]/u.test(text)) {
        out += text;
        i += length;
      } else {
        out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
        i++;
      }
    }
    return out;
  });
}

/** `text` cut to `length` UTF-16 units, on a code point (never inside a surrogate pair). */
function cut(text: string, length: number): string {
  const out = text.slice(0, length);
  return /[\uD800-\uDBFF]$/.test(out) ? out.slice(0, -1) : out;
}

/** The longest prefix of `text`, in whole code points, of at most `maxBytes` bytes of UTF-8 (one pass). */
function cutToBytes(text: string, maxBytes: number): string {
  // At most 3 bytes per UTF-16 unit (a pair is 4 bytes for 2 units): most paths need no walk.
  if (text.length * 3 <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const c = char.codePointAt(0)!;
    // A lone surrogate is encoded as U+FFFD: 3 bytes, as TextEncoder counts it.
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (bytes > maxBytes) return text.slice(0, end);
    end += char.length;
  }
  return text;
}

/**
 * The page a URL counts as: its path (no query string or fragment), safely percent-decoded, repeated slashes
 * collapsed, the trailing slash stripped (by default), lowercased when asked, cut at `maxLength` characters.
 *
 * @example
 * ```ts
 * normalizePath(new URL("https://example.com//Docs/caf%C3%A9/?utm_source=x")); // "/Docs/café"
 * ```
 */
export function normalizePath(url: URL, options: PathOptions = {}): string {
  let path = decodeSafe(url.pathname).replace(/\/{2,}/g, "/");
  if (options.lowercase) path = path.toLowerCase();
  if ((options.trailingSlash ?? "strip") === "strip" && path.length > 1) path = path.replace(/\/+$/, "") || "/";
  const max = options.maxLength ?? 256;
  if (path.length > max) path = cut(path, max);
  // And to what an object stores (1,024 bytes of UTF-8): 1,024 characters of a non-Latin path are up to 3 KB.
  path = cutToBytes(path, MAX_PAGE_BYTES);
  return path || "/";
}

/** Which pages are counted by name; the rest count as "(other)".
 *
 * @example
 * ```ts
 * const allow: PageAllowlist = ["/", "/pricing", /^\/blog\/[a-z0-9-]+$/];
 * ```
 */
export type PageAllowlist = ReadonlyArray<string | RegExp> | ((page: string) => boolean);

/** `page`, or "(other)" when an allowlist is given and does not allow it. */
export function allowed(page: string, list: PageAllowlist | undefined): string {
  if (list === undefined) return page;
  const ok =
    typeof list === "function" ? list(page) : list.some((p) => (typeof p === "string" ? p === page : ((p.lastIndex = 0), p.test(page))));
  return ok ? page : OTHER_PAGE;
}
