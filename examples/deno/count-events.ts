// A Deno script counting events: increments coalesce in a CounterBuffer, one write per event type.
//   deno run --config jsr.json --allow-net=127.0.0.1 --allow-env=AWS_ENDPOINT_URL_DYNAMODB,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_REGION,TABLE_NAME examples/deno/count-events.ts
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
