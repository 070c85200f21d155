// Loopback HTTP servers that speak the credential protocols: STS (Query API, XML), EC2 instance metadata (IMDSv2) and the container endpoint.
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after } from "node:test";

export interface Keys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** What a handler answers: a status and a body (XML or JSON text). */
export interface Answer {
  status: number;
  body: string;
}

async function listen(
  handler: (req: http.IncomingMessage, body: string) => Promise<Answer> | Answer,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      try {
        const { status, body } = await handler(req, Buffer.concat(chunks).toString("utf8"));
        res.writeHead(status, { "content-type": body.startsWith("<") ? "text/xml" : "application/json" }).end(body);
      } catch (error) {
        res.writeHead(500).end(String(error));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const close = () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())));
  after(close);
  return { url: `http://127.0.0.1:${port}`, close };
}

/** One call STS received, after its checks. */
export interface StsCall {
  action: string;
  params: Record<string, string>;
  /** The access key id that signed it (AssumeRole), undefined for an unsigned call. */
  signedBy: string | undefined;
  /** The region of the signature's scope. */
  region: string | undefined;
  authorization: string | undefined;
}

/** Temporary credentials as STS issues them, numbered so a test can tell each issue apart. */
export function issued(n: number, prefix = "ASIASTS"): Keys & { expiration: Date } {
  return {
    accessKeyId: `${prefix}${String(n).padStart(6, "0")}`,
    secretAccessKey: `sts-secret-${n}-doNotLeak/+=abc`,
    sessionToken: `sts-token-${n}-doNotLeakEither/+=xyz`,
    expiration: new Date(Date.now() + 3_600_000),
  };
}

export const stsXml = (action: string, keys: Keys & { expiration: Date }) =>
  `<${action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><${action}Result>` +
  `<Credentials><AccessKeyId>${keys.accessKeyId}</AccessKeyId><SecretAccessKey>${keys.secretAccessKey}</SecretAccessKey>` +
  `<SessionToken>${keys.sessionToken}</SessionToken><Expiration>${keys.expiration.toISOString()}</Expiration></Credentials>` +
  `<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>` +
  `</${action}Result><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></${action}Response>`;

export const stsError = (code: string, message: string) =>
  `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code>` +
  `<Message>${message}</Message></Error><RequestId>req-err</RequestId></ErrorResponse>`;

/**
 * STS on loopback. Every AssumeRole call must carry a SigV4 signature that @smithy/signature-v4 (the AWS SDK's
 * signer) computes the same for one of `known` key pairs, with service "sts"; AssumeRoleWithWebIdentity must be
 * unsigned. Either is answered by `answer` (default: fresh numbered credentials).
 */
