// How one signed POST reaches DynamoDB: the platform's fetch, or Node's own HTTP client on Node.

/** DynamoDB's answer to one attempt, body read in full. */
export interface Answer {
  status: number;
  requestId: string | undefined;
  text: string;
}

/**
 * Sends one signed POST and reads the whole answer. Rejects on a network failure (with the platform's error,
 * whose `code`/`cause` tell a refused connection from a reset) and when `signal` aborts, body included.
 */
export type Post = (url: string, headers: Headers, body: string, signal: AbortSignal) => Promise<Answer>;

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
 * Over `fetch(url, init)` (the global one, looked up per call, unless `send` is given): no `Request` object,
 * which on Node costs ~15 % of a request's CPU for nothing the call needs.
 */
export const fetchPost =
  (send?: Fetch): Post =>
  async (url, headers, body, signal) => {
    const response = await (send ?? fetch)(url, { method: "POST", headers, body, signal });
    return { status: response.status, requestId: response.headers.get("x-amzn-requestid") ?? undefined, text: await response.text() };
  };

/** The parts of Node's `http`/`https` modules used here (this code is type-checked without Node's types). */
interface NodeHttp {
  Agent: new (options: { keepAlive: boolean; maxSockets: number }) => unknown;
  request(url: string, options: object, callback: (response: NodeResponse) => void): NodeRequest;
}
interface NodeEmitter {
  on(event: string, listener: (value: never) => void): unknown;
}
interface NodeRequest extends NodeEmitter {
  end(body: string): void;
}
interface NodeResponse extends NodeEmitter {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
  complete: boolean;
  setEncoding(encoding: "utf8"): void;
}
interface NodeGlobals {
  process?: { versions?: { node?: string }; getBuiltinModule?: (id: string) => unknown };
  Bun?: unknown;
  Deno?: unknown;
  navigator?: { userAgent?: string };
}

/**
 * Node's own HTTP(S) client with a keep-alive agent, when this is Node itself (not Bun, Deno or workerd,
 * which also define `process`) and it has `process.getBuiltinModule` (Node ≥ 20.16); else undefined. On Node,
 * `fetch` (undici, web streams, a `Request` and a `Response` per call) costs about twice the CPU of a request
 * through `node:http`. The modules are looked up at run time, so no bundler follows them into a Worker.
 */
export function nodePost(): Post | undefined {
  const g = globalThis as NodeGlobals;
  const load = g.process?.getBuiltinModule;
  if (!g.process?.versions?.node || g.Bun || g.Deno || g.navigator?.userAgent === "Cloudflare-Workers" || typeof load !== "function") return undefined;
  // Loaded on first use, one per scheme: node:https alone takes ~5 ms to load, for nothing on an http endpoint.
  // One agent per scheme for the whole process, as undici shares one pool: connections are reused across
  // clients. At most 64 connections per host (the AWS SDK allows 50): a burst of a thousand calls queues for a
  // connection instead of opening a thousand at once, which overflows a server's accept queue into resets.
  const client = (scheme: "http:" | "https:") => {
    if (nodeClients[scheme]) return nodeClients[scheme];
    const module = load(`node:${scheme.slice(0, -1)}`) as NodeHttp;
    return (nodeClients[scheme] = { module, agent: new module.Agent({ keepAlive: true, maxSockets: 64 }) });
  };
  return (url, headers, body, signal) =>
    new Promise<Answer>((resolve, reject) => {
      const { module, agent } = client(url.startsWith("https:") ? "https:" : "http:");
      const request = module.request(url, { method: "POST", headers: Object.fromEntries(headers), agent, signal }, (response) => {
        let text = "";
        response.setEncoding("utf8"); // decodes characters split across chunks
        response.on("data", (chunk: string) => (text += chunk));
        response.on("end", () => {
          const id = response.headers["x-amzn-requestid"];
          resolve({ status: response.statusCode ?? 0, requestId: typeof id === "string" ? id : undefined, text });
        });
        response.on("error", reject);
        // A connection closed mid-body: what fetch reports as a network error.
        response.on("close", () => response.complete || reject(Object.assign(new Error("the connection closed before the answer ended"), { code: "ECONNRESET" })));
      });
      request.on("error", reject);
      request.end(body);
    });
}

const nodeClients: { [scheme: string]: { module: NodeHttp; agent: unknown } } = {};
