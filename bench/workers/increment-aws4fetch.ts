// The floor: the same two calls hand-written on aws4fetch's signer and fetch(url, init), with a timeout.
import { AwsV4Signer } from "aws4fetch";

const cache = new Map<string, ArrayBuffer>();

export default {
  async fetch(request: Request, env: Record<string, string>): Promise<Response> {
    const call = async (target: string, body: unknown) => {
      const json = JSON.stringify(body);
      const signed = await new AwsV4Signer({
        accessKeyId: env.AWS_ACCESS_KEY_ID!,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
        url: env.AWS_ENDPOINT_URL_DYNAMODB!,
        method: "POST",
        headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": `DynamoDB_20120810.${target}` },
        body: json,
        service: "dynamodb",
        region: env.AWS_REGION ?? "us-east-1",
        cache,
      }).sign();
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 5000);
      try {
        const res = await fetch(signed.url, { method: "POST", headers: signed.headers, body: json, signal: controller.signal });
        const text = await res.text();
        if (!res.ok) throw new Error(text);
        return JSON.parse(text) as Record<string, Record<string, { N: string }>>;
      } finally {
        clearTimeout(timer);
      }
    };
    const key = new URL(request.url).searchParams.get("key") ?? "bench";
    const Key = { id: { S: key } };
    const out = await call("UpdateItem", {
      TableName: env.TABLE_NAME,
      Key,
      UpdateExpression: "ADD #c :one",
      ExpressionAttributeNames: { "#c": "lastValue" },
      ExpressionAttributeValues: { ":one": { N: "1" } },
      ReturnValues: "UPDATED_NEW",
    });
    const read = await call("GetItem", { TableName: env.TABLE_NAME, Key, ConsistentRead: true });
    return Response.json({ value: Number(out.Attributes?.lastValue?.N), read: Number(read.Item?.lastValue?.N) });
  },
};
