// A Worker that counts page views without a DynamoDB write per view (each view is an RPC to a Durable
// Object that stores the increment and flushes all of them on an alarm, exactly once) and rate-limits its
// API per client IP (a token bucket: bursts of RATE_LIMIT, refilled over a minute) with at most one DynamoDB
// request per call, answering with the IETF RateLimit header fields.
//
//   GET  /api/<anything>    rate limited: RATE_LIMIT requests per minute per IP, else 429
//   GET  /<any path>        counts a view of that path
//   GET  /count?page=/path  → { page, views }: DynamoDB's value plus what is still buffered
//   POST /flush?page=/path  writes that page's buffer now (e.g. before a deploy)
import { DurableObject } from "cloudflare:workers";
import { CounterClient, RateLimiter, rateLimitHeaders } from "dynacount";
import { DurableCounterBuffer } from "dynacount/durable-object";

export interface Env {
  PAGE_COUNTER: DurableObjectNamespace<PageCounter>;
  TABLE_NAME?: string;
  FLUSH_INTERVAL_MS?: string;
  RATE_LIMIT?: string;
  // AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_DYNAMODB: vars, secrets or .dev.vars
  [name: string]: unknown;
}

export class PageCounter extends DurableObject<Env> {
  buffer = new DurableCounterBuffer(
    this.ctx,
    new CounterClient({ env: this.env, tableName: this.env.TABLE_NAME ?? "AtomicCounters" }),
    { maxKeys: 100, flushIntervalMs: Number(this.env.FLUSH_INTERVAL_MS ?? 5000) },
  );

  async add(key: string, by = 1): Promise<void> {
    await this.buffer.add(key, by);
  }

  async total(key: string): Promise<number> {
    return this.buffer.total(key);
  }

  async flush(): Promise<{ keys: number; requests: number }> {
    const { keys, requests } = await this.buffer.flush();
    return { keys, requests };
  }

  override async alarm(info?: AlarmInvocationInfo): Promise<void> {
    await this.buffer.alarm(info);
  }
}

/** One object per page: every view of a page coalesces into one pending increment. */
const counterFor = (env: Env, page: string) => env.PAGE_COUNTER.get(env.PAGE_COUNTER.idFromName(page));

// One limiter per isolate, so identifiers already over the limit are answered from its memory.
let limiter: RateLimiter | undefined;

async function api(request: Request, env: Env, url: URL): Promise<Response> {
  limiter ??= new RateLimiter(new CounterClient({ env, tableName: env.TABLE_NAME ?? "AtomicCounters" }), {
    limit: Number(env.RATE_LIMIT ?? 10),
    windowMs: 60_000,
    algorithm: "token-bucket",
  });
  const ip = request.headers.get("cf-connecting-ip") ?? "unknown";
  const result = await limiter.limit(`ip:${ip}`);
  const headers = rateLimitHeaders(result, { windowMs: limiter.windowMs });
  if (!result.success) return new Response("Too many requests\n", { status: 429, headers });
  return Response.json({ path: url.pathname, served: true, ...(result.reason ? { reason: result.reason } : {}) }, { headers });
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/api/")) return api(request, env, url);
    if (url.pathname === "/count" || url.pathname === "/flush") {
      const page = url.searchParams.get("page");
      if (!page) return Response.json({ error: "missing ?page=" }, { status: 400 });
      if (url.pathname === "/flush" && request.method === "POST") return Response.json(await counterFor(env, page).flush());
      return Response.json({ page, views: await counterFor(env, page).total(`page:${page}`) });
    }
    await counterFor(env, url.pathname).add(`page:${url.pathname}`);
    return new Response(`counted a view of ${url.pathname}\n`);
  },
} satisfies ExportedHandler<Env>;
