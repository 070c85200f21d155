// A Worker for the hostile-input Durable Object tests (test/hostile-durable.test.ts): a DurableCounterBuffer
// with routes that add keys given as JSON (so they may hold any character), flush on request, and report the
// object's storage, its dead letters and what it printed with console.warn.
import { DurableObject } from "cloudflare:workers";
import { CounterClient } from "../../src/index.ts";
import { DurableCounterBuffer } from "../../src/durable-object.ts";

interface Env {
  HOSTILE: DurableObjectNamespace;
  TABLE: string;
  [name: string]: unknown;
}

/** What the object printed with console.warn (the buffer's default dead-letter warning among it). */
const warnings: string[] = [];

export class HostileCounter extends DurableObject<Env> {
  buffer: DurableCounterBuffer;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Kept, not printed: the test reads them through /state.
    console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
    const client = new CounterClient({ env, tableName: env.TABLE, timeoutMs: 2000, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 } });
    // No onDeadLetter: the default warning is what is checked. An hour's interval: flushes happen on request.
    this.buffer = new DurableCounterBuffer(ctx, client, { maxKeys: 10_000, flushIntervalMs: 3_600_000 });
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/add": {
        const { keys, by = 1, table } = (await request.json()) as { keys: string[]; by?: number; table?: string };
        for (const key of keys) await this.buffer.add(key, by, table ? { tableName: table } : undefined);
        return Response.json({ pending: this.buffer.pending });
      }
      case "/flush":
        try {
          return Response.json({ result: await this.buffer.flush() });
        } catch (error) {
          return Response.json({ error: String(error) });
        }
      case "/put":
        // Raw storage records (what an earlier version wrote), loaded by the next incarnation of the object.
        await this.ctx.storage.put((await request.json()) as Record<string, unknown>);
        return Response.json({ keys: [...(await this.ctx.storage.list()).keys()] });
      case "/retry":
        return Response.json({ retried: await this.buffer.retryDeadLetters() });
      case "/state": {
        const stored = await this.ctx.storage.list();
        return Response.json({
          pending: this.buffer.pending,
          keys: [...stored.keys()],
          dead: this.buffer.deadLetters.map((l) => ({ key: l.key, table: l.tableName, amount: l.amount, code: l.error.code })),
          warnings,
        });
      }
    }
    return new Response("not found", { status: 404 });
  }

  override async alarm(info?: AlarmInvocationInfo) {
    await this.buffer.alarm(info);
  }
}

export default {
  fetch(request: Request, env: Env) {
    const url = new URL(request.url);
    return env.HOSTILE.get(env.HOSTILE.idFromName(url.searchParams.get("do") ?? "main")).fetch(request);
  },
};
