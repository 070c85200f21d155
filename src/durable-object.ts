// Entry point `dynacount/durable-object`: the counter buffer that lives in a Cloudflare Durable Object.
export { DurableCounterBuffer } from "./buffer/durable.js";
export type { DurableBufferOptions, DurableState, DurableStorage } from "./buffer/durable.js";
export type { FlushResult } from "./buffer/results.js";
export { DurablePageViews } from "./buffer/pageviews.js";
export type { DurablePageViewsOptions, PageView } from "./buffer/pageviews.js";
