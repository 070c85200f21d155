// A page-view counter on Cloudflare Workers, and a rate-limited API. Every page load is tracked by the Worker
// (bots and assets left out), sent in batches to a Durable Object (DurablePageViews) that stores it and flushes
// per page and hour to DynamoDB on an alarm, exactly once; the stats are read back from DynamoDB.
//
//   GET  /<any path>             an HTML page that counts its own view and shows its badge and chart
//   GET  /stats?page=/path       → JSON: total, today's views and unique visitors, 24 hourly and 30 daily counts, today's top pages
//   GET  /chart.svg?page=/path   an SVG chart of the last 24 hours and 30 days
//   GET  /badge.svg?page=/path   an SVG badge with the page's total views
//   POST /flush                  writes every object's pending views now (e.g. before a deploy)
//   GET  /api/<anything>         rate limited: RATE_LIMIT requests per minute per client IP, else 429
import { DurableObject } from "cloudflare:workers";
import { CounterClient, PageViews, PageViewTracker, RateLimiter, rateLimitHeaders, type PageView, type SeriesPoint } from "dynacount";
import { DurablePageViews } from "dynacount/durable-object";
import { badge, chart } from "./svg.ts";

// What `wrangler types` would generate for wrangler.toml (plus the secrets): no index signature needed.
export interface Env {
  PAGE_VIEWS: DurableObjectNamespace<PageViewsObject>;
  /** Hashes visitors for unique counts (`wrangler secret put PAGEVIEWS_SECRET`); without it, no uniques. */
  PAGEVIEWS_SECRET?: string;
  TABLE_NAME: string;
  FLUSH_INTERVAL_MS: string;
  RATE_LIMIT?: string;
  AWS_REGION: string;
  AWS_ACCESS_KEY_ID?: string;
  AWS_SECRET_ACCESS_KEY?: string;
  AWS_ENDPOINT_URL_DYNAMODB?: string;
}

/** Objects the pages are spread over (by a hash of the page); `/flush` flushes each. */
const OBJECTS = 2;
const HOUR = 3_600_000;
const DAY = 86_400_000;

const clientOf = (env: Env) => new CounterClient({ env, tableName: env.TABLE_NAME });

export class PageViewsObject extends DurableObject<Env> {
  views = new DurablePageViews(this.ctx, clientOf(this.env), {
    ...(this.env.PAGEVIEWS_SECRET ? { secret: this.env.PAGEVIEWS_SECRET } : { uniques: false }),
    flushIntervalMs: Number(this.env.FLUSH_INTERVAL_MS),
  });

  /** RPC from the Worker's tracker: stored before it resolves; a resent batch id is recorded once. */
  async record(views: PageView[], batchId?: string): Promise<void> {
    await this.views.record(views, batchId);
  }

  async flush(): Promise<{ keys: number; requests: number }> {
    const { keys, requests } = await this.views.flush();
    return { keys, requests };
  }

  override async alarm(info?: AlarmInvocationInfo): Promise<void> {
    await this.views.alarm(info);
  }
}

// One tracker and one limiter per isolate: the tracker batches views of concurrent requests into few RPCs, the
// limiter answers identifiers already over their limit from memory.
let tracker: PageViewTracker | undefined;
let limiter: RateLimiter | undefined;

const trackerOf = (env: Env) =>
  (tracker ??= new PageViewTracker(env.PAGE_VIEWS, {
    objects: OBJECTS,
    ...(env.PAGEVIEWS_SECRET ? { secret: env.PAGEVIEWS_SECRET } : {}),
  }));

async function stats(env: Env, page: string, now = Date.now()) {
  const views = new PageViews(clientOf(env));
  const hour = Math.floor(now / HOUR) * HOUR;
  const today = Math.floor(now / DAY) * DAY;
  const day = new Date(today).toISOString().slice(0, 10);
  const [total, last24h, last30d, top, uniques] = await Promise.all([
    views.total(page),
    views.series(page, { bucket: "hour", from: hour - 23 * HOUR, to: hour + HOUR }),
    views.series(page, { bucket: "day", from: today - 29 * DAY, to: today + DAY }),
    views.top({ day, limit: 10 }),
    env.PAGEVIEWS_SECRET ? views.uniques(page, { day }) : undefined,
  ]);
  return {
    page,
    total,
    today: { day, views: last30d.at(-1)?.views ?? 0, ...(uniques === undefined ? {} : { uniques }) },
    last24h,
    last30d,
    top,
  };
}

async function api(request: Request, env: Env, url: URL): Promise<Response> {
  limiter ??= new RateLimiter(clientOf(env), { limit: Number(env.RATE_LIMIT ?? 10), windowMs: 60_000, algorithm: "token-bucket" });
  // Cloudflare sets this header; capped all the same, as anything a request carries.
  const ip = (request.headers.get("cf-connecting-ip") ?? "unknown").slice(0, 64);
  const result = await limiter.limit(`ip:${ip}`);
  const headers = rateLimitHeaders(result, { windowMs: limiter.windowMs });
  if (!result.success) return new Response("Too many requests\n", { status: 429, headers });
  return Response.json({ path: url.pathname, served: true, ...(result.reason ? { reason: result.reason } : {}) }, { headers });
}

const svg = (body: string) =>
  new Response(body, { headers: { "content-type": "image/svg+xml; charset=utf-8", "cache-control": "no-cache" } });

function page(path: string, env: Env): Response {
  const q = encodeURIComponent(path);
  const html = `<!doctype html><meta charset="utf-8"><title>${path.replace(/[<&]/g, "")}</title>
<h1>You are on <code>${path.replace(/[<&]/g, "")}</code></h1>
<p><img src="/badge.svg?page=${q}" alt="views"></p>
<p><img src="/chart.svg?page=${q}" alt="views over time"></p>
<p>This view is counted once the page-view object flushes (every ${Number(env.FLUSH_INTERVAL_MS) / 1000} s here). <a href="/stats?page=${q}">JSON</a></p>`;
  return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/api/")) return api(request, env, url);
    if (url.pathname === "/flush" && request.method === "POST") {
      const flushed = await Promise.all(
        Array.from({ length: OBJECTS }, (_, i) => env.PAGE_VIEWS.get(env.PAGE_VIEWS.idFromName(`pageviews-${i}`)).flush()),
      );
      return Response.json(
        flushed.reduce((a, f) => ({ keys: a.keys + f.keys, requests: a.requests + f.requests }), { keys: 0, requests: 0 }),
      );
    }
    if (url.pathname === "/stats" || url.pathname === "/chart.svg" || url.pathname === "/badge.svg") {
      const asked = url.searchParams.get("page");
      if (!asked?.startsWith("/")) return Response.json({ error: "?page= must be a path such as /hello" }, { status: 400 });
      // The page as the tracker counts it (normalised, cut to its longest), however the link spelled it.
      const path = trackerOf(env).pageOf(new URL(url.origin + asked)); // not new URL(asked, url): "//x" would be a host
      const s = await stats(env, path);
      if (url.pathname === "/stats") return Response.json(s);
      return svg(url.pathname === "/badge.svg" ? badge(s.total) : chart(path, s.last24h as SeriesPoint[], s.last30d as SeriesPoint[]));
    }
    const response = page(trackerOf(env).pageOf(url), env);
    // Counted after the answer: only page loads by people (a browser's navigation, not curl), only successful ones.
    ctx.waitUntil(trackerOf(env).track(request, response));
    return response;
  },
} satisfies ExportedHandler<Env>;
