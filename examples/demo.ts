// `npm run demo`: dynacount against an embedded dynalite (no Java, no AWS account).
import { createRequire } from "node:module";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CounterClient, CounterError } from "../src/index.ts";

const require = createRequire(import.meta.url);
const dynalite = require("dynalite") as (options: object) => Server;

const server = dynalite({ createTableMs: 0 });
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const line = (label: string, value: unknown) => console.log(`  ${label.padEnd(34)} ${typeof value === "string" ? value : JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v))}`);

try {
  console.log(`dynacount demo: embedded dynalite at ${endpoint}\n`);
  const client = new CounterClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "demo", secretAccessKey: "demo-secret" },
  });
  await client.createTable();
  line("createTable()", `table "${client.table.tableName}" is ACTIVE`);

  console.log("\ncounters");
  line('increment("page:/home")', await client.increment("page:/home"));
  line('increment("page:/home")', await client.increment("page:/home"));
  line('increment("page:/home", { by: 5 })', await client.increment("page:/home", { by: 5 }));
  line('increment("stock", { by: -3 })', await client.increment("stock", { by: -3 }));
  line('get("page:/home")', await client.get("page:/home"));
  line('get("never-seen")', await client.get("never-seen"));

  console.log("\nconcurrency");
  const values = await Promise.all(Array.from({ length: 200 }, () => client.increment("race")));
  line("200 concurrent increments", `${new Set(values).size} distinct values, max ${Math.max(...values)}`);

  console.log("\nid ranges");
  const ranges = await Promise.all([client.reserve("order-id", 100), client.reserve("order-id", 100), client.reserve("order-id", 50)]);
  for (const r of ranges) line(`reserve("order-id", ${r.last - r.first + 1})`, r);

  console.log("\nbig numbers");
  const big = new CounterClient({ endpoint, region: "us-east-1", credentials: { accessKeyId: "demo", secretAccessKey: "demo-secret" }, numbers: "bigint" });
  line("bigint increment by 2^60", await big.increment("big", { by: 2n ** 60n }));
  await client.get("big").catch((e: CounterError) => line("same value as number", `CounterError ${e.code}`));

  console.log("\nerrors");
  await client.increment("").catch((e: CounterError) => line('increment("")', `CounterError ${e.code}: ${e.message}`));
  await client.get("x", { tableName: "NoSuchTable" }).catch((e: CounterError) => line("missing table", `CounterError ${e.code}`));
  console.log("\ndone.");
} finally {
  server.close();
}
