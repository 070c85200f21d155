import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import fc from "fast-check";
import { AwsV4Signer } from "aws4fetch";
import type { IncomingHttpHeaders } from "node:http";
import { nodeFastPath } from "../../src/core/node.ts";
import { CounterClient } from "../../src/index.ts";
import { startFaultProxy } from "../support/fault-proxy.ts";
import { servers } from "../support/harness.ts";

// The client signs with aws4fetch; @smithy/signature-v4 is what the AWS SDK signs with. For generated
// requests, the Authorization header the client sends must be the one the SDK's signer computes for the
// same request, credentials and time.

const region = fc.oneof(
  fc.constantFrom("us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"),
  fc.stringMatching(/^[a-z]{2}-[a-z]{3,9}-[1-9]$/),
);
const keyId = fc.stringMatching(/^[A-Z0-9]{16,24}$/);
const secret = fc.string({
  minLength: 8,
  maxLength: 48,
  unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/="),
});
const token = fc.option(
  fc.string({
    minLength: 10,
    maxLength: 200,
    unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/= "),
  }),
  { nil: undefined },
);
const keyText = fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" });
const endpoint = fc.record({
  host: fc.constantFrom("127.0.0.1", "localhost", "dynamodb.us-east-1.amazonaws.com", "ddb.example.internal"),
  port: fc.option(fc.integer({ min: 1024, max: 65535 }), { nil: undefined }),
  path: fc.constantFrom("/", "/prefix/", "/a%20b/", "/with space/x"),
  https: fc.boolean(),
});

/** Asserts `headers.authorization` is what @smithy/signature-v4 computes for the same request at its x-amz-date. */
async function assertSignedLikeSdk(
  sent: URL,
  headers: Record<string, string | undefined> | IncomingHttpHeaders,
  body: string,
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string | undefined },
  region: string,
): Promise<void> {
  const { accessKeyId, secretAccessKey, sessionToken } = credentials;
  const signedNames = /SignedHeaders=([^,]+)/.exec(String(headers.authorization ?? ""))![1]!.split(";");
  const amzDate = String(headers["x-amz-date"]);
  const signingDate = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const signer = new SignatureV4({
    credentials: sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken },
    region,
    service: "dynamodb",
    sha256: Sha256,
    applyChecksum: false,
  });
  const expected = await signer.sign(
    {
      method: "POST",
      protocol: sent.protocol,
      hostname: sent.hostname,
      ...(sent.port ? { port: Number(sent.port) } : {}),
      path: sent.pathname,
      query: {},
      headers: { host: sent.host, "content-type": String(headers["content-type"]), "x-amz-target": String(headers["x-amz-target"]) },
      body,
    },
    { signingDate, unsignableHeaders: new Set(["content-type"]) },
  );
  assert.deepEqual(signedNames, ["host", "x-amz-date", ...(sessionToken ? ["x-amz-security-token"] : []), "x-amz-target"]);
  assert.equal(headers.authorization, expected.headers.authorization);
}

describe("SigV4 interop with @smithy/signature-v4", () => {
  it("agrees on the Authorization header for 300 generated requests", async () => {
    const [server] = await servers();
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(
        region,
        keyId,
        secret,
        token,
        keyText,
        fc.integer({ min: -1e6, max: 1e6 }),
        endpoint,
        fc.constantFrom("increment", "get", "reserve"),
        async (reg, accessKeyId, secretAccessKey, sessionToken, key, by, ep, op) => {
          const url = `${ep.https ? "https" : "http"}://${ep.host}${ep.port ? `:${ep.port}` : ""}${ep.path}`;
          let captured: Request | undefined;
          const client = new CounterClient({
            env: {},
            region: reg,
            endpoint: url,
            credentials: sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken },
            retry: { attempts: 1 },
            // Capture what would go on the wire, then hand it to a real server so the call completes.
            fetch: async (url, init) => {
              captured = new Request(url, init);
              const body = await captured.clone().text();
              return fetch(server!.endpoint, { method: "POST", headers: captured.headers, body });
            },
          });
          const call =
            op === "increment" ? client.increment(key, { by }) : op === "get" ? client.get(key) : client.reserve(key, Math.abs(by) + 1);
          await call.catch(() => undefined); // the table does not exist; only the signature matters
          assert.ok(captured);
          const headers = Object.fromEntries(captured.headers);
          await assertSignedLikeSdk(
            new URL(captured.url),
            headers,
            await captured.clone().text(),
            { accessKeyId, secretAccessKey, sessionToken },
            reg,
          );
          checked++;
        },
      ),
      { numRuns: 300, seed: 20261121 },
    );
    assert.equal(checked, 300);
  });
});

