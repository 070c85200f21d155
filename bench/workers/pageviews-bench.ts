// Page-view bench Worker: drives page loads through PageViewTracker → DurablePageViews, or the naive paths, inside workerd.
import { DurableObject } from "cloudflare:workers";
import { CounterClient, PageViewTracker, type FlushResult, type PageView, type PageViewsNamespace } from "dynacount";
import { DurableCounterBuffer, DurablePageViews } from "dynacount/durable-object";

interface Env {
  PAGE_VIEWS: DurableObjectNamespace<PageViewsObject>;
  COUNTERS: DurableObjectNamespace<CounterObject>;
  PAGEVIEWS_SECRET: string;
  TABLE: string;
  FLUSH_MS: string;
  [name: string]: unknown;
}

/** Objects the tracker spreads pages over (the tracker's default). */
const OBJECTS = 4;

const clientOf = (env: Env) => new CounterClient({ env, tableName: env.TABLE });

/** The tracker's object, as the example Worker declares it; flushes on its alarm every FLUSH_MS. */
export class PageViewsObject extends DurableObject<Env> {
  views = new DurablePageViews(this.ctx, clientOf(this.env), {
    secret: this.env.PAGEVIEWS_SECRET,
    flushIntervalMs: Number(this.env.FLUSH_MS),
    onFlush: (r) => void (r.requests > 0 && this.flushes++),
  });
  /** Flushes that wrote something (alarms and explicit ones). */
  flushes = 0;
  async record(views: PageView[], batchId?: string): Promise<void> {
    await this.views.record(views, batchId);
  }
  async flush(): Promise<FlushResult> {
    return this.views.flush();
  }
  stats(): { flushes: number; pending: number } {
    return { flushes: this.flushes, pending: this.views.pending };
  }
  override async alarm(info?: AlarmInvocationInfo): Promise<void> {
    await this.views.alarm(info);
  }
}

/** The naive path (b), what the example Worker did before: one object per page, one RPC per view. */
export class CounterObject extends DurableObject<Env> {
  buffer = new DurableCounterBuffer(this.ctx, clientOf(this.env), {
    maxKeys: 100,
    flushIntervalMs: Number(this.env.FLUSH_MS),
    onFlush: (r) => void (r.requests > 0 && this.flushes++),
  });
  flushes = 0;
  async add(key: string): Promise<void> {
    await this.buffer.add(key);
  }
  async flush(): Promise<FlushResult> {
    return this.buffer.flush();
  }
  stats(): { flushes: number; pending: number } {
    return { flushes: this.flushes, pending: this.buffer.pending };
  }
  override async alarm(): Promise<void> {
    await this.buffer.alarm();
  }
}

/** RPCs and views the tracker sent, per run: counted on the Worker's side of the RPC. */
interface Sent {
  rpcs: number;
  views: number;
}

/**
 * The tracker's namespace for a run: the real binding, counted, or a stub that answers at once (so the Worker's
 * own CPU can be told from the objects'). One per run and kept for the isolate: the tracker's queue belongs to
 * its namespace, and every request of the HTTP-driven run must share it, as requests of one isolate do.
 */
const namespaces = new Map<string, { ns: PageViewsNamespace<unknown>; sent: Sent }>();
function namespaceOf(env: Env, run: string, stub: boolean) {
  let entry = namespaces.get(run);
  if (entry === undefined) {
    const sent: Sent = { rpcs: 0, views: 0 };
    const ns: PageViewsNamespace<unknown> = {
      idFromName: (name) => (stub ? name : env.PAGE_VIEWS.idFromName(name)),
      get: (id) => ({
        record(views: PageView[], batchId?: string) {
          sent.rpcs++;
          sent.views += views.length;
          return stub ? Promise.resolve() : env.PAGE_VIEWS.get(id as DurableObjectId).record(views, batchId);
        },
      }),
    };
    namespaces.set(run, (entry = { ns, sent }));
  }
  return entry;
}

const trackerOf = (env: Env, run: string, stub: boolean) =>
  new PageViewTracker(namespaceOf(env, run, stub).ns, { secret: env.PAGEVIEWS_SECRET, objects: OBJECTS, name: `pv-${run}` });

const HTML = "<!doctype html><h1>hi</h1>";
/** View i: its page (`/<pages>p/<n>`: each workload's pages its own) and its visitor (an IP of its own, so uniques are known). */
function pageLoad(i: number, pages: number): [Request, Response] {
  const request = new Request(`https://site.test/${pages}p/${i % pages}`, {
    headers: {
      "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
      "sec-fetch-dest": "document",
      accept: "text/html",
      "cf-connecting-ip": `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`,
    },
  });
  return [request, new Response(HTML, { headers: { "content-type": "text/html" } })];
}

