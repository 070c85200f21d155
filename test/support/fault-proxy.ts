// A loopback HTTP proxy between the client and a real DynamoDB server that injects faults: throttling,
// 5xx before or after the server applied the request, dropped answers, resets, delays and hangs.
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type Fault =
  | "pass"
  | "throttle" // 400 ThrottlingException, not forwarded
  | "error500" // 500, not forwarded
  | "error500-after" // forwarded (applied), then 500
  | "drop-after" // forwarded (applied), then the connection is destroyed before the answer
  | "reset" // connection destroyed before forwarding
  | "hang" // accepted, never answered
  | "forbidden" // 403 with a non-JSON body
  | { status: number; type: string; message?: string } // DynamoDB's error JSON with this status and __type, not forwarded
  | { delayMs: number } // forwarded after a delay
  | { hold: Promise<unknown> } // forwarded once the promise settles (a request overtaken by another)
  | { rewrite: (request: string) => { request: string; response?: (answer: string) => string } }; // both ends rewritten

export interface RequestInfo {
  /** 1-based count of requests seen. */
  n: number;
  /** The operation, e.g. "UpdateItem". */
  operation: string;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export interface FaultProxy {
  endpoint: string;
  /** Requests seen, by operation. */
  seen: Map<string, number>;
  /** Requests forwarded to the server, by operation. */
  forwarded: Map<string, number>;
  /** Faults injected, by kind. */
  injected: Map<string, number>;
  /** Bodies of the server's 200 answers that reached the client, in order (what the client was told). */
  delivered: { operation: string; body: string }[];
  setFault(decide: (info: RequestInfo) => Fault): void;
  /** Resolves once no request is in progress in the proxy (held or being forwarded). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

export async function startFaultProxy(target: string, decide: (info: RequestInfo) => Fault = () => "pass"): Promise<FaultProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const seen = new Map<string, number>();
  const forwarded = new Map<string, number>();
  const injected = new Map<string, number>();
  const delivered: { operation: string; body: string }[] = [];
  const sockets = new Set<Socket>();
  let n = 0;
  let inProgress = 0;
  const idleWaiters: (() => void)[] = [];

  const forward = (req: http.IncomingMessage, body: Buffer, operation: string) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      bump(forwarded, operation);
      const out = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      out.on("error", reject);
      out.end(body);
    });

  const server = http.createServer(async (req, res) => {
    inProgress++;
    try {
      // A client that goes away mid-request (its runtime stopped, the proxy closed) aborts the body read: the
      // request is over, not an unhandled rejection.
      await handle(req, res).catch(() => req.socket.destroy());
    } finally {
      if (--inProgress === 0) for (const w of idleWaiters.splice(0)) w();
    }
  });
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "?";
    bump(seen, operation);
    const fault = decide({ n: ++n, operation, body: body.toString(), headers: req.headers });
    const kind =
      typeof fault === "string"
        ? fault
        : "delayMs" in fault
          ? "delay"
          : "hold" in fault
            ? "hold"
            : "status" in fault
              ? "answer"
              : "rewrite";
    if (kind !== "pass") bump(injected, kind);
    const json = (status: number, type: string, message: string) => {
      res.writeHead(status, { "content-type": "application/x-amz-json-1.0", "x-amzn-requestid": `proxy-${n}` });
      res.end(JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message }));
    };
    try {
      switch (kind) {
        case "throttle":
          return json(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.");
        case "error500":
          return json(500, "InternalServerError", "Internal server error");
        case "answer": {
          const { status, type, message = type } = fault as Extract<Fault, { status: number }>;
          return json(status, type, message);
        }
        case "forbidden":
          res.writeHead(403, { "content-type": "text/html" });
          return res.end("<html>403 Forbidden</html>");
        case "reset":
          return req.socket.destroy();
        case "hang":
          return;
        case "delay":
          await new Promise((r) => setTimeout(r, (fault as { delayMs: number }).delayMs));
          break;
        case "hold":
          await (fault as { hold: Promise<unknown> }).hold.catch(() => undefined);
          break;
      }
      const rewrite = kind === "rewrite" ? (fault as Extract<Fault, { rewrite: unknown }>).rewrite(body.toString()) : undefined;
      const sent = rewrite ? Buffer.from(rewrite.request) : body;
      if (rewrite) req.headers["content-length"] = String(sent.length);
      const answer = await forward(req, sent, operation);
      if (kind === "drop-after") return req.socket.destroy();
      if (kind === "error500-after") return json(500, "InternalServerError", "Internal server error");
      if (res.destroyed) return;
      if (rewrite?.response) {
        const rewritten = Buffer.from(rewrite.response(answer.body.toString()));
        const headers: http.OutgoingHttpHeaders = { ...answer.headers, "content-length": String(rewritten.length) };
        delete headers["x-amz-crc32"];
        res.writeHead(answer.status, headers);
        return res.end(rewritten);
      }
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
      if (answer.status === 200) delivered.push({ operation, body: answer.body.toString() });
    } catch {
      req.socket.destroy();
    }
  };
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    forwarded,
    injected,
    delivered,
    setFault(d) {
      decide = d;
    },
    idle: () => (inProgress === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r))),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A small seeded PRNG (mulberry32), so fault schedules repeat from run to run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
