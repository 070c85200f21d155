// Configuration variables from a Worker binding, a getter or the runtime's environment.
/** Where configuration variables come from: a Worker's `env`, or a function that reads one variable.
 *
 * @example
 * ```ts
 * new CounterClient({ env });                         // a Worker binding object
 * new CounterClient({ env: (name) => secrets.get(name) }); // a getter
 * ```
 */
export type EnvSource = Record<string, unknown> | ((name: string) => string | undefined);

type Reader = (name: string) => string | undefined;

interface RuntimeGlobals {
  Deno?: { env: { get(name: string): string | undefined } };
  Bun?: { env: Record<string, string | undefined> };
  process?: { env?: Record<string, string | undefined> };
}

/**
 * The runtime's own environment, read one variable at a time: Deno grants `--allow-env=NAME` per variable
 * and throws for the others, so nothing here lists the whole environment.
 */
function runtimeReader(): Reader {
  const g = globalThis as RuntimeGlobals;
  if (g.Deno?.env) {
    const denoEnv = g.Deno.env;
    return (name) => {
      try {
        return denoEnv.get(name);
      } catch {
        return undefined; // not permitted: treated as unset
      }
    };
  }
  const vars = g.Bun?.env ?? g.process?.env;
  return vars ? (name) => vars[name] : () => undefined;
}

/** A reader over `source`, or over the runtime's environment when none is given. */
export function envReader(source?: EnvSource): Reader {
  if (typeof source === "function") return (name) => nonEmpty(source(name));
  if (source) return (name) => nonEmpty(source[name]);
  const read = runtimeReader();
  return (name) => nonEmpty(read(name));
}

const nonEmpty = (value: unknown): string | undefined =>
  typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
