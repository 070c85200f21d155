// Each source of the default chain against a loopback server that speaks its protocol: the shared files with
// profiles and roles (STS AssumeRole, signed), a web identity token (AssumeRoleWithWebIdentity), the container
// endpoint and EC2 instance metadata (IMDSv2); what is reported when none has credentials or one fails.
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { inspect } from "node:util";
import { CounterClient, CounterError, type ClientOptions } from "../../src/index.ts";
import { imdsJson, issued, signer, startContainer, startImds, startSts, stsError, stsXml, type Keys } from "../support/aws-endpoints.ts";
import { startFaultProxy } from "../support/fault-proxy.ts";
import { freePort } from "../support/servers.ts";
import { freshTable, rejection, servers, TRANSPORT } from "../support/harness.ts";

// Keys change with every source, and DynamoDB Local keeps a database per access key id: dynalite serves these.
const dynalite = (await servers()).find((s) => s.name === "dynalite")!;

// A given `env` falls back to the process's environment for what it lacks (or holds as ""): nothing of the
// machine running the tests may leak in. (Each test file runs in a process of its own.)
for (const name of Object.keys(process.env)) if (name.startsWith("AWS_")) delete process.env[name];

/** A home directory of its own, with `files` (relative path → text) written into it. */
function home(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), "dynacount-home-"));
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

