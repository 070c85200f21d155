// Node's fast path: requests over node:http(s) with a keep-alive agent, signed with aws4fetch's signer on node:crypto.
import { AwsV4Signer } from "aws4fetch";
import { TimedOut, type Answer, type Post } from "./post.js";

/** aws4fetch's signer class, or one that computes its hashes differently ({@link nodeFastPath}). */
export type Signer = typeof AwsV4Signer;

/** The parts of Node's `http`/`https` and `crypto` modules used here (this code is type-checked without Node's types). */
interface NodeHttp {
  Agent: new (options: { keepAlive: boolean; maxSockets: number }) => unknown;
  request(url: string, options: object, callback: (response: NodeResponse) => void): NodeRequest;
}
interface NodeEmitter {
  on(event: string, listener: (value: never) => void): unknown;
}
interface NodeRequest extends NodeEmitter {
  end(body: string): void;
  destroy(): void;
}
interface NodeResponse extends NodeEmitter {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
  complete: boolean;
  setEncoding(encoding: "utf8"): void;
}
interface NodeDigest {
  update(data: string): { digest(): Uint8Array; digest(encoding: "hex"): string };
}
interface NodeCrypto {
  createHash(algorithm: "sha256"): NodeDigest;
  createHmac(algorithm: "sha256", key: string | Uint8Array | ArrayBuffer): NodeDigest;
}
interface NodeGlobals {
  process?: { versions?: { node?: string }; getBuiltinModule?: (id: string) => unknown };
  Bun?: unknown;
  Deno?: unknown;
  navigator?: { userAgent?: string };
}

/**
 * Node's own HTTP(S) client and a signer on `node:crypto`, when this is Node itself (not Bun, Deno or workerd,
 * which also define `process`) and it has `process.getBuiltinModule` (Node ≥ 20.16); else undefined. On Node,
 * `fetch` (undici, web streams, a `Request` and a `Response` per call) costs about twice the CPU of a request
 * through `node:http`, and each WebCrypto call is a round trip to a worker thread: aws4fetch makes three per
 * request, about 45 % of a request's CPU. The modules are looked up at run time, so no bundler follows them
 * into a Worker.
 */
export function nodeFastPath(): { post: Post; Signer: Signer } | undefined {
  // The build for workerd/worker/browser (package.json `exports` conditions) defines DYNACOUNT_WEB_BUILD: this
  // folds to `undefined` and the rest of the file is left out of a Worker, ~0.8 KB gzip it would never run.
  return typeof DYNACOUNT_WEB_BUILD === "undefined" ? (node ??= onNode()) : undefined;
}
let node: { post: Post; Signer: Signer } | undefined;

function onNode(): { post: Post; Signer: Signer } | undefined {
  const g = globalThis as NodeGlobals;
  const load = g.process?.getBuiltinModule;
  if (!g.process?.versions?.node || g.Bun || g.Deno || g.navigator?.userAgent === "Cloudflare-Workers" || typeof load !== "function")
    return undefined;
  return { post: nodePost(load), Signer: nodeSigner(load("node:crypto") as NodeCrypto) };
}
declare const DYNACOUNT_WEB_BUILD: true | undefined;

function nodePost(load: (id: string) => unknown): Post {
  // Loaded on first use, one per scheme: node:https alone takes ~5 ms to load, for nothing on an http endpoint.
  // One agent per scheme for the whole process, as undici shares one pool: connections are reused across
  // clients. At most 64 connections per host (the AWS SDK allows 50): a burst of a thousand calls queues for a
  // connection instead of opening a thousand at once, which overflows a server's accept queue into resets.
  const clients: { [scheme: string]: { module: NodeHttp; agent: unknown } } = {};
  const client = (scheme: "http" | "https") => {
    if (clients[scheme]) return clients[scheme];
    const module = load(`node:${scheme}`) as NodeHttp;
    return (clients[scheme] = { module, agent: new module.Agent({ keepAlive: true, maxSockets: 64 }) });
  };
  // A timer that destroys the request, not an AbortSignal: handing node:http a signal costs ~50 µs of CPU per
  // request on Node 20 (a quarter of the whole request), a timer a few.
  return (url, headers, body, timeoutMs) =>
    new Promise<Answer>((resolve, reject) => {
      const { module, agent } = client(url.startsWith("https:") ? "https" : "http");
      const fail = (error: unknown) => (clearTimeout(timer), reject(error));
      const request = module.request(url, { method: "POST", headers: Object.fromEntries(headers), agent }, (response) => {
        let text = "";
        response.setEncoding("utf8"); // decodes characters split across chunks
        response.on("data", (chunk: string) => (text += chunk));
        response.on("end", () => {
          clearTimeout(timer);
          const id = response.headers["x-amzn-requestid"];
          resolve({ status: response.statusCode ?? 0, requestId: typeof id === "string" ? id : undefined, text });
        });
        response.on("error", fail);
        // A connection closed mid-body: what fetch reports as a network error.
        response.on(
          "close",
          () =>
            response.complete || fail(Object.assign(new Error("the connection closed before the answer ended"), { code: "ECONNRESET" })),
        );
      });
      // Rejected first, so whatever the destroyed request reports next is ignored.
      const timer = setTimeout(() => (reject(new TimedOut()), request.destroy()), timeoutMs);
      request.on("error", fail);
      request.end(body);
    });
}

/**
 * aws4fetch's signer with its three hashes computed by `node:crypto`, synchronously: the canonical request,
 * string to sign, scope and header stay aws4fetch's; only `hexBodyHash`, `stringToSign` and `signature` (its
 * public methods) are replaced, and each does exactly what aws4fetch's does. Signing keys go in the same
 * cache, as the same bytes.
 */
function nodeSigner(crypto: NodeCrypto): Signer {
  const sha256 = (text: string) => crypto.createHash("sha256").update(text).digest("hex");
  const hmac = (key: string | Uint8Array | ArrayBuffer, text: string) => crypto.createHmac("sha256", key).update(text);
  return class NodeSigner extends AwsV4Signer {
    override async hexBodyHash(): Promise<string> {
      return typeof this.body === "string" && !this.headers.has("X-Amz-Content-Sha256") ? sha256(this.body) : super.hexBodyHash();
    }

    override async stringToSign(): Promise<string> {
      return ["AWS4-HMAC-SHA256", this.datetime, this.credentialString, sha256(await this.canonicalString())].join("\n");
    }

    override async signature(): Promise<string> {
      const date = this.datetime.slice(0, 8);
      const cacheKey = [this.secretAccessKey, date, this.region, this.service].join();
      let key = this.cache.get(cacheKey);
      if (!key) {
        const kDate = hmac(`AWS4${this.secretAccessKey}`, date).digest();
        const kRegion = hmac(kDate, this.region).digest();
        const kService = hmac(kRegion, this.service).digest();
        // A copy as a plain ArrayBuffer, the type aws4fetch's cache holds (a Buffer may view a shared pool).
        this.cache.set(cacheKey, (key = new Uint8Array(hmac(kService, "aws4_request").digest()).buffer));
      }
      return hmac(key, await this.stringToSign()).digest("hex");
    }
  };
}
