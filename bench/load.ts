// One client's load against one server, run as its own process on Node, Bun or Deno so the CPU time it
// reports is the client's alone: `load.ts <lib> <endpoint> <table> <concurrency> <requests>`.
import process from "node:process";
import { DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { AwsClient } from "aws4fetch";
import { CounterClient } from "../dist/index.js";

const [lib, endpoint, table, concurrencyArg, requestsArg] = process.argv.slice(2) as [string, string, string, string, string];
const concurrency = Number(concurrencyArg);
const requests = Number(requestsArg);
const credentials = { accessKeyId: "AKIDBENCH", secretAccessKey: "bench-secret" };
const region = "us-east-1";

type Increment = (key: string) => Promise<number>;

function makeClient(): Increment {
  if (lib === "dynacount") {
    const client = new CounterClient({ endpoint, region, credentials, env: {}, tableName: table });
    return (key) => client.increment(key);
  }
  if (lib === "sdk") {
    const client = new DynamoDBClient({ endpoint, region, credentials, maxAttempts: 1 });
    return async (key) => {
      const out = await client.send(
        new UpdateItemCommand({ TableName: table, Key: { id: { S: key } }, UpdateExpression: "ADD #c :by", ExpressionAttributeNames: { "#c": "lastValue" }, ExpressionAttributeValues: { ":by": { N: "1" } }, ReturnValues: "UPDATED_NEW" }),
      );
      return Number(out.Attributes?.lastValue?.N);
    };
  }
  // The floor: a hand-written call on aws4fetch, the least anything built on it can do.
  const aws = new AwsClient({ ...credentials, service: "dynamodb", region, retries: 0 });
  return async (key) => {
    const res = await aws.fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.UpdateItem" },
      body: JSON.stringify({ TableName: table, Key: { id: { S: key } }, UpdateExpression: "ADD #c :by", ExpressionAttributeNames: { "#c": "lastValue" }, ExpressionAttributeValues: { ":by": { N: "1" } }, ReturnValues: "UPDATED_NEW" }),
    });
    const out = (await res.json()) as { Attributes: { lastValue: { N: string } } };
    return Number(out.Attributes.lastValue.N);
  };
}

async function drive(increment: Increment, total: number): Promise<void> {
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

const increment = makeClient();
await drive(increment, Math.min(200, requests)); // warm-up: JIT, connections, signing-key cache
const cpu = process.cpuUsage();
const started = performance.now();
await drive(increment, requests);
const seconds = (performance.now() - started) / 1000;
const used = process.cpuUsage(cpu);
console.log(JSON.stringify({ lib, cpuUsPerRequest: (used.user + used.system) / requests, perSecond: requests / seconds }));
process.exit(0);