/** `env` with a home directory of its own (empty unless given) and instance metadata at a closed port unless given. */
async function isolated(env: Record<string, string>): Promise<Record<string, string>> {
  return { AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${await freePort()}`, HOME: home(), ...env };
}

/** A client with `env` and no credentials on a fresh dynalite table, through a proxy recording which key signed each request. */
async function clientWith(env: Record<string, string>, options: Omit<ClientOptions, "env"> = {}) {
  const direct = await freshTable(dynalite.endpoint);
  const signers: (string | undefined)[] = [];
  const proxy = await startFaultProxy(dynalite.endpoint, (info) => (signers.push(signer(info.headers)), "pass"));
  after(() => proxy.close());
  const client = new CounterClient({
    endpoint: proxy.endpoint,
    env: await isolated(env),
    tableName: direct.table.tableName,
    ...options,
    ...(TRANSPORT && { transport: TRANSPORT }),
  });
  return { client, signers, proxy };
}

/** `error` is a CounterError none of whose texts holds any of `secrets`. */
function assertClean(error: unknown, secrets: (string | undefined)[]): asserts error is CounterError {
  assert.ok(error instanceof CounterError, String(error));
  const texts = [error.message, error.stack ?? "", JSON.stringify(error), inspect(error, { depth: 10 })];
  for (const text of texts) for (const s of secrets) if (s) assert.ok(!text.includes(s), `leaked ${s}: ${text.slice(0, 300)}`);
}

const SOURCE: Keys = {
  accessKeyId: "AKIDSOURCE0001",
  secretAccessKey: "source-secret-doNotLeak/+=",
  sessionToken: "source-token-doNotLeak/+=",
};

describe("shared files", () => {
  it("the default profile's keys in ~/.aws/credentials sign the requests", async () => {
    const dir = home({
      ".aws/credentials": `# mine\n[default]\naws_access_key_id = AKIDFILE0001\naws_secret_access_key = file-secret ; a comment\n`,
    });
    const { client, signers } = await clientWith({ HOME: dir });
    assert.equal(await client.increment("k"), 1);
    assert.deepEqual(signers, ["AKIDFILE0001"]);
  });

  it("AWS_PROFILE picks [profile x] in config and [x] in credentials (which wins key by key); the region comes from the profile", async () => {
    const dir = home({
      ".aws/config": `[default]\nregion = us-west-2\n\n[profile dev]\nregion = eu-west-3\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = config-secret\ns3 =\n  region = ap-south-1\n`,
      ".aws/credentials": `[dev]\naws_access_key_id = AKIDCREDFILE\n[profile dev]\naws_access_key_id = AKIDNOTAPROFILE\n`,
    });
    const { client, signers } = await clientWith({ HOME: dir, AWS_PROFILE: "dev" });
    assert.equal(client.region, "eu-west-3", "the profile's own region, not its s3 sub-section's, nor [default]'s");
    await client.increment("k");
    assert.deepEqual(signers, ["AKIDCREDFILE"]);
    // AWS_REGION still wins over the profile, and the region option over both.
    assert.equal((await clientWith({ HOME: dir, AWS_PROFILE: "dev", AWS_REGION: "ca-central-1" })).client.region, "ca-central-1");
    assert.equal((await clientWith({ HOME: dir, AWS_PROFILE: "dev" }, { region: "sa-east-1" })).client.region, "sa-east-1");
    assert.equal((await clientWith({ HOME: dir })).client.region, "us-west-2", "[default] in config");
  });

  it("AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE point elsewhere (~/ expanded)", async () => {
    const dir = home({
      "elsewhere/creds": `[default]\naws_access_key_id = AKIDELSEWHERE\naws_secret_access_key = s\n`,
      "cfg/config": `[default]\nregion = eu-north-1\n`,
    });
    const { client, signers } = await clientWith({
      HOME: dir,
      AWS_SHARED_CREDENTIALS_FILE: path.join(dir, "elsewhere/creds"),
      AWS_CONFIG_FILE: "~/cfg/config",
    });
    assert.equal(client.region, "eu-north-1");
    await client.increment("k");
    assert.deepEqual(signers, ["AKIDELSEWHERE"]);
  });

  it("role_arn + source_profile: STS AssumeRole signed with the source's keys (checked with the AWS SDK's signer), the role's keys sign DynamoDB", async () => {
    const sts = await startSts([SOURCE]);
    const dir = home({
      ".aws/credentials": `[base]\naws_access_key_id = ${SOURCE.accessKeyId}\naws_secret_access_key = ${SOURCE.secretAccessKey}\naws_session_token = ${SOURCE.sessionToken}\n`,
      ".aws/config": `[profile app]\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = base\nrole_session_name = my-session\nexternal_id = ext-1\nduration_seconds = 900\nregion = eu-central-1\n`,
    });
    const { client, signers } = await clientWith({ HOME: dir, AWS_PROFILE: "app", AWS_ENDPOINT_URL_STS: sts.url });
    assert.equal(await client.increment("k"), 1);
    await client.increment("k");
    assert.equal(sts.calls.length, 1, "assumed once, then cached until near expiry");
    const [call] = sts.calls;
    assert.deepEqual(call!.params, {
      RoleArn: "arn:aws:iam::123456789012:role/app",
      RoleSessionName: "my-session",
      DurationSeconds: "900",
      ExternalId: "ext-1",
    });
    assert.equal(call!.signedBy, SOURCE.accessKeyId);
    assert.equal(call!.region, "eu-central-1", "signed for the profile's region");
    assert.deepEqual(signers, ["ASIASTS000001", "ASIASTS000001"]);
  });

  it("a chain of roles (app → middle → base keys) assumes each in turn, each call signed with the previous role's keys", async () => {
    const first = issued(1);
    const dir = home({
      ".aws/credentials": `[base]\naws_access_key_id = ${SOURCE.accessKeyId}\naws_secret_access_key = ${SOURCE.secretAccessKey}\naws_session_token = ${SOURCE.sessionToken}\n`,
      ".aws/config": `[profile middle]\nrole_arn = arn:aws:iam::1:role/middle\nsource_profile = base\n[profile app]\nrole_arn = arn:aws:iam::2:role/app\nsource_profile = middle\n`,
    });
    // The first answer's keys must sign the second call: the STS double knows them.
    let n = 0;
    const answered = await startSts([SOURCE, first], (call) => ({ status: 200, body: stsXml(call.action, n++ === 0 ? first : issued(2)) }));
    const { client, signers } = await clientWith({
      HOME: dir,
      AWS_PROFILE: "app",
      AWS_ENDPOINT_URL_STS: answered.url,
      AWS_REGION: "us-east-2",
    });
    await client.increment("k");
    assert.deepEqual(
      answered.calls.map((c) => [c.params.RoleArn, c.signedBy, c.region]),
      [
        ["arn:aws:iam::1:role/middle", SOURCE.accessKeyId, "us-east-2"],
        ["arn:aws:iam::2:role/app", first.accessKeyId, "us-east-2"],
      ],
    );
    assert.match(answered.calls[0]!.params.RoleSessionName!, /^dynacount-\d+$/);
    assert.deepEqual(signers, ["ASIASTS000002"]);
  });

  it("STS refusing the role: AccessDenied naming the role and endpoint; the source's secrets STS echoes are scrubbed", async () => {
    const sts = await startSts([SOURCE], () => ({
      status: 403,
      body: stsError(
        "AccessDenied",
        `User with secret ${SOURCE.secretAccessKey} and token ${SOURCE.sessionToken} is not authorized to perform: sts:AssumeRole`,
      ),
    }));
    const dir = home({
      ".aws/credentials": `[base]\naws_access_key_id = ${SOURCE.accessKeyId}\naws_secret_access_key = ${SOURCE.secretAccessKey}\naws_session_token = ${SOURCE.sessionToken}\n`,
      ".aws/config": `[profile app]\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = base\n`,
    });
    const { client, proxy } = await clientWith({ HOME: dir, AWS_PROFILE: "app", AWS_ENDPOINT_URL_STS: sts.url });
    const error = await rejection(client.increment("k"));
    assertClean(error, [SOURCE.secretAccessKey, SOURCE.sessionToken]);
    assert.equal(error.code, "AccessDenied");
    assert.equal(error.awsType, "AccessDenied");
    assert.equal(error.requestId, "req-err");
    assert.match(
      error.message,
      /STS AssumeRole for arn:aws:iam::123456789012:role\/app at http:\/\/127\.0\.0\.1:\d+ answered 403 AccessDenied: User with secret \[redacted\] and token \[redacted\] is not authorized/,
    );
    assert.equal(proxy.seen.size, 0, "nothing reached DynamoDB");
  });

  it("STS failing (5xx, then unreachable) is a retryable error of its own, retried by the client's policy, never silence", async () => {
    let fail = 2;
    const sts = await startSts([SOURCE], (call) =>
      fail-- > 0
        ? { status: 503, body: stsError("ServiceUnavailable", "try later") }
        : { status: 200, body: stsXml(call.action, issued(9)) },
    );
    const dir = home({
      ".aws/credentials": `[base]\naws_access_key_id = ${SOURCE.accessKeyId}\naws_secret_access_key = ${SOURCE.secretAccessKey}\naws_session_token = ${SOURCE.sessionToken}\n[app]\nrole_arn = arn:aws:iam::1:role/app\nsource_profile = base\n`,
    });
    const { client, signers } = await clientWith({ HOME: dir, AWS_PROFILE: "app", AWS_ENDPOINT_URL_STS: sts.url });
    assert.equal(await client.increment("k"), 1, "two 503s ridden out by the retry budget (4 attempts)");
    assert.deepEqual(signers, ["ASIASTS000009"]);
    const closed = `http://127.0.0.1:${await freePort()}`;
    const down = await clientWith({ HOME: dir, AWS_PROFILE: "app", AWS_ENDPOINT_URL_STS: closed });
    const error = await rejection(down.client.increment("k"));
    assertClean(error, [SOURCE.secretAccessKey, SOURCE.sessionToken]);
    assert.equal(error.code, "Network");
    assert.equal(error.retryable, true);
    assert.equal(error.ambiguous, false);
    assert.match(error.message, /STS AssumeRole .* failed \(ECONNREFUSED\); nothing was sent to DynamoDB/);
  });

  it("a missing or empty AWS_PROFILE, a broken source_profile, a cycle, MFA and SSO profiles are Config errors naming the profile and the files", async () => {
    const dir = home({
      ".aws/credentials": `[empty]\nregion = eu-west-1\n`,
      ".aws/config": [
        "[profile orphan]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = nowhere",
        "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b",
        "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a",
        "[profile mfa]\nrole_arn = arn:aws:iam::1:role/m\nsource_profile = empty\nmfa_serial = arn:aws:iam::1:mfa/me",
        "[profile sso]\nsso_session = corp\nsso_account_id = 1\n",
        "[profile badsource]\nrole_arn = arn:aws:iam::1:role/x\ncredential_source = Somewhere\n",
      ].join("\n"),
    });
    const cases: [string, RegExp][] = [
      ["missing", /AWS_PROFILE is "missing", but .*credentials and .*config have no profile "missing"/],
      ["empty", /AWS_PROFILE is "empty", but profile "empty" in .* has no credentials/],
      ["orphan", /profile "orphan" .* names source_profile "nowhere", which is not there/],
      ["a", /source_profile makes a cycle \(b → a → b\)/],
      ["mfa", /needs an MFA code/],
      ["sso", /uses sso_session, which dynacount does not read.*aws configure export-credentials --profile sso/],
      ["badsource", /credential_source "Somewhere"; expected Environment, Ec2InstanceMetadata or EcsContainer/],
    ];
    for (const [profile, message] of cases) {
      const { client, proxy } = await clientWith({ HOME: dir, AWS_PROFILE: profile });
      const error = await rejection(client.get("k"));
      assert.ok(error instanceof CounterError && error.code === "Config", `${profile}: ${String(error)}`);
      assert.match(error.message, message, profile);
      assert.ok(error.message.includes(dir), `${profile}: names the files`);
      assert.equal(proxy.seen.size, 0);
    }
  });

  it("credential_source = Ec2InstanceMetadata: the instance's keys sign the AssumeRole call", async () => {
    const imds = await startImds();
    const imdsKeys = issued(1, "ASIAIMDS");
    const sts = await startSts([imdsKeys]);
    const dir = home({ ".aws/config": `[profile ops]\nrole_arn = arn:aws:iam::1:role/ops\ncredential_source = Ec2InstanceMetadata\n` });
    const { client, signers } = await clientWith({
      HOME: dir,
      AWS_PROFILE: "ops",
      AWS_ENDPOINT_URL_STS: sts.url,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    });
    await client.increment("k");
    assert.equal(sts.calls[0]!.signedBy, "ASIAIMDS000001");
    assert.deepEqual(signers, ["ASIASTS000001"]);
  });
});

