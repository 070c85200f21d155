// Durable Object add() throughput: one request runs N adds inside the object.
import { DurableObject } from "cloudflare:workers";
import { CounterClient } from "dynacount";
import { DurableCounterBuffer } from "dynacount/durable-object";

interface Env {
  BENCH: DurableObjectNamespace;
  [name: string]: unknown;
}

export class BenchCounter extends DurableObject<Env> {
  buffer = new DurableCounterBuffer(this.ctx, new CounterClient({ env: this.env }), { maxKeys: 1_000_000, flushIntervalMs: 3_600_000 });
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n"));
    const keys = Number(url.searchParams.get("keys"));
    const parallel = url.searchParams.get("mode") === "parallel";
    if (parallel) await Promise.all(Array.from({ length: n }, (_, i) => this.buffer.add(`k${i % keys}`)));
    else for (let i = 0; i < n; i++) await this.buffer.add(`k${i % keys}`);
    return Response.json({ pending: this.buffer.pending });
  }
  override async alarm(): Promise<void> {
    await this.buffer.alarm();
  }
}

export default {
  fetch(request: Request, env: Env) {
    const url = new URL(request.url);
    return env.BENCH.get(env.BENCH.idFromName(url.searchParams.get("do") ?? "a")).fetch(request);
  },
};