describe("Node's signer (aws4fetch's, hashing with node:crypto)", () => {
  const Signer = nodeFastPath()!.Signer;

  it("signs exactly as aws4fetch on WebCrypto for 300 generated requests, with and without a cached key", async () => {
    const cache = new Map<string, ArrayBuffer>();
    const datetime = fc
      .date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2099-12-31T23:59:59Z"), noInvalidDate: true })
      .map((d) => d.toISOString().replace(/[:-]|\.\d{3}/g, ""));
    await fc.assert(
      fc.asyncProperty(
        region,
        keyId,
        secret,
        token,
        fc.string({ unit: "grapheme", maxLength: 300 }),
        endpoint,
        datetime,
        fc.boolean(),
        async (reg, accessKeyId, secretAccessKey, sessionToken, body, ep, when, shareCache) => {
          const url = `${ep.https ? "https" : "http"}://${ep.host}${ep.port ? `:${ep.port}` : ""}${ep.path}`;
          const init = {
            accessKeyId,
            secretAccessKey,
            ...(sessionToken === undefined ? {} : { sessionToken }),
            url,
            method: "POST",
            body,
            service: "dynamodb",
            region: reg,
            datetime: when,
            headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.UpdateItem" },
          };
          const ours = await new Signer({ ...init, ...(shareCache ? { cache } : {}) }).sign();
          const again = await new Signer({ ...init, ...(shareCache ? { cache } : {}) }).sign(); // from the cached key
          const theirs = await new AwsV4Signer(init).sign();
          assert.equal(ours.url.href, theirs.url.href);
          assert.deepEqual([...ours.headers], [...theirs.headers]);
          assert.deepEqual([...again.headers], [...theirs.headers]);
        },
      ),
      { numRuns: 300, seed: 20261121 },
    );
    // A key cached by one signer serves the other: the same bytes.
    assert.ok(cache.size > 0);
    for (const key of cache.values()) assert.ok(key instanceof ArrayBuffer && key.byteLength === 32);
  });

  it("is what the client sends by default on Node, with no WebCrypto call, and the AWS SDK agrees with it", async () => {
    const [server] = await servers();
    const seen: { headers: IncomingHttpHeaders; body: string }[] = [];
    const proxy = await startFaultProxy(server!.endpoint, (info) => (seen.push({ headers: info.headers, body: info.body }), "pass"));
    const subtle = crypto.subtle as { digest: unknown; sign: unknown };
    const { digest, sign } = subtle;
    let webCryptoCalls = 0;
    subtle.digest = (...args: unknown[]) => (webCryptoCalls++, (digest as (...a: unknown[]) => unknown).apply(crypto.subtle, args));
    subtle.sign = (...args: unknown[]) => (webCryptoCalls++, (sign as (...a: unknown[]) => unknown).apply(crypto.subtle, args));
    try {
      await fc.assert(
        fc.asyncProperty(region, keyId, secret, token, keyText, async (reg, accessKeyId, secretAccessKey, sessionToken, key) => {
          seen.length = 0;
          const client = new CounterClient({
            env: {},
            region: reg,
            endpoint: proxy.endpoint,
            retry: { attempts: 1 },
            credentials: sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken },
          });
          await client.increment(key).catch(() => undefined); // the table does not exist; only the signature matters
          assert.equal(seen.length, 1);
          await assertSignedLikeSdk(
            new URL(proxy.endpoint),
            seen[0]!.headers,
            seen[0]!.body,
            { accessKeyId, secretAccessKey, sessionToken },
            reg,
          );
        }),
        { numRuns: 60, seed: 20261121 },
      );
      assert.equal(webCryptoCalls, 0, "signed without WebCrypto");
      // The same client on transport: "fetch" signs with WebCrypto, as on every other runtime.
      await new CounterClient({
        env: {},
        endpoint: proxy.endpoint,
        transport: "fetch",
        credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret-example" },
        retry: { attempts: 1 },
      })
        .increment("k")
        .catch(() => undefined);
      assert.ok(webCryptoCalls >= 3, `aws4fetch hashed with WebCrypto (${webCryptoCalls} calls)`);
    } finally {
      subtle.digest = digest;
      subtle.sign = sign;
      await proxy.close();
    }
  });
});
