// Starts real DynamoDB-compatible servers on loopback: dynalite (in this process) and DynamoDB Local
// (the official jar shipped in amplify-dynamodb-simulator, under Java 17).
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { createServer, type AddressInfo } from "node:net";
import path from "node:path";

export interface ServerInfo {
  name: "dynalite" | "ddblocal";
  endpoint: string;
  /** Whether the server supports transactions (dynalite does not). */
  transactions: boolean;
  /** Whether the server has the TTL API (dynalite does not). */
  ttl: boolean;
}

export interface RunningServers {
  servers: ServerInfo[];
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once `endpoint` answers a ListTables call, polling on a short interval until `deadline`. */
async function waitForDynamo(endpoint: string, child?: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  child?.once("exit", (code) => (exited = `exited with ${code}`));
  for (;;) {
    if (exited) throw new Error(`DynamoDB Local ${exited}`);
    try {
      const res = await fetch(endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/x-amz-json-1.0",
          "x-amz-target": "DynamoDB_20120810.ListTables",
          authorization: "AWS4-HMAC-SHA256 Credential=probe/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        },
        body: "{}",
      });
      await res.text();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${endpoint} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startDynalite(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const dynalite = require("dynalite") as (o: object) => import("node:http").Server;
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

export async function startDynamoDBLocal(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const jarDir = path.join(path.dirname(require.resolve("amplify-dynamodb-simulator/package.json")), "emulator");
  const port = await freePort();
  const child = spawn(
    "java",
    [
      "-Xmx512m",
      "-Djava.library.path=./DynamoDBLocal_lib",
      "-jar",
      "DynamoDBLocal.jar",
      "-inMemory",
      "-disableTelemetry",
      "-port",
      String(port),
    ],
    { cwd: jarDir, stdio: ["ignore", "ignore", "inherit"] },
  );
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (e) => reject(new Error(`cannot start java for DynamoDB Local (${e.message}); install Java 17`)));
  });
  await spawned;
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitForDynamo(endpoint, child);
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return {
    endpoint,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export async function startServers(): Promise<RunningServers> {
  const [lite, local] = await Promise.all([startDynalite(), startDynamoDBLocal()]);
  return {
    servers: [
      { name: "dynalite", endpoint: lite.endpoint, transactions: false, ttl: false },
      { name: "ddblocal", endpoint: local.endpoint, transactions: true, ttl: true },
    ],
    stop: async () => {
      await Promise.all([lite.stop(), local.stop()]);
    },
  };
}

export const SERVERS_ENV = "DYNACOUNT_TEST_SERVERS";