describe("web identity token file", () => {
  it("AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN: an unsigned AssumeRoleWithWebIdentity with the file's token, read again on each refresh", async () => {
    const sts = await startSts([]);
    const dir = home({ token: "eyJhbGciOiJSUzI1NiJ9.first.doNotLeak\n" });
    const { client, signers } = await clientWith({
      AWS_WEB_IDENTITY_TOKEN_FILE: path.join(dir, "token"),
      AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/pod",
      AWS_ROLE_SESSION_NAME: "pod-1",
      AWS_ENDPOINT_URL_STS: sts.url,
      AWS_REGION: "ap-northeast-1",
    });
    await client.increment("k");
    assert.equal(sts.calls.length, 1);
    assert.deepEqual(sts.calls[0]!.params, {
      RoleArn: "arn:aws:iam::123456789012:role/pod",
      RoleSessionName: "pod-1",
      WebIdentityToken: "eyJhbGciOiJSUzI1NiJ9.first.doNotLeak",
    });
    assert.equal(sts.calls[0]!.authorization, undefined, "unsigned");
    assert.deepEqual(signers, ["ASIASTS000001"]);
  });

  it("a token STS rejects (and echoes) is scrubbed; a token file without AWS_ROLE_ARN, or missing, is a Config error", async () => {
    const token = "eyJhbGciOiJSUzI1NiJ9.payload.signature-doNotLeak";
    const sts = await startSts([], (call) => ({
      status: 400,
      body: stsError("InvalidIdentityToken", `Couldn't verify ${call.params.WebIdentityToken}`),
    }));
    const dir = home({ token });
    const rejected = await clientWith({
      AWS_WEB_IDENTITY_TOKEN_FILE: path.join(dir, "token"),
      AWS_ROLE_ARN: "arn:aws:iam::1:role/pod",
      AWS_ENDPOINT_URL_STS: sts.url,
    });
    const error = await rejection(rejected.client.increment("k"));
    assertClean(error, [token]);
    assert.equal(error.code, "Config");
    assert.equal(error.awsType, "InvalidIdentityToken");
    assert.match(
      error.message,
      /AssumeRoleWithWebIdentity for arn:aws:iam::1:role\/pod .* answered 400 InvalidIdentityToken: Couldn't verify \[redacted\]/,
    );
    const noRole = await clientWith({ AWS_WEB_IDENTITY_TOKEN_FILE: path.join(dir, "token") });
    assert.match(String(await rejection(noRole.client.get("k"))), /AWS_WEB_IDENTITY_TOKEN_FILE is set .* but AWS_ROLE_ARN.* is not/);
    const noFile = await clientWith({ AWS_WEB_IDENTITY_TOKEN_FILE: path.join(dir, "nope"), AWS_ROLE_ARN: "arn:aws:iam::1:role/pod" });
    assert.match(String(await rejection(noFile.client.get("k"))), /web identity token file .*nope .* does not exist/);
  });
});

