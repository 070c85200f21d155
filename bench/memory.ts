// Heap held by 10,000 pending keys in a CounterBuffer, against a plain Map<string, number> holding the
// same keys: run with --expose-gc. Prints JSON.
import { CounterBuffer, CounterClient } from "../dist/index.js";

const gc = (globalThis as { gc?: () => void }).gc!;
const keys = Array.from({ length: 10_000 }, (_, i) => `page:/articles/${i.toString(36)}-${i}`);
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const client = new CounterClient({ endpoint: "http://127.0.0.1:9", env: {}, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
let before = heap();
const buffer = new CounterBuffer(client, { maxKeys: 1_000_000, flushIntervalMs: 3_600_000 });
for (const key of keys) buffer.add(key, 1);
const bufferBytes = heap() - before;

before = heap();
const map = new Map<string, number>();
for (const key of keys) map.set(key, 1);
const mapBytes = heap() - before;

console.log(JSON.stringify({ bufferBytes, mapBytes, pending: buffer.pending, size: map.size }));
