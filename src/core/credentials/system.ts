// What the credential sources need of the runtime: files, the home directory, HTTP, and Deno's permission refusals.
import { CounterError } from "../errors.js";
import type { Reader } from "../env.js";

// Node's and Bun's modules are reached through process.getBuiltinModule (Node ≥ 20.16, Bun) and Deno's through
// its global, all at run time: no import a bundler would follow into a Worker. The web build never calls this
// file (DYNACOUNT_WEB_BUILD), so a Worker bundle leaves it out.

interface NodeFs {
  readFileSync(path: string, encoding: "utf8"): string;
}
interface NodeOs {
  homedir(): string;
}
type Permission = { name: "read"; path: string } | { name: "net"; host: string };
interface Globals {
  Deno?: {
    readTextFileSync(path: string): string;
    build?: { os?: string };
    permissions: { querySync(descriptor: Permission): { state: string } };
  };
  process?: { getBuiltinModule?: (id: string) => unknown };
}

/**
 * What Deno's permissions kept from a lookup, as the flags that would allow it. The chain collects them and
 * names them in its error, so a refusal is never mistaken for "not configured" or for a network failure.
 *
 * @example
 * ```ts
 * const refusals = new Refusals();
 * refusals.add("env", "HOME");
 * refusals.flags(); // "--allow-env=HOME"
 * ```
 */
export class Refusals {
  readonly #seen: Record<"env" | "read" | "net", Set<string>> = { env: new Set(), read: new Set(), net: new Set() };

  add(kind: "env" | "read" | "net", what: string): void {
    this.#seen[kind].add(what);
  }

  /** Whether `what` was refused. */
  has(kind: "env" | "read" | "net", what: string): boolean {
    return this.#seen[kind].has(what);
  }

  /** The flags to add, e.g. `--allow-env=HOME,AWS_PROFILE --allow-read=/home/me/.aws/credentials`; "" when none. */
  flags(): string {
    return Object.entries(this.#seen)
      .filter(([, set]) => set.size > 0)
      .map(([kind, set]) => `--allow-${kind}=${[...set].join(",")}`)
      .join(" ");
  }
}

/**
 * What each source of the default chain is given: the variables as the client saw them when it was built, the
 * home directory, the client's region, and where to record refusals and where it looked.
 */
export interface ChainContext {
  env: Reader;
  home: string | undefined;
  region: string;
  refusals: Refusals;
  /** One line per place looked at without finding credentials, for the error when none is found. */
  notes: string[];
}

const g = globalThis as Globals;

/** Node's or Bun's module `id`, when this runtime has one to give (Deno is asked through its own API). */
function builtin<T>(id: string): T | undefined {
  return g.Deno ? undefined : (g.process?.getBuiltinModule?.(id) as T | undefined);
}

/** Whether this runtime can read files here: Deno, Bun, or Node ≥ 20.16 (process.getBuiltinModule). */
export const canReadFiles = (): boolean => !!g.Deno || typeof g.process?.getBuiltinModule === "function";

/** Whether Deno grants `permission` (elsewhere: always). Asked without prompting; what is not granted is refused. */
function granted(permission: Permission, refusals: Refusals, flag: string): boolean {
  const deno = g.Deno;
  if (!deno) return true;
  let state = "denied";
  try {
    state = deno.permissions.querySync(permission).state;
  } catch {
    // no permissions.querySync: treated as not granted
  }
  if (state === "granted") return true;
  refusals.add(permission.name, flag);
  return false;
}

/**
 * The home directory, as the AWS SDKs find it: HOME, USERPROFILE, HOMEDRIVE + HOMEPATH, then the OS's answer. On
 * Deno, only the one variable of its OS (USERPROFILE on Windows, else HOME), so a refusal names one flag.
 */
export function homeDirectory(env: Reader): string | undefined {
  if (g.Deno) return env(g.Deno.build?.os === "windows" ? "USERPROFILE" : "HOME");
  const drive = env("HOMEDRIVE");
  const path = env("HOMEPATH");
  return env("HOME") ?? env("USERPROFILE") ?? (drive && path ? drive + path : undefined) ?? builtin<NodeOs>("node:os")?.homedir();
}

/** `relative` under the home directory, with the separator the home directory uses. */
export const underHome = (home: string, ...parts: string[]): string => {
  const sep = home.includes("\\") && !home.includes("/") ? "\\" : "/";
  return [home.replace(/[\\/]+$/, ""), ...parts].join(sep);
};

/** Parsed files by path: read once per process, as the AWS SDKs do (a client built per request reads nothing). */
const files = /* @__PURE__ */ new Map<string, string | undefined>();

/**
 * The text of the file at `path`; undefined when there is no such file (or Deno refused to read it, which
 * `refusals` records). Any other failure (a directory, no permission) is a Config error naming the file.
 * Synchronous: the region is decided in the client's constructor.
 */
export function readText(path: string, refusals: Refusals, cache = true): string | undefined {
  if (cache && files.has(path)) return files.get(path);
  if (!granted({ name: "read", path }, refusals, path)) return undefined;
  let text: string | undefined;
  try {
    text = g.Deno ? g.Deno.readTextFileSync(path) : builtin<NodeFs>("node:fs")?.readFileSync(path, "utf8");
  } catch (error) {
    const { code, name } = error as { code?: unknown; name?: unknown };
    if (!(code === "ENOENT" || code === "ENOTDIR" || name === "NotFound")) {
      throw new CounterError("Config", `Cannot read ${path} (${String(code ?? name)})`, { cause: error });
    }
  }
  if (cache) files.set(path, text);
  return text;
}

/** One HTTP answer of a credential source, body read in full. */
export interface Reply {
  status: number;
  text: string;
}

/** A reply, or why there was none: no connection or answer in time, or Deno refusing the host. */
export type Outcome = Reply | { failed: "network" | "timeout" | "refused"; detail: string };

/**
 * Sends one request with `fetch` and reads the answer, within `timeoutMs` in all. Never throws: a source decides
 * what a missing answer means (for instance metadata it means "not on EC2"). Deno's permission for the host is
 * checked first, without prompting.
 */
export async function send(url: string, init: RequestInit, timeoutMs: number, refusals: Refusals): Promise<Outcome> {
  const { host, hostname, port, protocol } = new URL(url);
  const hostPort = `${hostname}:${port || (protocol === "https:" ? 443 : 80)}`;
  if (!granted({ name: "net", host: hostPort }, refusals, host))
    return { failed: "refused", detail: `network access to ${host} is not permitted` };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url, { ...init, signal: controller.signal });
    return { status: response.status, text: await response.text() };
  } catch (error) {
    if (controller.signal.aborted) return { failed: "timeout", detail: `no answer within ${timeoutMs} ms` };
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    const detail = typeof cause?.code === "string" ? cause.code : String((error as Error)?.message ?? error);
    return { failed: denoRefusal(error) ? "refused" : "network", detail };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether `error` is Deno refusing a permission (`NotCapable` since Deno 2, `PermissionDenied` before): not a
 * network failure, nothing was sent, and only a flag fixes it.
 */
export function denoRefusal(error: unknown): boolean {
  const name = (error as { name?: unknown } | undefined)?.name;
  return !!g.Deno && (name === "NotCapable" || name === "PermissionDenied");
}
