// The scripts a newcomer runs first, called by their names as the README gives them, with no AWS settings at all:
// `npm run demo` and `npm run example:deno` start an embedded dynalite and show the library working against it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { root } from "../support/workers.ts";

/** Runs `npm run <script>` with every AWS_* variable removed; resolves to its exit code and output. */
function npmRun(script: string): Promise<{ code: number | null; output: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("AWS_")));
  return new Promise((resolve) => {
    const child = spawn("npm", ["run", script], { cwd: root, env: { ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk));
    child.on("exit", (code) => resolve({ code, output }));
  });
}

describe("the first scripts, by name, with no AWS settings", { timeout: 180_000 }, () => {
  it("npm run demo: counters, ids, page views and rate limits against the embedded dynalite", async () => {
    const { code, output } = await npmRun("demo");
    assert.equal(code, 0, output);
    assert.match(output, /embedded dynalite at http:\/\/127\.0\.0\.1:\d+/);
    assert.match(output, /increment\("page:\/home", \{ by: 5 \}\)\s+7\n/);
    assert.match(output, /ids handed out\s+1000 unique ids/);
    assert.match(output, /rate limiter\s+10 allowed, 15 blocked/);
    assert.match(output, /\ndone\.\n/);
  });

  it("npm run example:deno: the Deno example counts its events exactly, in one write per kind", async () => {
    const { code, output } = await npmRun("example:deno");
    assert.equal(code, 0, output);
    const line = output.split("\n").find((l) => l.startsWith('{"runtime":"deno'));
    assert.ok(line, output);
    const result = JSON.parse(line) as { total: number; requests: number; counts: Record<string, number> };
    assert.deepEqual(
      { total: result.total, requests: result.requests, counts: result.counts },
      { total: 10_000, requests: 4, counts: { signup: 2500, login: 5000, purchase: 1250, logout: 1250 } },
    );
  });
});
