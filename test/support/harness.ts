// What test files import: the servers (started once by test/run.ts, or here when a file runs alone),
// clients with throwaway credentials, and unique table names.
import { after } from "node:test";
import { CounterClient, type ClientOptions } from "../../src/index.ts";
import type { NumberMode } from "../../src/numbers.ts";
import { SERVERS_ENV, startServers, type ServerInfo } from "./servers.ts";

export type { ServerInfo };

/** Recognisable fake secrets, so tests can prove they never leak. */
export const SECRET = "TESTSECRETdoNotLeak0123456789abcdefghijk";
export const SESSION_TOKEN = "TESTSESSIONTOKENdoNotLeakEitherZYXWVUT";
export const credentials = { accessKeyId: "AKIDTESTLOCAL", secretAccessKey: SECRET, sessionToken: SESSION_TOKEN };

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

/** A client for `endpoint` with the test credentials and no env lookups. */
export function clientFor<M extends NumberMode = "number">(endpoint: string, options: ClientOptions<M> = {}): CounterClient<M> {
  return new CounterClient<M>({ endpoint, region: "us-east-1", credentials, env: {}, ...options });
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

/** Resolves to the error `promise` rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection, but the promise resolved");
}
