// PageViewTracker: turns a Worker's requests into page views and sends them to page-view objects in few RPCs.
import { fn, int, lazy, oneOf, parseOptions, schema, text, timerMs, typed, type Shape } from "../../core/options.js";
import { isBot, isPageLoad, optedOut } from "./bots.js";
import { dayOf } from "./buckets.js";
import { fnv1a } from "./layout.js";
import { allowed, normalizePath, type PageAllowlist, type PathOptions } from "./paths.js";
import { checkViews, MAX_VISITOR, type PageView } from "./views.js";
import { hashVisitor, isHashed } from "./visitor.js";

/** What the tracker calls on a page-view object (the RPC method of your Durable Object class).
 *
 * @example
 * ```ts
 * class PageViewsObject extends DurableObject { async record(views: PageView[], batchId?: string) { await this.views.record(views, batchId); } }
 * ```
 */
export interface PageViewsStub {
  record(views: PageView[], batchId?: string): Promise<unknown>;
}

/** The Durable Object namespace binding of the page-view objects (`env.PAGE_VIEWS`).
 *
 * @example
 * ```ts
 * const ns: PageViewsNamespace<DurableObjectId> = env.PAGE_VIEWS;
 * ```
 */
export interface PageViewsNamespace<Id = unknown> {
  idFromName(name: string): Id;
  get(id: Id): PageViewsStub;
}

/** Options of {@link PageViewTracker}.
 *
 * @example
 * ```ts
 * new PageViewTracker(env.PAGE_VIEWS, { secret: env.PAGEVIEWS_SECRET, objects: 8, spread: (page) => (page === "/" ? 4 : 1) });
 * ```
 */
export interface PageViewTrackerOptions {
  /** Hash visitors here, before they leave the Worker (the objects' `secret`). @default undefined: the objects hash them */
  secret?: string;
  /** Objects pages are spread over by a hash of the page (each counts at most its `maxPages` pages a day). @default 4 */
  objects?: number;
  /** Objects one page's views are spread over, for pages hotter than one object (~1,000 RPCs/s). @default 1 */
  spread?: number | ((page: string) => number);
  /** Count requests from known bots too. @default false */
  bots?: boolean;
  /** With `DNT: 1` or `Sec-GPC: 1`: `"count"` as any view, `"anonymous"` without a visitor (no uniques), `"skip"` not at all. @default "anonymous" */
  doNotTrack?: "count" | "anonymous" | "skip";
  /** How URL paths become pages. */
  paths?: PathOptions;
  /** Pages counted by name; other paths count as "(other)". @default undefined: every path (up to each object's `maxPages` a day) */
  pages?: PageAllowlist;
  /** How long a view waits in the isolate for others to share its RPC. @default 50 */
  batchMs?: number;
  /** Most views in one RPC. @default 1000 */
  maxBatch?: number;
  /** Resends of a batch whose RPC failed (with the same batch id: never counted twice). @default 2 */
  retries?: number;
  /** Object names are `<name>-<n>` (and `<name>-<n>.<j>` for spread pages). @default "pageviews" */
  name?: string;
  /** Called when a batch could not be delivered after its resends. @default console.warn */
  onError?: (error: unknown, info: { views: number; object: string }) => void;
}

const shape = /* @__PURE__ */ lazy(
  (): Shape => ({
    secret: text(16, 4096),
    objects: int(1, 10_000),
    spread: schema<number | ((page: string) => number)>((v) =>
      typeof v === "function" || (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1000)
        ? undefined
        : "must be an integer from 1 to 1000 or a function",
    ),
    bots: typed("boolean"),
    doNotTrack: oneOf(["count", "anonymous", "skip"] as const),
    paths: { lowercase: typed("boolean"), trailingSlash: oneOf(["strip", "keep"] as const), maxLength: int(1, 1024) },
    pages: schema<PageAllowlist>((v) =>
      typeof v === "function" || Array.isArray(v) ? undefined : "must be an array of strings and RegExps, or a function",
    ),
    batchMs: timerMs(),
    maxBatch: int(1, 10_000),
    retries: int(0, 10),
    name: text(1, 200),
    onError: fn(),
  }),
);

