// Which requests are page loads by people: known bots, non-navigation requests and prefetches are left out.

/**
 * User agents of known bots, crawlers, monitors, link previews and HTTP libraries (matched case-insensitively).
 * An empty user agent counts as a bot too. Where Cloudflare's bot management runs, `request.cf.botManagement`
 * decides as well (a verified bot, or a score below 30).
 */
export const BOT_PATTERN =
  /bot\b|bot[/;-]|crawl|spider|slurp|archiver|facebookexternalhit|meta-externalagent|embedly|preview|headless|phantomjs|puppeteer|playwright|selenium|lighthouse|pagespeed|pingdom|uptime|monitor|statuscake|datadog|newrelic|curl\/|wget|python-|httpie|aiohttp|go-http-client|okhttp|java\/|apache-httpclient|axios|node-fetch|undici|got \(|scrapy|feedfetcher|feedly|validator|yandex|baidu|bingpreview|semrush|ahrefs|mj12|petalbot|bytespider|gptbot|chatgpt|claudebot|anthropic|perplexity|ccbot|applebot|amazonbot|duckduckgo|qwant|seznam|sogou|exabot|dotbot|rogerbot|screaming frog/i;

/** Whether the request comes from a known bot (user agent, or Cloudflare's bot management where present).
 *
 * @example
 * ```ts
 * isBot(request); // true for "Googlebot/2.1", curl, an empty user agent, …
 * ```
 */
export function isBot(request: Request): boolean {
  const ua = request.headers.get("user-agent") ?? "";
  if (ua.trim() === "" || BOT_PATTERN.test(ua)) return true;
  const bm = (request as { cf?: { botManagement?: { verifiedBot?: boolean; score?: number } } }).cf?.botManagement;
  return bm?.verifiedBot === true || (typeof bm?.score === "number" && bm.score > 0 && bm.score < 30);
}

/**
 * Whether the request is a page load: a GET navigation (`Sec-Fetch-Dest: document`, or without fetch metadata
 * an `Accept` naming `text/html`), not a prefetch, and when the response is given, a successful one (2xx or 304).
 *
 * @example
 * ```ts
 * isPageLoad(request, response); // false for /app.js, a fetch() from a page, a 404, a prefetch
 * ```
 */
export function isPageLoad(request: Request, response?: Response): boolean {
  if (request.method !== "GET") return false;
  const h = request.headers;
  const purpose = h.get("sec-purpose") ?? h.get("purpose") ?? h.get("x-moz") ?? "";
  if (/prefetch|prerender/i.test(purpose)) return false;
  const dest = h.get("sec-fetch-dest");
  if (dest !== null ? dest !== "document" : !/text\/html/i.test(h.get("accept") ?? "")) return false;
  if (response !== undefined && !(response.ok || response.status === 304)) return false;
  return true;
}

/** Whether the visitor asked not to be tracked (`DNT: 1` or `Sec-GPC: 1`).
 *
 * @example
 * ```ts
 * optedOut(request); // true with "Sec-GPC: 1"
 * ```
 */
export const optedOut = (request: Request): boolean => request.headers.get("dnt") === "1" || request.headers.get("sec-gpc") === "1";
