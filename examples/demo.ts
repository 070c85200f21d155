// `npm run demo`: dynacount against an embedded dynalite (no Java, no AWS account).
import { createRequire } from "node:module";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  CounterBuffer,
  CounterClient,
  type CounterError,
  IdAllocator,
  RateLimiter,
  rateLimitHeaders,
  ShardedCounter,
} from "../src/index.ts";
import * as atomicCounter from "../src/compat.ts";

const require = createRequire(import.meta.url);
const dynalite = require("dynalite") as (options: object) => Server;

const server = dynalite({ createTableMs: 0 });
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const line = (label: string, value: unknown) =>
  console.log(
    `  ${label.padEnd(42)} ${typeof value === "string" ? value : JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v))}`,
  );

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
  const big = new CounterClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "demo", secretAccessKey: "demo-secret" },
    numbers: "bigint",
  });
  line("bigint increment by 2^60", await big.increment("big", { by: 2n ** 60n }));
  await client.get("big").catch((e: CounterError) => line("same value as number", `CounterError ${e.code}`));

  // Use cases, each through a client that counts its requests.
  let requests = 0;
  const counted = new CounterClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "demo", secretAccessKey: "demo-secret" },
    fetch: (input, init) => {
      requests++;
      return fetch(input, init);
    },
  });
  const spent = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
    const before = requests;
    const result = await work();
    return [result, requests - before];
  };

  console.log("\npage views through a CounterBuffer (exactly-once flushes)");
  const pages = ["/", "/pricing", "/docs", "/blog/launch", "/about"];
  const [flushed, viewRequests] = await spent(async () => {
    const buffer = new CounterBuffer(counted, { writerId: "demo", maxKeys: 1000 });
    for (let i = 0; i < 50_000; i++) buffer.add(`page:${pages[(i * 7) % pages.length]}`);
    return buffer.close();
  });
  for (const page of pages) line(`views of ${page}`, await client.get(`page:${page}`));

  console.log("\nrate limiting (10 requests per minute, sliding window)");
  const limiter = new RateLimiter(counted, { limit: 10, windowMs: 60_000 });
  // A denied call changes nothing in DynamoDB; once an identifier has nothing left, it is answered from memory.
  const [decisions, limitRequests] = await spent(async () => {
    const out = [];
    for (let i = 0; i < 25; i++) out.push(await limiter.limit("ip:203.0.113.7"));
    return out;
  });
  const allowed = decisions.filter((d) => d.success).length;
  line(
    "25 calls from one IP",
    `${allowed} allowed, ${25 - allowed} blocked (${decisions.filter((d) => d.reason === "cacheBlock").length} answered from the local cache)`,
  );
  line("last answer", {
    success: decisions[24]!.success,
    remaining: decisions[24]!.remaining,
    reset: new Date(decisions[24]!.reset).toISOString(),
  });

  console.log("\na hot API key: 4 instances sharing 500 requests a minute with lease: 20 (token bucket)");
  const instances = Array.from(
    { length: 4 },
    () => new RateLimiter(counted, { limit: 500, windowMs: 60_000, algorithm: "token-bucket", lease: 20 }),
  );
  const [hot, hotRequests] = await spent(() => Promise.all(Array.from({ length: 800 }, (_, i) => instances[i % 4]!.limit("key:hot"))));
  const hotAllowed = hot.filter((d) => d.success).length;
  line(
    "800 calls on one key",
    `${hotAllowed} allowed (a bucket of 500, refilling 500 a minute), ${hot.filter((d) => d.reason === "lease").length} answered from a lease`,
  );
  line("requests per call", `${hotRequests} requests for 800 calls = ${(hotRequests / 800).toFixed(3)}`);
  const denied = hot.find((d) => !d.success);
  if (denied) line("headers of a denied call", rateLimitHeaders(denied, { windowMs: 60_000 }));

  console.log("\norder ids (IdAllocator, blocks of 100)");
  const [ids, idRequests] = await spent(async () => {
    const allocators = [new IdAllocator(counted, "order-id"), new IdAllocator(counted, "order-id")];
    return Promise.all(Array.from({ length: 1000 }, (_, i) => allocators[i % 2]!.next()));
  });
  line(
    "1,000 ids from 2 allocators",
    `${new Set(ids).size} unique, ${Math.min(...ids)}…${Math.max(...ids)} (after the 250 reserved above)`,
  );

  console.log("\na hot counter (ShardedCounter, 8 shards)");
  const likes = new ShardedCounter(counted, "likes:launch-post", { shards: 8 });
  await Promise.all(Array.from({ length: 400 }, () => likes.add()));
  line("400 likes, total() in one BatchGetItem", await likes.total());

  console.log("\ndynamodb-atomic-counter users (dynacount/compat)");
  atomicCounter.config.update({ endpoint, region: "us-east-1", accessKeyId: "demo", secretAccessKey: "demo-secret" });
  const compatValues: number[] = [];
  for (let i = 0; i < 3; i++) await atomicCounter.increment("users", { increment: 12, success: (v) => compatValues.push(v) });
  line('increment("users", { increment: 12 }) ×3', compatValues.join(", "));

  console.log("\nerrors");
  await client.increment("").catch((e: CounterError) => line('increment("")', `CounterError ${e.code}: ${e.message}`));
  await client.get("x", { tableName: "NoSuchTable" }).catch((e: CounterError) => line("missing table", `CounterError ${e.code}`));
  console.log("\nsummary");
  line("ids handed out", `${ids.length} unique ids for ${idRequests} requests`);
  line("page views counted", `${flushed.total} views of ${flushed.keys} pages for ${viewRequests} requests`);
  line("rate limiter", `${allowed} allowed, ${25 - allowed} blocked, ${limitRequests} requests for 25 calls`);
  line("rate limiter with a lease", `${hotAllowed} of 800 calls allowed for ${hotRequests} requests`);
  console.log("\ndone.");
} finally {
  server.close();
}