/**
 * Runs `n` page loads in this one request: a tick every millisecond issues the views due by then at `rate` per
 * second (arrivals spread over time, as requests reach an isolate; the tracker's batching depends on it), or
 * with `rate` 0 as fast as `concurrency` in flight allows (the naive paths, whose cost per view does not depend
 * on timing). Resolves when every view's work has (what `ctx.waitUntil` would wait for).
 */
async function drive(n: number, rate: number, concurrency: number, view: (i: number) => Promise<unknown>): Promise<number> {
  const started = Date.now();
  if (rate === 0) {
    let next = 0;
    const worker = async () => {
      while (next < n) await view(next++);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
    return Date.now() - started;
  }
  const pending: Promise<unknown>[] = [];
  let i = 0;
  while (i < n) {
    // Date.now() moves between events in workerd, so this is the time the tick actually ran.
    const due = Math.min(n, Math.floor(((Date.now() - started + 1) * rate) / 1000));
    for (; i < due; i++) pending.push(view(i));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  return Date.now() - started;
}

type Mode = "base" | "base-fast" | "tracker" | "tracker-stub" | "increment" | "do" | "do-stub";

async function run(env: Env, url: URL): Promise<Response> {
  const q = url.searchParams;
  const mode = q.get("mode") as Mode;
  const n = Number(q.get("views"));
  const pages = Number(q.get("pages"));
  const rate = Number(q.get("rate") ?? "0");
  const concurrency = Number(q.get("concurrency") ?? "64");
  const id = q.get("run")!;
  // This request drives every `lanes`-th view from `lane` on: several requests at once, as an isolate serves many
  // (workerd also caps the timers one request may have pending at 10,000, a view each while it waits).
  const lane = Number(q.get("lane") ?? "0");
  const lanes = Number(q.get("lanes") ?? "1");
  let view: (i: number) => Promise<unknown>;
  switch (mode) {
    case "base":
    case "base-fast":
      // The page loads alone: what every mode pays for making the requests, subtracted from the others.
      view = async (i) => void pageLoad(i, pages);
      break;
    case "tracker":
    case "tracker-stub": {
      const tracker = trackerOf(env, id, mode === "tracker-stub");
      view = (i) => tracker.track(...pageLoad(i, pages));
      break;
    }
    case "increment": {
      // Naive (a): one UpdateItem per view, straight from the Worker.
      const client = clientOf(env);
      view = (i) => client.increment(`page:${new URL(pageLoad(i, pages)[0].url).pathname}`);
      break;
    }
    case "do":
    case "do-stub": {
      // Naive (b): one RPC per view to the page's object (the stub resolves at once: the Worker's side alone).
      view = (i) => {
        const page = new URL(pageLoad(i, pages)[0].url).pathname;
        return mode === "do-stub" ? Promise.resolve() : env.COUNTERS.get(env.COUNTERS.idFromName(`${id}:${page}`)).add(`page:${page}`);
      };
      break;
    }
    default:
      return Response.json({ error: `unknown mode ${mode}` }, { status: 400 });
  }
  const ms = await drive(
    Math.ceil((n - lane) / lanes),
    mode.startsWith("tracker") || mode === "base" ? rate / lanes : 0,
    concurrency,
    (j) => view(lane + j * lanes),
  );
  return Response.json({ ms, sent: namespaces.get(id)?.sent ?? { rpcs: 0, views: 0 } });
}

/** The objects of a run: the tracker's `pv-<run>-<n>`, or the naive path's one per page. */
function objectsOf(env: Env, mode: string, id: string, pages: number) {
  return mode === "do"
    ? Array.from({ length: pages }, (_, p) => env.COUNTERS.get(env.COUNTERS.idFromName(`${id}:/${pages}p/${p}`)))
    : Array.from({ length: OBJECTS }, (_, o) => env.PAGE_VIEWS.get(env.PAGE_VIEWS.idFromName(`pv-${id}-${o}`)));
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const q = url.searchParams;
    switch (url.pathname) {
      case "/_run":
        return run(env, url);
      case "/_flush": {
        // Whatever the alarms have not written yet, now: then every view is in DynamoDB. Stats after it.
        const objects = objectsOf(env, q.get("mode")!, q.get("run")!, Number(q.get("pages")));
        await Promise.all(objects.map((o) => o.flush()));
        const stats = await Promise.all(objects.map((o) => o.stats()));
        return Response.json({
          flushes: stats.reduce((a, s) => a + s.flushes, 0),
          pending: stats.reduce((a, s) => a + s.pending, 0),
          sent: namespaces.get(q.get("run")!)?.sent ?? { rpcs: 0, views: 0 },
        });
      }
    }
    // Any other path is a page of the site, counted the way a real Worker counts it (the HTTP-driven check).
    const response = new Response(HTML, { headers: { "content-type": "text/html" } });
    ctx.waitUntil(trackerOf(env, q.get("run") ?? "http", false).track(request, response));
    return response;
  },
};
