// The floor: the same two calls hand-written on aws4fetch.
import { AwsClient } from "aws4fetch";

export default {
  async fetch(request: Request, env: Record<string, string>): Promise<Response> {
    const aws = new AwsClient({ accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY!, service: "dynamodb", region: env.AWS_REGION ?? "us-east-1", retries: 0 });
    const call = async (target: string, body: unknown) => {
      const res = await aws.fetch(env.AWS_ENDPOINT_URL_DYNAMODB!, { method: "POST", headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": `DynamoDB_20120810.${target}` }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(await res.text());
      return res.json() as Promise<Record<string, Record<string, { N: string }>>>;
    };
    const key = new URL(request.url).searchParams.get("key") ?? "bench";
    const Key = { id: { S: key } };
    const out = await call("UpdateItem", { TableName: env.TABLE_NAME, Key, UpdateExpression: "ADD #c :one", ExpressionAttributeNames: { "#c": "lastValue" }, ExpressionAttributeValues: { ":one": { N: "1" } }, ReturnValues: "UPDATED_NEW" });
    const read = await call("GetItem", { TableName: env.TABLE_NAME, Key, ConsistentRead: true });
    return Response.json({ value: Number(out.Attributes?.lastValue?.N), read: Number(read.Item?.lastValue?.N) });
  },
};
