import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import fc from "fast-check";
import { CounterClient } from "../src/index.ts";
import { servers } from "./support/harness.ts";

// The client signs with aws4fetch; @smithy/signature-v4 is what the AWS SDK signs with. For generated
// requests, the Authorization header the client sends must be the one the SDK's signer computes for the
// same request, credentials and time.

const region = fc.oneof(fc.constantFrom("us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"), fc.stringMatching(/^[a-z]{2}-[a-z]{3,9}-[1-9]$/));
const keyId = fc.stringMatching(/^[A-Z0-9]{16,24}$/);
const secret = fc.string({ minLength: 8, maxLength: 48, unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=") });
const token = fc.option(fc.string({ minLength: 10, maxLength: 200, unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/= ") }), { nil: undefined });
const keyText = fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" });
const endpoint = fc.record({
  host: fc.constantFrom("127.0.0.1", "localhost", "dynamodb.us-east-1.amazonaws.com", "ddb.example.internal"),
  port: fc.option(fc.integer({ min: 1024, max: 65535 }), { nil: undefined }),
  path: fc.constantFrom("/", "/prefix/", "/a%20b/", "/with space/x"),
  https: fc.boolean(),
});

describe("SigV4 interop with @smithy/signature-v4", () => {
  it("agrees on the Authorization header for 300 generated requests", async () => {
    const [server] = await servers();
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(region, keyId, secret, token, keyText, fc.integer({ min: -1e6, max: 1e6 }), endpoint, fc.constantFrom("increment", "get", "reserve"),
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
          const call = op === "increment" ? client.increment(key, { by }) : op === "get" ? client.get(key) : client.reserve(key, Math.abs(by) + 1);
          await call.catch(() => undefined); // the table does not exist; only the signature matters
          assert.ok(captured);
          const sent = new URL(captured.url);
          const headers = Object.fromEntries(captured.headers);
          const signedNames = /SignedHeaders=([^,]+)/.exec(headers.authorization ?? "")![1]!.split(";");
          const amzDate = headers["x-amz-date"]!;
          const signingDate = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
          const signer = new SignatureV4({
            credentials: sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken },
            region: reg,
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
              headers: { host: sent.host, "content-type": headers["content-type"]!, "x-amz-target": headers["x-amz-target"]! },
              body: await captured.clone().text(),
            },
            { signingDate, unsignableHeaders: new Set(["content-type"]) },
          );
          assert.deepEqual(signedNames, ["host", "x-amz-date", ...(sessionToken ? ["x-amz-security-token"] : []), "x-amz-target"]);
          assert.equal(headers.authorization, expected.headers.authorization);
          checked++;
        }),
      { numRuns: 300, seed: 20261121 },
    );
    assert.equal(checked, 300);
  });
});