/**
 * Counts page views from a Worker. `track(request)` keeps only page loads by people (GET navigations, not bots,
 * not prefetches; with the response, only successful ones), takes the page from the URL's path (normalised)
 * and the visitor from `cf-connecting-ip` and `user-agent`, and queues the view. Views queued in one isolate
 * within `batchMs` go to each object in one RPC, with a batch id so that a resend is recorded once. Each request
 * sends only from its own context (workerd forbids waiting on another request's I/O): the first whose wait ends
 * sends everything queued, the others find nothing left. Trackers of one namespace in an isolate share that queue,
 * and the one that sends uses its own `batchMs`, `maxBatch`, `retries` and `onError`: give them the same options.
 *
 * @example
 * ```ts
 * import { PageViewTracker } from "dynacount";
 *
 * export default {
 *   async fetch(request: Request, env: Env, ctx: ExecutionContext) {
 *     const response = await handle(request);
 *     ctx.waitUntil(new PageViewTracker(env.PAGE_VIEWS, { secret: env.PAGEVIEWS_SECRET }).track(request, response));
 *     return response;
 *   },
 * };
 * ```
 */
export class PageViewTracker<Id = unknown> {
  readonly #ns: PageViewsNamespace<Id>;
  readonly #o: PageViewTrackerOptions;
  /** Views waiting, per object name, and when they go. Shared by every tracker of the namespace in this isolate. */
  readonly #queue: Queue;

  constructor(namespace: PageViewsNamespace<Id>, options: PageViewTrackerOptions = {}) {
    this.#o = parseOptions(shape, options, "page view tracker");
    this.#ns = namespace;
    // Trackers are often made per request: the queue belongs to the namespace, so they all share it.
    let queue = queues.get(namespace);
    if (queue === undefined) queues.set(namespace, (queue = { views: new Map(), sendAt: undefined, round: 0 }));
    this.#queue = queue;
  }

  /**
   * Counts a request (when it is a page load by a person), or an explicit view `{ page, visitor?, at? }`, and
   * resolves once the views queued with it were sent (or found sent by another request). Pass it to
   * `ctx.waitUntil`. Delivery failures go to `onError`; bad explicit input is a `Validation` error.
   *
   * @example
   * ```ts
   * ctx.waitUntil(tracker.track(request, response));
   * ctx.waitUntil(tracker.track({ page: "/signup/done", visitor: userId }));
   * ```
   */
  async track(input: Request | PageView, response?: Response): Promise<void> {
    const view = isRequest(input) ? this.#fromRequest(input, response) : this.#fromView(input);
    if (view === undefined) return;
    if (view.visitor !== undefined && this.#o.secret !== undefined && !isHashed(view.visitor)) {
      view.visitor = await hashVisitor(this.#o.secret, dayOf(view.at!), view.visitor);
    }
    const object = this.#objectOf(view.page);
    const q = this.#queue;
    const queued = q.views.get(object);
    if (queued) queued.push(view);
    else q.views.set(object, [view]);
    // One window for all: the first view into an empty queue sets when it goes, and the views after it wait for
    // that moment, not batchMs each (under steady traffic, a timer per view would send at every timer's end).
    const now = Date.now();
    const sendAt = (q.sendAt ??= now + (this.#o.batchMs ?? 50));
    const round = q.round;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, sendAt - now)));
    // Sent already (by the first request whose wait ended): the views queued since wait for their own window.
    if (q.round === round) await this.flush();
  }