describe("container credentials", () => {
  it("AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read on each call) or the token itself", async () => {
    const container = await startContainer({ token: "Bearer pod-identity-token" });
    const dir = home({ token: "Bearer pod-identity-token\n" });
    const byFile = await clientWith({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: container.url,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: path.join(dir, "token"),
      AWS_CONTAINER_AUTHORIZATION_TOKEN: "ignored: the file wins",
    });
    await byFile.client.increment("k");
    assert.deepEqual(byFile.signers, ["ASIAECS000001"]);
    const byValue = await clientWith({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: container.url,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: "Bearer pod-identity-token",
    });
    await byValue.client.increment("k");
    assert.deepEqual(byValue.signers, ["ASIAECS000002"]);
    assert.deepEqual(container.seen, ["Bearer pod-identity-token", "Bearer pod-identity-token"]);
  });

  it("a wrong token is AccessDenied (not retried, token scrubbed); 5xx is tried 3 times; a plain-http URI that is not local is refused", async () => {
    const container = await startContainer({ token: "right" });
    const wrong = await clientWith({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: container.url,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: "wrong-token-doNotLeak",
    });
    const denied = await rejection(wrong.client.get("k"));
    assertClean(denied, ["wrong-token-doNotLeak"]);
    assert.equal(denied.code, "AccessDenied");
    assert.match(
      denied.message,
      /Container credentials \(AWS_CONTAINER_CREDENTIALS_FULL_URI, http:\/\/127\.0\.0\.1:\d+\) answered 401: Unauthorized: bad token \[redacted\]/,
    );
    assert.ok(!denied.message.includes("/v2/credentials"), "the URI's path is not shown");
    assert.equal(container.seen.length, 1);

    const failing = await startContainer({ answer: () => ({ status: 500, body: "{}" }) });
    const sick = await clientWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: failing.url }, { retry: { attempts: 1 } });
    const error = await rejection(sick.client.get("k"));
    assert.ok(error instanceof CounterError && error.code === "Service" && error.retryable, String(error));
    assert.equal(failing.seen.length, 3, "three attempts");

    const remote = await clientWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://example.com/creds" });
    assert.match(String(await rejection(remote.client.get("k"))), /must be https, or http to a loopback address/);
  });

  it("an answer without the four fields is an error that quotes nothing of it", async () => {
    const container = await startContainer({
      answer: () => ({ status: 200, body: JSON.stringify({ AccessKeyId: "ASIAHALF", SecretAccessKey: "half-secret-doNotLeak" }) }),
    });
    const { client } = await clientWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: container.url });
    const error = await rejection(client.get("k"));
    assertClean(error, ["half-secret-doNotLeak", "ASIAHALF"]);
    assert.match(error.message, /answered 200 without AccessKeyId, SecretAccessKey, Token and Expiration/);
  });
});

