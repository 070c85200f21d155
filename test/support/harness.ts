// What test files import: the servers (started once by test/run.ts, or here when a file runs alone),
// clients with throwaway credentials, and unique table names.
import { after } from "node:test";
import { CounterClient, type ClientOptions } from "../../src/index.ts";
import type { NumberMode } from "../../src/core/numbers.ts";
import { credentials } from "./credentials.ts";
import { startFaultProxy } from "./fault-proxy.ts";
import { SERVERS_ENV, startServers, type ServerInfo } from "./servers.ts";

export type { ServerInfo };

export { credentials, SECRET, SESSION_TOKEN } from "./credentials.ts";

let cached: Promise<ServerInfo[]> | undefined;

/** The servers every behaviour test runs against. */
export function servers(): Promise<ServerInfo[]> {
  cached ??= (async () => {
    const fromRunner = process.env[SERVERS_ENV];
    if (fromRunner) return JSON.parse(fromRunner) as ServerInfo[];
    const running = await startServers();
    after(() => running.stop());
    return running.servers;
  })();
  return cached;
}

let tableCounter = 0;
/** A table name no other test uses. */
export function uniqueTable(prefix = "t"): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${(tableCounter++).toString(36)}`;
}

/** The transport the suite runs on: test/run.ts runs the client suites again with `fetch` (the default on Node is node:http). */
export const TRANSPORT = process.env.DYNACOUNT_TEST_TRANSPORT as ClientOptions["transport"];

/** A client for `endpoint` with the test credentials and no env lookups. */
export function clientFor<M extends NumberMode = "number">(endpoint: string, options: ClientOptions<M> = {}): CounterClient<M> {
  return new CounterClient<M>({
    endpoint,
    region: "us-east-1",
    credentials,
    env: {},
    ...(TRANSPORT && { transport: TRANSPORT }),
    ...options,
  });
}

/** A client on a fresh table that exists. */
export async function freshTable<M extends NumberMode = "number">(
  endpoint: string,
  options: ClientOptions<M> = {},
): Promise<CounterClient<M>> {
  const client = clientFor<M>(endpoint, { tableName: uniqueTable(), ...options });
  await client.createTable();
  return client;
}

/** A fresh table, a fault proxy in front of its server (closed after the test), a client through the proxy
 * and a direct one to check the truth. */
export async function throughProxy(endpoint: string, options: ClientOptions = {}) {
  const direct = await freshTable(endpoint);
  const proxy = await startFaultProxy(endpoint);
  after(() => proxy.close());
  const client = clientFor(proxy.endpoint, { tableName: direct.table.tableName, ...options });
  return { direct, proxy, client };
}

/** Resolves to the error `promise` rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection, but the promise resolved");
}
