// How one signed POST reaches DynamoDB: the platform's fetch, or Node's own HTTP client on Node.

/** DynamoDB's answer to one attempt, body read in full. */
export interface Answer {
  status: number;
  requestId: string | undefined;
  text: string;
}

/**
 * Sends one signed POST and reads the whole answer. Rejects on a network failure (with the platform's error,
 * whose `code`/`cause` tell a refused connection from a reset), and with {@link TimedOut} when the whole
 * answer, body included, has not arrived within `timeoutMs`.
 */
export type Post = (url: string, headers: Headers, body: string, timeoutMs: number) => Promise<Answer>;

/** What a {@link Post} rejects with when its time ran out; the transport turns it into a `Timeout` error. */
export class TimedOut extends Error {}

/**
 * What the `fetch` option takes: a function called as `fetch(url, init)`. Narrower than `typeof fetch` on
 * purpose: a wrapper like `(url, init) => fetch(url, init)` is not a runtime's whole `fetch` (Bun's has a
 * `preconnect` too), and `globalThis.fetch` fits either way.
 *
 * @example
 * ```ts
 * new CounterClient({ fetch: (url, init) => (requests++, fetch(url, init)) });
 * ```
 */
export type Fetch = (url: string, init: RequestInit) => Promise<Response>;

/**
 * Over `fetch(url, init)` (the global one, looked up per call, unless `send` is given) with one `AbortSignal`
 * per attempt: no `Request` object, which on Node costs ~15 % of a request's CPU for nothing the call needs.
 */
export const fetchPost =
  (send?: Fetch): Post =>
  async (url, headers, body, timeoutMs) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const response = await (send ?? fetch)(url, { method: "POST", headers, body, signal: controller.signal });
      return { status: response.status, requestId: response.headers.get("x-amzn-requestid") ?? undefined, text: await response.text() };
    } catch (error) {
      throw controller.signal.aborted ? new TimedOut() : error;
    } finally {
      clearTimeout(timer);
    }
  };
