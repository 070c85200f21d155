// `npm run dev:worker` as a user runs it: real `wrangler dev` (offline) on the example Worker against the
// embedded dynalite, driven over HTTP, then stopped with Ctrl-C (SIGINT), leaving nothing running.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import os from "node:os";
import { describe, it } from "node:test";
import { freePort } from "./support/servers.ts";
import { root } from "./support/workers.ts";

describe("npm run dev:worker", { timeout: 180_000 }, () => {
  it("serves the example Worker on wrangler dev with the embedded database, and Ctrl-C stops everything", async () => {
    const port = await freePort();
    const before = new Set(readdirSync(os.tmpdir()).filter((f) => f.startsWith("dynacount-dev-")));
    // What `npm run dev:worker` runs after its build (the suite has just built dist).
    const child = spawn(process.execPath, ["--import", "tsx", "examples/worker/dev.ts"], {
      cwd: root,
      env: { ...process.env, PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const ready = new Promise<string>((resolve, reject) => {
      const read = (chunk: Buffer) => {
        output += chunk;
        const m = /dev:worker ready (http:\/\/\S+)/.exec(output);
        if (m) resolve(m[1]!);
      };
      child.stdout.on("data", read);
      child.stderr.on("data", (chunk: Buffer) => (output += chunk));
      void exited.then((code) => reject(new Error(`dev:worker exited ${code} before it was ready:\n${output.slice(-3000)}`)));
    });
    try {
      const url = await ready;
      assert.equal(url, `http://127.0.0.1:${port}`);
      assert.match(output, /curl .*\/count\?page=/, "it says what to try");
      // Offline means quiet: no failed lookups of Cloudflare's hosts, no stack traces, no update notice.
      assert.doesNotMatch(output, /getaddrinfo|ENOTFOUND|update available|^\s+at /m, "nothing tries the network");
      const dynalite = /dynalite \(embedded\) on (http:\/\/\S+),/.exec(output)![1]!;

      for (let i = 0; i < 3; i++) assert.equal((await fetch(`${url}/hello`)).status, 200);
      const count = async () => ((await (await fetch(`${url}/count?page=/hello`)).json()) as { views: number }).views;
      assert.equal(await count(), 3, "buffered views count");
      assert.deepEqual(await (await fetch(`${url}/flush?page=/hello`, { method: "POST" })).json(), { keys: 1, requests: 1 });
      assert.equal(await count(), 3, "flushed views count");

      const statuses: number[] = [];
      let first: Response | undefined;
      let denied: Response | undefined;
      for (let i = 0; i < 11; i++) {
        const res = await fetch(`${url}/api/orders`);
        await res.text();
        statuses.push(res.status);
        first ??= res;
        if (res.status === 429) denied = res;
      }
      assert.deepEqual(statuses, [...Array(10).fill(200), 429], "RATE_LIMIT 10 a minute, then 429");
      assert.match(first!.headers.get("ratelimit") ?? "", /r=9/);
      assert.equal(first!.headers.get("ratelimit-policy"), `"default";q=10;w=60`);
      assert.ok(Number(denied!.headers.get("retry-after")) >= 1);

      child.kill("SIGINT");
      assert.equal(await exited, 0);
      await assert.rejects(fetch(`${url}/hello`), "the Worker is gone");
      await assert.rejects(fetch(dynalite), "the database is gone");
      const left = readdirSync(os.tmpdir()).filter((f) => f.startsWith("dynacount-dev-") && !before.has(f));
      assert.deepEqual(left, [], "its temporary state folder is removed");
      assert.ok(!existsSync(`${root}/.dev.vars`), "no .dev.vars written");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
