// A Deno script counting events: increments coalesce in a CounterBuffer, one write per event type.
//   npm run example:deno                 on an embedded local DynamoDB (dynalite), nothing to set up
//   deno run --config jsr.json --allow-net --allow-env examples/deno/count-events.ts
//                                        against DynamoDB as configured (AWS credentials and region, or
//                                        AWS_ENDPOINT_URL_DYNAMODB)
import { CounterBuffer, CounterClient } from "@dynacount/dynacount";

const client = new CounterClient({ tableName: Deno.env.get("TABLE_NAME") ?? "AtomicCounters" });
await client.createTable();

const events = ["signup", "login", "login", "purchase", "login", "logout", "signup", "login"];
const buffer = new CounterBuffer(client, { writerId: "deno-count-events", flushIntervalMs: 500 });
for (let i = 0; i < 10_000; i++) buffer.add(`event:${events[i % events.length]}`);
const { keys, requests, total } = await buffer.close();

const counts: Record<string, number> = {};
for (const name of new Set(events)) counts[name] = await client.get(`event:${name}`);
console.log(`counted ${total} events of ${keys} kinds with ${requests} DynamoDB writes:`, counts);
console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, total, keys, requests, counts }));