export async function startSts(known: Keys[], answer?: (call: StsCall, n: number) => Answer) {
  const calls: StsCall[] = [];
  const server = await listen(async (req, body) => {
    if (req.method !== "POST" || req.url !== "/") return { status: 404, body: stsError("NotFound", `${req.method} ${req.url}`) };
    if (!/^application\/x-www-form-urlencoded/.test(req.headers["content-type"] ?? ""))
      return { status: 400, body: stsError("BadContentType", "form expected") };
    const params = Object.fromEntries(new URLSearchParams(body));
    const { Action: action = "", Version, ...rest } = params;
    if (Version !== "2011-06-15") return { status: 400, body: stsError("InvalidAction", `version ${Version}`) };
    const authorization = req.headers.authorization;
    let signedBy: string | undefined;
    let region: string | undefined;
    if (action === "AssumeRole") {
      const m =
        /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/sts\/aws4_request, SignedHeaders=([^,]+), Signature=[0-9a-f]{64}$/.exec(
          authorization ?? "",
        );
      if (!m) return { status: 403, body: stsError("MissingAuthenticationToken", "not signed for sts") };
      [, signedBy, , region] = m;
      const keys = known.find((k) => k.accessKeyId === signedBy);
      if (!keys) return { status: 403, body: stsError("InvalidClientTokenId", `unknown key ${signedBy}`) };
      const amzDate = String(req.headers["x-amz-date"]);
      const signingDate = new Date(
        `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
      );
      const host = String(req.headers.host);
      const expected = await new SignatureV4({
        credentials: keys,
        region: region!,
        service: "sts",
        sha256: Sha256,
        applyChecksum: false,
      }).sign(
        {
          method: "POST",
          protocol: "http:",
          hostname: host.split(":")[0]!,
          port: Number(host.split(":")[1]),
          path: "/",
          query: {},
          headers: { host, "content-type": String(req.headers["content-type"]) },
          body,
        },
        { signingDate, unsignableHeaders: new Set(["content-type"]) },
      );
      if (expected.headers.authorization !== authorization)
        return { status: 403, body: stsError("SignatureDoesNotMatch", "signature mismatch") };
      if ((req.headers["x-amz-security-token"] ?? undefined) !== keys.sessionToken)
        return { status: 403, body: stsError("InvalidClientTokenId", "token mismatch") };
    } else if (action === "AssumeRoleWithWebIdentity") {
      if (authorization !== undefined) return { status: 400, body: stsError("InvalidRequest", "AssumeRoleWithWebIdentity is not signed") };
    } else {
      return { status: 400, body: stsError("InvalidAction", action) };
    }
    const call = { action, params: rest, signedBy, region, authorization };
    calls.push(call);
    return answer ? answer(call, calls.length) : { status: 200, body: stsXml(action, issued(calls.length)) };
  });
  return { ...server, calls };
}

/** Instance metadata on loopback, IMDSv2 only: a token from PUT /latest/api/token (with its TTL header) is required on every GET. */
export async function startImds(options: { role?: string | undefined; credentials?: (n: number) => Answer } = {}) {
  const role = "role" in options ? options.role : "app-role";
  const counts = { token: 0, list: 0, credentials: 0, rejected: 0 };
  const tokens = new Set<string>();
  const server = await listen((req) => {
    if (req.method === "PUT" && req.url === "/latest/api/token") {
      const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
      if (!(ttl >= 1 && ttl <= 21600)) return (counts.rejected++, { status: 400, body: "" });
      counts.token++;
      const token = `imds-token-${counts.token}-AQAEAdoNotLeak==`;
      tokens.add(token);
      return { status: 200, body: token };
    }
    if (req.method !== "GET") return { status: 405, body: "" };
    if (!tokens.has(String(req.headers["x-aws-ec2-metadata-token"]))) return (counts.rejected++, { status: 401, body: "" });
    if (req.url === "/latest/meta-data/iam/security-credentials/") {
      counts.list++;
      return role === undefined ? { status: 404, body: "" } : { status: 200, body: `${role}\n` };
    }
    if (role !== undefined && req.url === `/latest/meta-data/iam/security-credentials/${role}`) {
      counts.credentials++;
      if (options.credentials) return options.credentials(counts.credentials);
      return { status: 200, body: imdsJson(issued(counts.credentials, "ASIAIMDS")) };
    }
    return { status: 404, body: "" };
  });
  return { ...server, counts };
}

export const imdsJson = (keys: Keys & { expiration: Date }) =>
  JSON.stringify({
    Code: "Success",
    LastUpdated: new Date().toISOString(),
    Type: "AWS-HMAC",
    AccessKeyId: keys.accessKeyId,
    SecretAccessKey: keys.secretAccessKey,
    Token: keys.sessionToken,
    Expiration: keys.expiration.toISOString(),
  });

/** The container credentials endpoint on loopback: GET `path` with `Authorization: <token>` when a token is set. */
export async function startContainer(options: { path?: string; token?: string; answer?: (n: number) => Answer } = {}) {
  const path = options.path ?? "/v2/credentials/task-1";
  const seen: (string | undefined)[] = [];
  const server = await listen((req) => {
    seen.push(req.headers.authorization);
    if (req.method !== "GET" || req.url !== path)
      return { status: 404, body: JSON.stringify({ code: "NotFound", message: "no such path" }) };
    if (options.token !== undefined && req.headers.authorization !== options.token) {
      return { status: 401, body: JSON.stringify({ code: "Unauthorized", message: `bad token ${req.headers.authorization}` }) };
    }
    if (options.answer) return options.answer(seen.length);
    const keys = issued(seen.length, "ASIAECS");
    return {
      status: 200,
      body: JSON.stringify({
        AccessKeyId: keys.accessKeyId,
        SecretAccessKey: keys.secretAccessKey,
        Token: keys.sessionToken,
        Expiration: keys.expiration.toISOString(),
        RoleArn: "arn:aws:iam::123456789012:role/task",
      }),
    };
  });
  return { ...server, url: `${server.url}${path}`, base: server.url, seen };
}

/** The access key id a DynamoDB request was signed with. */
export const signer = (headers: http.IncomingHttpHeaders): string | undefined =>
  /Credential=([^/]+)\//.exec(String(headers.authorization))?.[1];
