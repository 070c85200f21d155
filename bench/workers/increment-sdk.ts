// The same Worker with the AWS SDK v3.
import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";

export default {
  async fetch(request: Request, env: Record<string, string>): Promise<Response> {
    const client = new DynamoDBClient({
      region: env.AWS_REGION ?? "us-east-1",
      endpoint: env.AWS_ENDPOINT_URL_DYNAMODB!,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
    });
    const key = new URL(request.url).searchParams.get("key") ?? "bench";
    const Key = { id: { S: key } };
    const out = await client.send(
      new UpdateItemCommand({
        TableName: env.TABLE_NAME,
        Key,
        UpdateExpression: "ADD #c :one",
        ExpressionAttributeNames: { "#c": "lastValue" },
        ExpressionAttributeValues: { ":one": { N: "1" } },
        ReturnValues: "UPDATED_NEW",
      }),
    );
    const read = await client.send(new GetItemCommand({ TableName: env.TABLE_NAME, Key, ConsistentRead: true }));
    return Response.json({ value: Number(out.Attributes?.lastValue?.N), read: Number(read.Item?.lastValue?.N) });
  },
};
