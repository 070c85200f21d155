const t0 = performance.now();
const lib = process.argv[2];
let inc;
if (lib === "dynacount") {
  const { CounterClient } = await import("dynacount");
  var t1 = performance.now();
  const c = new CounterClient({ endpoint: "http://127.0.0.1:18000", region: "us-east-1", env: {}, credentials: { accessKeyId: "a", secretAccessKey: "b" }, tableName: "BenchLoad" });
  inc = () => c.increment("cold");
} else {
  const { DynamoDBClient, UpdateItemCommand } = await import("@aws-sdk/client-dynamodb");
  var t1 = performance.now();
  const c = new DynamoDBClient({ endpoint: "http://127.0.0.1:18000", region: "us-east-1", credentials: { accessKeyId: "a", secretAccessKey: "b" } });
  inc = () => c.send(new UpdateItemCommand({ TableName: "BenchLoad", Key: { id: { S: "cold" } }, UpdateExpression: "ADD #c :by", ExpressionAttributeNames: { "#c": "lastValue" }, ExpressionAttributeValues: { ":by": { N: "1" } }, ReturnValues: "UPDATED_NEW" }));
}
const t2 = performance.now();
await inc();
const t3 = performance.now();
console.log(lib, "import", (t1 - t0).toFixed(1), "construct", (t2 - t1).toFixed(1), "first", (t3 - t2).toFixed(1), "total", (t3 - t0).toFixed(1));
