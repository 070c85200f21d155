// Order ids in a Bun script: unique across every process that shares the table, one request per 100 ids.
//   npm run example:bun                  on an embedded local DynamoDB (dynalite), nothing to set up
//   bun examples/bun/order-ids.ts        against DynamoDB as configured (AWS credentials and region, or
//                                        AWS_ENDPOINT_URL_DYNAMODB); in this repository `npm run build` first
import { CounterClient, IdAllocator } from "dynacount";

const client = new CounterClient({ tableName: process.env.TABLE_NAME ?? "AtomicCounters" });
await client.createTable();

let requests = 0;
const counting = new CounterClient({
  tableName: client.table.tableName,
  fetch: (input, init) => {
    requests++;
    return fetch(input, init);
  },
});

// Three "checkout workers", each with its own allocator, as three processes would have.
const workers = Array.from({ length: 3 }, () => new IdAllocator(counting, "order-id", { blockSize: 100 }));
const orders = await Promise.all(Array.from({ length: 900 }, async (_, i) => ({ worker: i % 3, id: await workers[i % 3]!.next() })));

const ids = orders.map((o) => o.id);
const summary = {
  runtime: `bun ${Bun.version}`,
  orders: orders.length,
  unique: new Set(ids).size,
  min: Math.min(...ids),
  max: Math.max(...ids),
  requests,
};
console.log(`handed out ${summary.unique} unique order ids (${summary.min}…${summary.max}) with ${requests} DynamoDB requests`);
console.log(JSON.stringify(summary));
