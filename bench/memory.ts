// Heap held by 10,000 pending keys: `memory.ts buffer` (a CounterBuffer) or `memory.ts map` (a plain
// Map<string, number>, the floor), each in a fresh process run with --expose-gc. Prints JSON.
import { CounterBuffer, CounterClient } from "../dist/index.js";

const gc = (globalThis as { gc?: () => void }).gc!;
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const keys = Array.from({ length: 10_000 }, (_, i) => `page:/articles/${i.toString(36)}-${i}`);
// Hashing a template-literal string flattens it, which allocates; do that before measuring.
new Set(keys);
const client = new CounterClient({ endpoint: "http://127.0.0.1:9", env: {}, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
const warm = new CounterBuffer(client, { maxKeys: 1_000_000, flushIntervalMs: 3_600_000 });
warm.add("warm-up"); // loads and compiles the code paths before measuring

const before = heap();
let held: unknown;
if (process.argv[2] === "buffer") {
  const buffer = new CounterBuffer(client, { maxKeys: 1_000_000, flushIntervalMs: 3_600_000 });
  for (const key of keys) buffer.add(key, 1);
  held = buffer;
} else {
  const map = new Map<string, number>();
  for (const key of keys) map.set(key, 1);
  held = map;
}
const bytes = heap() - before;
console.log(JSON.stringify({ kind: process.argv[2], bytes, held: held !== undefined }));