  /**
   * The page a URL counts as (its path normalised by `paths`, then `pages`): what to pass to {@link PageViews}
   * to read the views `track` counted for it.
   *
   * @example
   * ```ts
   * tracker.pageOf("https://example.com/Docs//intro/?ref=x"); // "/Docs/intro"
   * ```
   */
  pageOf(url: string | URL): string {
    return allowed(normalizePath(typeof url === "string" ? new URL(url) : url, this.#o.paths), this.#o.pages);
  }

  /** Sends every view queued in this isolate now, one RPC per object (per `maxBatch` views). */
  async flush(): Promise<void> {
    const batches = [...this.#queue.views];
    this.#queue.views.clear();
    this.#queue.sendAt = undefined;
    this.#queue.round++;
    const max = this.#o.maxBatch ?? 1000;
    await Promise.all(
      batches.flatMap(([object, views]) => {
        const parts: Promise<void>[] = [];
        for (let i = 0; i < views.length; i += max) parts.push(this.#send(object, views.slice(i, i + max)));
        return parts;
      }),
    );
  }

  async #send(object: string, views: PageView[]): Promise<void> {
    const batchId = crypto.randomUUID();
    const retries = this.#o.retries ?? 2;
    for (let attempt = 0; ; attempt++) {
      try {
        // A stub per send, made in the sending request's context (stubs are I/O objects of their request).
        await this.#ns.get(this.#ns.idFromName(object)).record(views, batchId);
        return;
      } catch (error) {
        if (attempt >= retries || (error as { code?: string } | null)?.code === "Validation") {
          const report =
            this.#o.onError ??
            ((e: unknown, info: { views: number; object: string }) =>
              console.warn(
                `dynacount: ${info.views} page views for "${info.object}" were not recorded: ${String((e as Error)?.message ?? e)}`,
              ));
          try {
            report(error, { views: views.length, object });
          } catch {
            // the observer's own failure is its own
          }
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
  }

  #fromRequest(request: Request, response: Response | undefined): PageView | undefined {
    if (!isPageLoad(request, response)) return undefined;
    if (!this.#o.bots && isBot(request)) return undefined;
    const dnt = this.#o.doNotTrack ?? "anonymous";
    const out = dnt !== "count" && optedOut(request);
    if (out && dnt === "skip") return undefined;
    const page = this.pageOf(request.url);
    const ip = request.headers.get("cf-connecting-ip");
    const view: PageView = { page, at: Date.now() };
    // Headers are the client's: cut to what an object accepts, so one odd request cannot fail a batch of others.
    if (!out && ip) view.visitor = `${ip}\n${request.headers.get("user-agent") ?? ""}`.slice(0, MAX_VISITOR);
    return view;
  }

  #fromView(input: PageView): PageView {
    const [checked] = checkViews([input], Date.now());
    const page = allowed(checked!.page, this.#o.pages);
    return { page, at: checked!.at, ...(checked!.visitor !== undefined ? { visitor: checked!.visitor } : {}) };
  }

  /** The object a view of `page` goes to: by a hash of the page, and for a spread page one of its objects at random. */
  #objectOf(page: string): string {
    const base = `${this.#o.name ?? "pageviews"}-${fnv1a(page) % (this.#o.objects ?? 4)}`;
    const s = this.#o.spread;
    const spread = typeof s === "function" ? Math.max(1, Math.min(1000, Math.floor(Number(s(page)) || 1))) : (s ?? 1);
    const j = spread > 1 ? Math.floor(Math.random() * spread) : 0;
    return j === 0 ? base : `${base}.${j}`;
  }
}

/** Views waiting in this isolate for one namespace binding, per object, and when they are sent. */
interface Queue {
  views: Map<string, PageView[]>;
  sendAt: number | undefined;
  /** Counts sends: a view queued in round n was sent once it is past n. */
  round: number;
}

/** The queues of this isolate, per namespace binding. */
const queues = new WeakMap<object, Queue>();

const isRequest = (input: unknown): input is Request => typeof Request !== "undefined" && input instanceof Request;
