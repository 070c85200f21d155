// Runs Worker code in real workerd through miniflare, bundled the way wrangler bundles it (esbuild, the
// workerd/worker/browser conditions, no nodejs_compat). The browser platform also applies packages'
// "browser" field remappings, which the AWS SDK v3 needs in a Worker.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import type { TestContext } from "node:test";
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

/** A folder for Durable Object storage that outlives one miniflare instance, removed when the test `t` ends. */
export function persistDir(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), "dynacount-do-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** GETs `route` (POSTs `body` as JSON when given) on the test Worker; asserts a 200 and returns the JSON answer. */
export async function call<T = Record<string, unknown>>(mf: Miniflare, route: string, body?: unknown): Promise<T> {
  const res = await mf.dispatchFetch(`http://worker${route}`, body === undefined ? {} : { method: "POST", body: JSON.stringify(body) });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as T;
}
