// `npm run dev:worker` as a user runs it: real `wrangler dev` (offline) on the example Worker against the
// embedded dynalite, driven over HTTP, then stopped with Ctrl-C (SIGINT), leaving nothing running.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import os from "node:os";
import { describe, it } from "node:test";
import { freePort } from "../support/servers.ts";
import { root } from "../support/workers.ts";

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
      assert.match(output, /curl .*\/stats\?page=/, "it says what to try");
      // Offline means quiet: no failed lookups of Cloudflare's hosts, no stack traces, no update notice.
      assert.doesNotMatch(output, /getaddrinfo|ENOTFOUND|update available|^\s+at /m, "nothing tries the network");
      const dynalite = /dynalite \(embedded\) on (http:\/\/\S+),/.exec(output)![1]!;

      // Three visitors open /hello in a browser; curl is not counted.
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${url}/hello`, {
          headers: {
            accept: "text/html",
            "sec-fetch-dest": "document",
            "user-agent": "Mozilla/5.0 Firefox/140.0",
            "cf-connecting-ip": `203.0.113.${i}`,
          },
        });
        assert.equal(res.status, 200);
        assert.match(await res.text(), /badge\.svg\?page=%2Fhello/);
      }
      await (await fetch(`${url}/hello`, { headers: { "user-agent": "curl/8.5.0" } })).text();
      const stats = async () => (await (await fetch(`${url}/stats?page=/hello`)).json()) as { total: number; today: { uniques: number } };
      // The views reach the object after the answers: flush until they are in DynamoDB.
      for (let i = 0; i < 100 && (await stats()).total < 3; i++) await (await fetch(`${url}/flush`, { method: "POST" })).text();
      const { total, today } = await stats();
      assert.deepEqual([total, today.uniques], [3, 3], "3 views by 3 visitors");
      assert.match(await (await fetch(`${url}/badge.svg?page=/hello`)).text(), /views: 3/);
      assert.match(await (await fetch(`${url}/chart.svg?page=/hello`)).text(), /last 24 hours: 3/);

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
