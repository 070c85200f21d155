// Runs Worker code in real workerd through miniflare, bundled the way wrangler bundles it (esbuild, the
// workerd/worker/browser conditions, no nodejs_compat). The browser platform also applies packages'
// "browser" field remappings, which the AWS SDK v3 needs in a Worker.
import { build } from "esbuild";
import { Miniflare, type MiniflareOptions } from "miniflare";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { credentials } from "./credentials.ts";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export async function bundleWorker(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [path.resolve(root, entry)],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["cloudflare:*"],
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

export const COMPATIBILITY_DATE = "2026-04-01";

export function startMiniflare(script: string, options: Partial<MiniflareOptions> = {}): Miniflare {
  return new Miniflare({
    modules: true,
    script,
    compatibilityDate: COMPATIBILITY_DATE,
    ...options,
  } as MiniflareOptions);
}

/** The test credentials and an endpoint as Worker bindings. */
export const awsBindings = (endpoint: string) => ({
  AWS_ENDPOINT_URL_DYNAMODB: endpoint,
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: credentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
});
