// Configuration variables from a Worker binding, a getter or the runtime's environment.
/** Where configuration variables come from: any object (a Worker's `env`, typed by `wrangler types` or not), or
 * a function that reads one variable. Variables it does not have are read from the runtime's environment.
 *
 * @example
 * ```ts
 * new CounterClient({ env });                              // a Worker binding object, e.g. wrangler's `Env`
 * new CounterClient({ env: (name) => secrets.get(name) }); // a getter
 * ```
 */
export type EnvSource = object | ((name: string) => string | undefined);

/** Reads one variable: a non-empty, trimmed string, or undefined. */
export type Reader = (name: string) => string | undefined;

interface RuntimeGlobals {
  Deno?: {
    env: { get(name: string): string | undefined };
    permissions: { querySync(descriptor: { name: "env"; variable: string }): { state: string } };
  };
  Bun?: { env: Record<string, string | undefined> };
  process?: { env?: Record<string, string | undefined> };
}

/**
 * The runtime's own environment, read one variable at a time: Deno grants `--allow-env=NAME` per variable and
 * throws (or prompts) for the others, so nothing here lists the whole environment, and a variable is read only
 * once its permission is known to be granted. One that is not is unset here and reported to `refused`.
 */
function runtimeReader(refused?: (name: string) => void): Reader {
  const g = globalThis as RuntimeGlobals;
  // Deno first: Deno 2 has a `process` too, whose env throws for what --allow-env does not grant. Deno never
  // loads the web build (its npm resolution has no workerd/worker/browser condition).
  const deno = g.Deno;
  if (typeof DYNACOUNT_WEB_BUILD === "undefined" && deno?.env) {
    return (name) => {
      try {
        if (deno.permissions.querySync({ name: "env", variable: name }).state === "granted") return deno.env.get(name);
      } catch {
        // a Deno without permissions.querySync: treated as not granted
      }
      refused?.(name);
      return undefined;
    };
  }
  const vars = g.Bun?.env ?? g.process?.env;
  return (name) => {
    try {
      return vars?.[name];
    } catch {
      return undefined; // a `process.env` that refuses (Deno's, should the web build ever run there)
    }
  };
}
declare const DYNACOUNT_WEB_BUILD: true | undefined;

/**
 * A reader over `source` that falls back to the runtime's environment for what `source` does not have: Hono's
 * `c.env` is a Worker's bindings on workerd but the server's own object on Node and Bun, and either way a
 * variable set for the process is found. `refused` hears of each variable Deno's permissions kept from it.
 */
export function envReader(source?: EnvSource, refused?: (name: string) => void): Reader {
  const runtime = runtimeReader(refused);
  const given =
    typeof source === "function" ? (source as Reader) : source ? (name: string) => (source as Record<string, unknown>)[name] : undefined;
  return (name) => nonEmpty(given?.(name)) ?? nonEmpty(runtime(name));
}

const nonEmpty = (value: unknown): string | undefined => (typeof value === "string" && value.trim() !== "" ? value.trim() : undefined);