describe("EC2 instance metadata (IMDSv2)", () => {
  it("a token first (PUT, with its TTL), then the role and its credentials with the token", async () => {
    const imds = await startImds();
    const { client, signers } = await clientWith({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
    await client.increment("k");
    await client.increment("k");
    assert.deepEqual(imds.counts, { token: 1, list: 1, credentials: 1, rejected: 0 });
    assert.deepEqual(signers, ["ASIAIMDS000001", "ASIAIMDS000001"]);
  });

  it("50 concurrent requests around the expiry of instance credentials: one fetch before it and one after", async () => {
    const realNow = Date.now;
    let offset = 0;
    Date.now = () => realNow() + offset;
    after(() => void (Date.now = realNow));
    // Expiry read from the answer: an hour after the (skewed) clock of each fetch.
    const imds = await startImds({
      credentials: (n) => ({ status: 200, body: imdsJson({ ...issued(n, "ASIAIMDS"), expiration: new Date(Date.now() + 3_600_000) }) }),
    });
    const { client, signers } = await clientWith({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
    await Promise.all(Array.from({ length: 50 }, () => client.increment("k")));
    assert.equal(imds.counts.credentials, 1);
    offset += 57 * 60_000; // in the last five minutes
    await Promise.all(Array.from({ length: 50 }, () => client.increment("k")));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(imds.counts.credentials, 2, "one background fetch for 50 requests");
    offset += 2 * 3_600_000; // long expired
    await Promise.all(Array.from({ length: 50 }, () => client.increment("k")));
    assert.equal(imds.counts.credentials, 3, "one awaited fetch for 50 requests");
    assert.deepEqual(new Set(signers.slice(-50)), new Set(["ASIAIMDS000003"]));
  });

  it("an instance without a role, or AWS_EC2_METADATA_DISABLED, is 'not found': the error names every place the chain looked", async () => {
    const imds = await startImds({ role: undefined });
    const dir = home();
    const { client, proxy } = await clientWith({ HOME: dir, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
    const error = await rejection(client.increment("k"));
    assert.ok(error instanceof CounterError && error.code === "Config", String(error));
    for (const place of [
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set",
      `${path.join(dir, ".aws/credentials")} and ${path.join(dir, ".aws/config")} do not exist`,
      "AWS_WEB_IDENTITY_TOKEN_FILE is not set",
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set",
      `EC2 instance metadata (${imds.url}): this instance has no IAM role`,
    ]) {
      assert.ok(error.message.includes(place), `names "${place}": ${error.message}`);
    }
    assert.equal(error.retryable, false);
    assert.equal(proxy.seen.size, 0);
    const off = await clientWith({ HOME: dir, AWS_EC2_METADATA_DISABLED: "true" });
    assert.match(String(await rejection(off.client.get("k"))), /EC2 instance metadata \(turned off by AWS_EC2_METADATA_DISABLED\)/);
  });

  it("nothing listening at the metadata address: 'not found', quickly", async () => {
    const started = Date.now();
    const { client } = await clientWith({});
    const error = await rejection(client.get("k"));
    assert.match(String(error), /EC2 instance metadata \(http:\/\/127\.0\.0\.1:\d+\): ECONNREFUSED/);
    assert.ok(Date.now() - started < 3000);
  });

  it("a malformed credentials answer is a Service error that quotes none of it; the token is never shown", async () => {
    const imds = await startImds({
      credentials: () => ({
        status: 200,
        body: JSON.stringify({ Code: "Success", AccessKeyId: "ASIAX", SecretAccessKey: "imds-secret-doNotLeak", Expiration: "soon" }),
      }),
    });
    const { client } = await clientWith({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
    const error = await rejection(client.get("k"));
    assertClean(error, ["imds-secret-doNotLeak", "imds-token-1-AQAEAdoNotLeak=="]);
    assert.equal(error.code, "Service");
    assert.match(error.message, /answered the credentials of role app-role without/);
  });
});

describe("the chain", () => {
  it("keys in the environment come first; AWS_PROFILE, as in the AWS SDK for JavaScript, takes the shared files over them", async () => {
    const dir = home({
      ".aws/credentials": `[p]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n`,
    });
    const envFirst = await clientWith({ HOME: dir, AWS_ACCESS_KEY_ID: "AKIDENV", AWS_SECRET_ACCESS_KEY: "env-secret" });
    await envFirst.client.increment("k");
    assert.deepEqual(envFirst.signers, ["AKIDENV"]);
    const profileFirst = await clientWith({
      HOME: dir,
      AWS_PROFILE: "p",
      AWS_ACCESS_KEY_ID: "AKIDENV",
      AWS_SECRET_ACCESS_KEY: "env-secret",
    });
    await profileFirst.client.increment("k");
    assert.deepEqual(profileFirst.signers, ["AKIDPROFILE"]);
  });

  it("the shared files come before web identity, web identity before the container, the container before instance metadata", async () => {
    const sts = await startSts([]);
    const container = await startContainer();
    const imds = await startImds();
    const dir = home({ ".aws/credentials": `[default]\naws_access_key_id = AKIDFILES\naws_secret_access_key = s\n`, token: "tok" });
    const all = {
      AWS_WEB_IDENTITY_TOKEN_FILE: path.join(dir, "token"),
      AWS_ROLE_ARN: "arn:aws:iam::1:role/r",
      AWS_ENDPOINT_URL_STS: sts.url,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: container.url,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    };
    const expectations: [Record<string, string>, string][] = [
      [{ HOME: dir, ...all }, "AKIDFILES"],
      [{ ...all }, "ASIASTS000001"],
      [{ ...all, AWS_WEB_IDENTITY_TOKEN_FILE: "" }, "ASIAECS000001"],
      [{ ...all, AWS_WEB_IDENTITY_TOKEN_FILE: "", AWS_CONTAINER_CREDENTIALS_FULL_URI: "" }, "ASIAIMDS000001"],
    ];
    for (const [env, expected] of expectations) {
      const { client, signers } = await clientWith(env);
      await client.increment("k");
      assert.deepEqual(signers, [expected], JSON.stringify(Object.keys(env)));
    }
  });

  it("clients built per request with the same variables share one chain: one AssumeRole for 20 clients", async () => {
    const sts = await startSts([SOURCE]);
    const dir = home({
      ".aws/credentials": `[base]\naws_access_key_id = ${SOURCE.accessKeyId}\naws_secret_access_key = ${SOURCE.secretAccessKey}\naws_session_token = ${SOURCE.sessionToken}\n[app]\nrole_arn = arn:aws:iam::1:role/app\nsource_profile = base\n`,
    });
    const env = await isolated({ HOME: dir, AWS_PROFILE: "app", AWS_ENDPOINT_URL_STS: sts.url });
    const direct = await freshTable(dynalite.endpoint);
    await Promise.all(
      Array.from({ length: 20 }, () =>
        new CounterClient({ endpoint: dynalite.endpoint, env, tableName: direct.table.tableName }).increment("k"),
      ),
    );
    assert.equal(await direct.get("k"), 20);
    assert.equal(sts.calls.length, 1);
  });
});
