// The default chain as a user meets it: a process with no `env` and no `credentials` option, its variables and
// home directory controlled (a child process with a temporary HOME), on Node and on Bun.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { startContainer, startImds, startSts } from "../support/aws-endpoints.ts";
import { freePort } from "../support/servers.ts";
import { freshTable, servers } from "../support/harness.ts";
import { root } from "../support/workers.ts";

const dynalite = (await servers()).find((s) => s.name === "dynalite")!;

/** What the child prints: the region, the increments' result or the error's fields. */
interface Outcome {
  region: string;
  value?: number;
  error?: { code: string; message: string; retryable: boolean };
}

/**
 * Runs a script in a child process whose whole environment is `env` (plus PATH): it builds
 * `new CounterClient({ endpoint, tableName })` (no env, no credentials) and increments twice.
 */
async function run(runtime: "node" | "bun", env: Record<string, string>, tableName: string): Promise<Outcome> {
  const entry = path.join(root, "src/index.ts");
  const script = `
    const { CounterClient } = await import(${JSON.stringify(entry)});
    const client = new CounterClient({ endpoint: ${JSON.stringify(dynalite.endpoint)}, tableName: ${JSON.stringify(tableName)} });
    try {
      await client.increment("k");
      console.log(JSON.stringify({ region: client.region, value: await client.increment("k") }));
    } catch (e) {
      console.log(JSON.stringify({ region: client.region, error: { code: e.code, message: e.message, retryable: e.retryable } }));
    }`;
  const [command, args] =
    runtime === "node"
      ? [process.execPath, ["--import", "tsx", "--input-type=module", "-e", script]]
      : [path.join(root, "node_modules/.bin/bun"), ["-e", script]];
  const { stdout } = await promisify(execFile)(command, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", ...env },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Outcome;
}

function home(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "dynacount-chain-"));
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

for (const runtime of ["node", "bun"] as const) {
  describe(`the default chain in a ${runtime} process`, () => {
    it("~/.aws/credentials and ~/.aws/config under AWS_PROFILE: the profile's keys and region", async () => {
      const table = (await freshTable(dynalite.endpoint)).table.tableName;
      const HOME = home({
        ".aws/credentials":
          "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = w\n",
        ".aws/config": "[default]\nregion = us-west-1\n[profile work]\nregion = eu-west-2\n",
      });
      const imds = `http://127.0.0.1:${await freePort()}`;
      assert.deepEqual(await run(runtime, { HOME, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds }, table), { region: "us-west-1", value: 2 });
      assert.deepEqual(await run(runtime, { HOME, AWS_PROFILE: "work", AWS_EC2_METADATA_SERVICE_ENDPOINT: imds }, table), {
        region: "eu-west-2",
        value: 4,
      });
    });

    it("a role from the shared files through STS, then container credentials, then instance metadata", async () => {
      const table = (await freshTable(dynalite.endpoint)).table.tableName;
      const source = { accessKeyId: "AKIDCHILDSOURCE", secretAccessKey: "child-source-secret" };
      const sts = await startSts([source]);
      const HOME = home({
        ".aws/credentials": `[base]\naws_access_key_id = ${source.accessKeyId}\naws_secret_access_key = ${source.secretAccessKey}\n`,
        ".aws/config": "[profile app]\nrole_arn = arn:aws:iam::1:role/app\nsource_profile = base\n",
      });
      const imds = await startImds();
      const container = await startContainer({ token: "t0ken" });
      assert.equal((await run(runtime, { HOME, AWS_PROFILE: "app", AWS_ENDPOINT_URL_STS: sts.url }, table)).value, 2);
      assert.equal(sts.calls.length, 1);
      assert.equal(
        (
          await run(
            runtime,
            { HOME: home({}), AWS_CONTAINER_CREDENTIALS_FULL_URI: container.url, AWS_CONTAINER_AUTHORIZATION_TOKEN: "t0ken" },
            table,
          )
        ).value,
        4,
      );
      assert.equal(container.seen.length, 1);
      assert.equal((await run(runtime, { HOME: home({}), AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url }, table)).value, 6);
      assert.deepEqual(imds.counts, { token: 1, list: 1, credentials: 1, rejected: 0 });
    });

    it("nothing anywhere: a Config error on the first request that names where it looked", async () => {
      const HOME = home({});
      const out = await run(runtime, { HOME, AWS_EC2_METADATA_DISABLED: "true" }, "AtomicCounters");
      assert.equal(out.error?.code, "Config");
      assert.equal(out.error?.retryable, false);
      assert.match(
        out.error!.message,
        /^No AWS credentials found\. Looked at the environment \(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set\)/,
      );
      assert.ok(out.error!.message.includes(`${HOME}/.aws/credentials and ${HOME}/.aws/config do not exist`), out.error!.message);
      assert.match(
        out.error!.message,
        /AWS_WEB_IDENTITY_TOKEN_FILE is not set.*AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set.*turned off by AWS_EC2_METADATA_DISABLED/,
      );
    });
  });
}
