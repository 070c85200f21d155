// A Worker for the Durable Object buffer tests: both Durable Object styles, plus routes that let the test
// await flushes and failures as events instead of sleeping.
import { DurableObject } from "cloudflare:workers";
import { CounterClient, type FlushResult } from "../../src/index.ts";
import { DurableCounterBuffer, type DurableState } from "../../src/durable-object.ts";

interface Env {
  COUNTER: DurableObjectNamespace;
  LEGACY: DurableObjectNamespace;
  MAX_KEYS: string;
  FLUSH_MS: string;
  [name: string]: unknown;
}

/** What both styles share: a buffer plus counters of flushes and failures that requests can wait on. */
class Harness {
  flushes: FlushResult[] = [];
  errors: string[] = [];
  #waiters: (() => void)[] = [];
  buffer: DurableCounterBuffer;
  readonly id: string;

  constructor(state: DurableState, env: Env) {
    this.id = state.id.toString();
    const client = new CounterClient({
      env,
      tableName: String(env.TABLE),
      timeoutMs: 500,
      retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
    });
    this.buffer = new DurableCounterBuffer(state, client, {
      maxKeys: Number(env.MAX_KEYS),
      flushIntervalMs: Number(env.FLUSH_MS),
      maxRetryDelayMs: 300,
      onFlush: (r) => {
        this.flushes.push(r);
        this.#wake();
      },
      onError: (e) => {
        this.errors.push(`${e.code}: ${e.message}`);
        this.#wake();
      },
    });
  }

  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }

  async handle(request: Request, storage: DurableObjectStorage): Promise<Response> {
    const url = new URL(request.url);
    const p = url.searchParams;
    const key = p.get("key") ?? "k";
    switch (url.pathname) {
      case "/add": {
        const n = Number(p.get("n") ?? "1");
        const by = Number(p.get("by") ?? "1");
        const keys = Number(p.get("keys") ?? "1");
        const table = p.get("table");
        const attr = p.get("attr");
        const options = table || attr ? { ...(table ? { tableName: table } : {}), ...(attr ? { countAttribute: attr } : {}) } : undefined;
        await Promise.all(Array.from({ length: n }, (_, i) => this.buffer.add(keys > 1 ? `${key}${i % keys}` : key, by, options)));
        return Response.json({ pending: this.buffer.pending, alarm: await storage.getAlarm() });
      }
      case "/total": {
        const attr = p.get("attr");
        return Response.json({ total: await this.buffer.total(key, attr ? { countAttribute: attr } : undefined) });
      }
      case "/id":
        return Response.json({ id: this.id });
      case "/put":
        // Raw storage records (the layout an older version wrote), loaded by the next instance of the object.
        await storage.put((await request.json()) as Record<string, unknown>);
        return Response.json({ keys: [...(await storage.list()).keys()] });
      case "/schedule":
        // Moves the stored alarm, as a later add reaching maxKeys would; workerd then invokes alarm() itself.
        await storage.setAlarm(Date.now() + Number(p.get("ms") ?? "0"));
        return Response.json({ alarm: await storage.getAlarm() });
      case "/alarm":
        await Promise.all(Array.from({ length: Number(p.get("times") ?? "1") }, () => this.buffer.alarm()));
        return Response.json({ pending: this.buffer.pending });
      case "/wait": {
        const flushes = Number(p.get("flushes") ?? "0");
        const errors = Number(p.get("errors") ?? "0");
        while (this.flushes.length < flushes || this.errors.length < errors) await new Promise<void>((r) => this.#waiters.push(r));
        return Response.json({ flushes: this.flushes, errors: this.errors, pending: this.buffer.pending });
      }
      case "/state": {
        const stored = await storage.list();
        const dead = this.buffer.deadLetters.map((l) => ({ key: l.key, table: l.tableName, amount: l.amount, code: l.error.code }));
        return Response.json({
          pending: this.buffer.pending,
          keys: [...stored.keys()],
          alarm: await storage.getAlarm(),
          flushes: this.flushes.length,
          errors: this.errors,
          dead,
        });
      }
    }
    return new Response("not found", { status: 404 });
  }
}

/** The `DurableObject` class style. */
export class TestCounter extends DurableObject<Env> {
  harness = new Harness(this.ctx, this.env);
  override fetch(request: Request) {
    return this.harness.handle(request, this.ctx.storage);
  }
  override async alarm(info?: AlarmInvocationInfo) {
    await this.harness.buffer.alarm(info);
  }
}

/** The older `(state, env)` constructor style. */
export class LegacyCounter {
  harness: Harness;
  constructor(
    private state: DurableObjectState,
    env: Env,
  ) {
    this.harness = new Harness(state, env);
  }
  fetch(request: Request) {
    return this.harness.handle(request, this.state.storage);
  }
  async alarm() {
    await this.harness.buffer.alarm();
  }
}

export default {
  fetch(request: Request, env: Env) {
    const url = new URL(request.url);
    const ns = url.searchParams.get("style") === "legacy" ? env.LEGACY : env.COUNTER;
    return ns.get(ns.idFromName(url.searchParams.get("do") ?? "main")).fetch(request);
  },
};
