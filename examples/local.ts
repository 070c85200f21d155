// `npm run example:bun|deno|node`: starts an embedded dynalite, then runs one example on its runtime against it.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const [runtime, ...args] = process.argv.slice(2);
if (!runtime) {
  console.error("usage: tsx examples/local.ts <bun|deno|node> <args…>");
  process.exit(2);
}
// The examples import the package by its name, which resolves to this repository's build.
if (runtime !== "deno" && !existsSync(path.join(root, "dist", "index.js"))) {
  console.error("dist/ is missing: run `npm run build` first (the npm scripts do).");
  process.exit(2);
}

const dynalite = createRequire(import.meta.url)("dynalite") as (options: object) => Server;
const server = dynalite({ createTableMs: 0 });
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
console.log(`embedded dynalite at ${endpoint}: ${runtime} ${args.join(" ")}\n`);

// Throwaway credentials: dynalite checks none, and nothing here can reach AWS.
const env = {
  ...process.env,
  AWS_ENDPOINT_URL_DYNAMODB: endpoint,
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "local",
  AWS_SECRET_ACCESS_KEY: "local-secret",
};
const command = runtime === "node" ? process.execPath : path.join(root, "node_modules", ".bin", runtime);
const child = spawn(command, args, { cwd: root, env, stdio: "inherit" });
const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
server.closeAllConnections?.();
await new Promise<void>((resolve) => server.close(() => resolve()));
process.exit(code);
