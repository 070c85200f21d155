// One client's load against one server, run as its own process on Node, Bun or Deno so the CPU time it
// reports is the client's alone: `load.ts <lib> <endpoint> <table> <concurrency> <requests>`.
// `load.ts cold <lib> <endpoint> <table>` instead times a cold start: import, construct, first increment.
import process from "node:process";

const [first, ...rest] = process.argv.slice(2);
const cold = first === "cold";
const [lib, endpoint, table, concurrencyArg, requestsArg] = (cold ? rest : [first, ...rest]) as [string, string, string, string, string];
const credentials = { accessKeyId: "AKIDBENCH", secretAccessKey: "bench-secret" };
const region = "us-east-1";
const TIMEOUT_MS = 5000;
const body = (key: string) =>
  JSON.stringify({
    TableName: table,
    Key: { id: { S: key } },
    UpdateExpression: "ADD #c :by",
    ExpressionAttributeNames: { "#c": "lastValue" },
    ExpressionAttributeValues: { ":by": { N: "1" } },
    ReturnValues: "UPDATED_NEW",
  });
const headers = { "content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.UpdateItem" };
const valueIn = (text: string) => Number((JSON.parse(text) as { Attributes: { lastValue: { N: string } } }).Attributes.lastValue.N);

type Increment = (key: string) => Promise<number>;

/** Each contender, imported only when used, so a cold start loads nothing of the others. */
async function makeClient(): Promise<Increment> {
  if (lib === "dynacount" || lib === "dynacount-fetch") {
    const { CounterClient } = await import("../dist/index.js");
    const client = new CounterClient({
      endpoint,
      region,
      credentials,
      env: {},
      tableName: table,
      ...(lib === "dynacount-fetch" && { transport: "fetch" as const }),
    });
    return (key) => client.increment(key);
  }
  if (lib === "sdk") {
    const { DynamoDBClient, UpdateItemCommand } = await import("@aws-sdk/client-dynamodb");
    const client = new DynamoDBClient({ endpoint, region, credentials, maxAttempts: 1 });
    return async (key) => {
      const out = await client.send(
        new UpdateItemCommand({
          TableName: table,
          Key: { id: { S: key } },
          UpdateExpression: "ADD #c :by",
          ExpressionAttributeNames: { "#c": "lastValue" },
          ExpressionAttributeValues: { ":by": { N: "1" } },
          ReturnValues: "UPDATED_NEW",
        }),
      );
      return Number(out.Attributes?.lastValue?.N);
    };
  }
  // The floors: the least a correct client on aws4fetch's signer can do per call (sign with a cached key, a
  // timeout per request, read and parse the answer), sent with fetch(url, init) or, on Node, node:http.
  const { AwsV4Signer } = await import("aws4fetch");
  const cache = new Map<string, ArrayBuffer>();
  const sign = (json: string) =>
    new AwsV4Signer({ ...credentials, url: endpoint, method: "POST", headers, body: json, service: "dynamodb", region, cache }).sign();
  if (lib === "floor-fetch") {
    return async (key) => {
      const json = body(key);
      const signed = await sign(json);
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
      try {
        const res = await fetch(signed.url, { method: "POST", headers: signed.headers, body: json, signal: controller.signal });
        return valueIn(await res.text());
      } finally {
        clearTimeout(timer);
      }
    };
  }
  if (lib === "floor-http" || lib === "floor-node") {
    const http = await import("node:http");
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    // floor-node signs by hand with node:crypto's synchronous hashes (no aws4fetch, no WebCrypto): the least
    // any client sending over node:http can spend on signing.
    const signHeaders =
      lib === "floor-node" ? await nodeCryptoSigner() : async (json: string) => Object.fromEntries((await sign(json)).headers);
    if (lib === "floor-node") {
      // The servers do not check signatures, so check this one against aws4fetch's once, at the same time.
      const mine = await signHeaders(body("check"));
      const theirs = await new AwsV4Signer({
        ...credentials,
        url: endpoint,
        method: "POST",
        headers,
        body: body("check"),
        service: "dynamodb",
        region,
        datetime: mine["x-amz-date"]!,
      }).sign();
      if (theirs.headers.get("authorization") !== mine.authorization) throw new Error("floor-node signs differently from aws4fetch");
    }
    return async (key) => {
      const json = body(key);
      const signed = await signHeaders(json);
      const text = await new Promise<string>((resolve, reject) => {
        const req = http.request(endpoint, { method: "POST", headers: signed, agent, timeout: TIMEOUT_MS }, (res) => {
          let out = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (out += c));
          res.on("end", () => resolve(out));
          res.on("error", reject);
        });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", reject);
        req.end(json);
      });
      return valueIn(text);
    };
  }
  throw new Error(`unknown contender ${lib}`);
}

/** SigV4 for this one request shape (POST, no query, three signed headers), written for speed with node:crypto. */
async function nodeCryptoSigner(): Promise<(json: string) => Promise<Record<string, string>>> {
  const { createHash, createHmac } = await import("node:crypto");
  const host = new URL(endpoint).host;
  const path = new URL(endpoint).pathname;
  const hmac = (key: string | Buffer, text: string) => createHmac("sha256", key).update(text).digest();
  const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
  let day = "";
  let key: Buffer = Buffer.alloc(0);
  return async (json) => {
    const amzDate = new Date().toISOString().replace(/[:-]|\.\d{3}/g, "");
    if (amzDate.slice(0, 8) !== day) {
      day = amzDate.slice(0, 8);
      key = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), "dynamodb"), "aws4_request");
    }
    const scope = `${day}/${region}/dynamodb/aws4_request`;
    const canonical = `POST\n${path}\n\nhost:${host}\nx-amz-date:${amzDate}\nx-amz-target:${headers["x-amz-target"]}\n\nhost;x-amz-date;x-amz-target\n${sha256(json)}`;
    const signature = createHmac("sha256", key)
      .update(`AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256(canonical)}`)
      .digest("hex");
    return {
      ...headers,
      "x-amz-date": amzDate,
      authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=host;x-amz-date;x-amz-target, Signature=${signature}`,
    };
  };
}

async function drive(increment: Increment, total: number, concurrency: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        await increment(`k${i % 100}`);
      }
    }),
  );
}

if (cold) {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const increment = await makeClient();
  await increment("cold");
  const used = process.cpuUsage(cpu);
  console.log(JSON.stringify({ lib, coldMs: performance.now() - started, coldCpuMs: (used.user + used.system) / 1000 }));
} else {
  const concurrency = Number(concurrencyArg);
  const requests = Number(requestsArg);
  const increment = await makeClient();
  await drive(increment, Math.min(200, requests), concurrency); // warm-up: JIT, connections, signing-key cache
  const cpu = process.cpuUsage();
  const started = performance.now();
  await drive(increment, requests, concurrency);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  console.log(JSON.stringify({ lib, cpuUsPerRequest: (used.user + used.system) / requests, perSecond: requests / seconds }));
}
process.exit(0);
