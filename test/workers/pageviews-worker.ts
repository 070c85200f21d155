// A Worker for the page-view tests in workerd: a PageViewsObject (DurablePageViews) as design.md declares it, the
// PageViewTracker on every other path, and routes that let the test record, flush and look at an object.
import { DurableObject } from "cloudflare:workers";
import { CounterClient, PageViewTracker, type FlushResult, type PageView } from "../../src/index.ts";
import { DurablePageViews } from "../../src/durable-object.ts";

interface Env {
  PAGE_VIEWS: DurableObjectNamespace<PageViewsObject>;
  PAGEVIEWS_SECRET: string;
  TABLE: string;
  FLUSH_MS: string;
  /** "worker": the tracker hashes visitors; "object": the object does. */
  HASH_IN: string;
  [name: string]: unknown;
}

export class PageViewsObject extends DurableObject<Env> {
  views = new DurablePageViews(
    this.ctx,
    new CounterClient({ env: this.env, tableName: this.env.TABLE, timeoutMs: 1000, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 } }),
    {
      secret: this.env.PAGEVIEWS_SECRET,
      flushIntervalMs: Number(this.env.FLUSH_MS),
      maxRetryDelayMs: 300,
      onFlush: (r) => void this.flushes.push(r),
      onError: (e) => void this.errors.push(`${e.code}: ${e.message}`),
    },
  );
  flushes: FlushResult[] = [];
  errors: string[] = [];
  /** RPCs and views received by this incarnation. */
  calls = 0;
  received = 0;

  async record(views: PageView[], batchId?: string) {
    this.calls++;
    this.received += views.length;
    await this.views.record(views, batchId);
  }
  async flush() {
    return this.views.flush();
  }
  override async alarm(info?: AlarmInvocationInfo) {
    await this.views.alarm(info);
  }
  /** Moves the stored alarm (as a later record would); workerd then runs alarm() itself. */
  async schedule(ms: number) {
    await this.ctx.storage.setAlarm(Date.now() + ms);
  }
  async state() {
    const stored = await this.ctx.storage.list();
    return {
      calls: this.calls,
      received: this.received,
      pending: this.views.pending,
      keys: [...stored.keys()],
      storage: JSON.stringify([...stored]),
      alarm: await this.ctx.storage.getAlarm(),
      flushes: this.flushes.length,
      errors: this.errors,
    };
  }
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const object = () => env.PAGE_VIEWS.get(env.PAGE_VIEWS.idFromName(url.searchParams.get("object") ?? "pageviews-0"));
    switch (url.pathname) {
      case "/_record": {
        const { views, batchId } = (await request.json()) as { views: PageView[]; batchId?: string };
        await object().record(views, batchId);
        return Response.json({ ok: true });
      }
      case "/_flush":
        return Response.json(await object().flush());
      case "/_state":
        return Response.json(await object().state());
      case "/_schedule":
        await object().schedule(Number(url.searchParams.get("ms") ?? "0"));
        return Response.json({ ok: true });
    }
    // Every other path is the site: a page (or an asset), counted by the tracker after the answer.
    const response = url.pathname.endsWith(".js")
      ? new Response("js", { headers: { "content-type": "text/javascript" } })
      : new Response("<h1>hi</h1>", { headers: { "content-type": "text/html" } });
    const tracker = new PageViewTracker(env.PAGE_VIEWS, {
      objects: 2,
      batchMs: 100,
      ...(env.HASH_IN === "worker" ? { secret: env.PAGEVIEWS_SECRET } : {}),
    });
    ctx.waitUntil(tracker.track(request, response));
    return response;
  },
};
