// The client's address under dynacount/hono's trust model, found without importing any Hono adapter.
import type { Context } from "hono";
import { validationError } from "../core/errors.js";
import { checkNames } from "../core/options.js";
import { isPrivateAddress, normaliseAddress } from "./ip.js";

/**
 * What a `connInfo` function may return: Hono's `ConnInfo` (so any adapter's `getConnInfo` fits as it is), an
 * address, or nothing.
 *
 * @example
 * ```ts
 * const fromHeader = (c: Context): ConnInfoResult => c.req.header("x-real-ip"); // only behind a proxy that sets it
 * ```
 */
export type ConnInfoResult = { remote: { address?: string | undefined } } | string | null | undefined;

/**
 * Where the client's address comes from. See {@link clientAddress}.
 *
 * @example
 * ```ts
 * const options: ClientAddressOptions = { trustProxies: 1 }; // behind one load balancer that appends to X-Forwarded-For
 * ```
 */
export interface ClientAddressOptions {
  /**
   * How many proxies of your own sit in front of the app, each appending the address it received the request
   * from to `X-Forwarded-For` (AWS ALB, nginx with `$proxy_add_x_forwarded_for`, Caddy, Traefik): the client is
   * then the entry this many places from the end of X-Forwarded-For followed by the connection's own address.
   * Entries further left were written by the client and are never read. Too high a number lets clients choose
   * their address; too low makes every client share a proxy's budget. Not used on Cloudflare (see
   * {@link clientAddress}). @default 0 (the connection's own address)
   */
  trustProxies?: number;
  /**
   * The connection's address, when the built-in detection does not know your server: for instance the
   * `getConnInfo` of your Hono adapter (`import { getConnInfo } from "hono/vercel"`), or a function returning
   * the address. Replaces the built-in detection, Cloudflare's included. An exception counts as no address.
   */
  connInfo?: (c: Context) => ConnInfoResult;
  /**
   * IPv6 clients count by network of this many bits (`2001:db8:1:2::/64`): one subscriber gets at least a /64 and
   * can use a new address for every request. `false` counts each IPv6 address alone. @default 64
   */
  ipv6Subnet?: number | false;
}

/** What {@link locateClient} found. */
export interface Located {
  /** The client's address, normalised; undefined when none was found. */
  address: string | undefined;
  /**
   * The request came from a private or loopback address with an X-Forwarded-For header while `trustProxies` is 0:
   * probably a proxy whose address every client now shares.
   */
  proxyHint: boolean;
}

/** The option names {@link clientAddress} knows (the middleware adds its own). */
export const ADDRESS_OPTION_NAMES = ["trustProxies", "connInfo", "ipv6Subnet"] as const;
const NAMES = /* @__PURE__ */ new Set<string>(ADDRESS_OPTION_NAMES);

/**
 * Throws a Validation error naming the first bad address option. Plain checks rather than zod schemas, like
 * `checkNames`: the middleware is often built per request (the README's lazily created limiter), and schemas
 * would bring zod into a Worker that otherwise has no use for it here.
 */
export function checkAddressOptions(options: ClientAddressOptions, what: string): void {
  const { trustProxies, connInfo, ipv6Subnet } = options;
  const bad = (name: string, problem: string) => validationError(`Invalid ${what} option "${name}": must be ${problem}`);
  if (trustProxies !== undefined && !(Number.isInteger(trustProxies) && trustProxies >= 0))
    throw bad("trustProxies", "an integer of at least 0");
  if (connInfo !== undefined && typeof connInfo !== "function") throw bad("connInfo", "a function");
  if (ipv6Subnet !== undefined && ipv6Subnet !== false && !(Number.isInteger(ipv6Subnet) && ipv6Subnet >= 1 && ipv6Subnet <= 128))
    throw bad("ipv6Subnet", "an integer from 1 to 128, or false");
}

/**
 * The client's address, or `undefined` when there is none to trust. Never the left-most `X-Forwarded-For` entry,
 * which any client can write:
 * - the connection's address is `connInfo(c)` when given; otherwise, on Cloudflare Workers, `cf-connecting-ip`
 *   (Cloudflare's edge sets it and replaces any the client sent; `trustProxies` is not used there); elsewhere the
 *   peer of the socket as the server reports it: `@hono/node-server` (`c.env.incoming`), `Bun.serve({ fetch:
 *   app.fetch })` (`server.requestIP`), `Deno.serve(app.fetch)` (`remoteAddr`), AWS Lambda (`requestContext`),
 *   Lambda@Edge and Netlify. Off Cloudflare no header is believed (`cf-connecting-ip` included), except the
 *   X-Forwarded-For entries that `trustProxies` vouches for.
 * - with `trustProxies: n`, the entry n places from the end of `[...X-Forwarded-For, connection address]`; with
 *   fewer entries, the first (the farthest address the proxies saw).
 * The address is normalised (ports cut, `::ffff:` IPv4 unwrapped, IPv6 grouped by `ipv6Subnet`). Bad options are
 * a Validation error; no request makes it throw.
 *
 * @example
 * ```ts
 * app.use("/login", rateLimit(limiter, { identifier: (c) => `${clientAddress(c, { trustProxies: 1 }) ?? "unknown"}:${c.req.header("x-user") ?? ""}` }));
 * ```
 */
export function clientAddress(c: Context, options: ClientAddressOptions = {}): string | undefined {
  checkNames(options, NAMES, "clientAddress");
  checkAddressOptions(options, "clientAddress");
  return locateClient(c, options).address;
}

/** {@link clientAddress} on options already checked, with what the middleware's warnings need. */
export function locateClient(c: Context, options: ClientAddressOptions): Located {
  const { trustProxies = 0, connInfo, ipv6Subnet = 64 } = options;
  const cloudflare = !connInfo && onCloudflare(c);
  // Only servers on Node, Bun and Deno put a socket in c.env: the Workers/browser build leaves the probes out.
  const connection = connInfo
    ? fromConnInfo(c, connInfo)
    : cloudflare
      ? c.req.header("cf-connecting-ip")
      : typeof DYNACOUNT_WEB_BUILD === "undefined"
        ? socketPeer(c)
        : undefined;
  // Cloudflare's edge is the proxy, and cf-connecting-ip already says who connected to it.
  const hops = trustProxies > 0 && !cloudflare ? forwarded(c) : [];
  // [...hops, connection]: the entry trustProxies from the end is hops[length - trustProxies]; fewer: the first.
  const picked = hops.length === 0 ? connection : hops[Math.max(0, hops.length - trustProxies)];
  const normal = picked === undefined ? "" : normaliseAddress(picked, ipv6Subnet);
  const proxyHint =
    typeof DYNACOUNT_WEB_BUILD === "undefined" &&
    trustProxies === 0 &&
    connection !== undefined &&
    forwarded(c).length > 0 &&
    isPrivateAddress(connection);
  return { address: normal === "" ? undefined : normal, proxyHint };
}

/** The non-empty entries of X-Forwarded-For, in order (a repeated header's values are joined by `, `). */
function forwarded(c: Context): string[] {
  return (c.req.header("x-forwarded-for") ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean);
}

/**
 * Cloudflare Workers: the request carries Cloudflare's `cf` object, or the runtime says so. Self-hosted workerd
 * answers the same and sets no `cf-connecting-ip`: give it `connInfo` or `identifier`.
 */
function onCloudflare(c: Context): boolean {
  try {
    return !!(c.req.raw as { cf?: unknown }).cf || navigator.userAgent === "Cloudflare-Workers";
  } catch {
    // No navigator (Node 20), or a Request whose getters throw: not Cloudflare.
    return false;
  }
}

/** `connInfo(c)` as an address; a throw (say, Hono's Bun getConnInfo called through `app.request`) is none. */
function fromConnInfo(c: Context, connInfo: (c: Context) => ConnInfoResult): string | undefined {
  try {
    const info = connInfo(c);
    return stringOr(typeof info === "string" ? info : info?.remote?.address);
  } catch {
    return undefined;
  }
}

const stringOr = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

/** Just enough of the servers' objects to read the peer, each optional: `c.env` is whatever the server passed. */
interface ServerEnv {
  incoming?: { socket?: { remoteAddress?: unknown } };
  requestIP?: (request: Request) => { address?: unknown } | null;
  server?: ServerEnv;
  remoteAddr?: { hostname?: unknown };
  requestContext?: { identity?: { sourceIp?: unknown }; http?: { sourceIp?: unknown } };
  event?: { Records?: { cf?: { request?: { clientIp?: unknown } } }[] };
  context?: { ip?: unknown };
}

/**
 * The socket peer as the server put it in `c.env`, the way Hono's own `getConnInfo` helpers read it (none is
 * imported: they would bring adapter code into every bundle). A server's own object, never the client's input.
 */
function socketPeer(c: Context): string | undefined {
  try {
    const env = c.env as ServerEnv | undefined;
    if (typeof env !== "object" || env === null) return undefined;
    // `{ server }` is how Hono's helpers accept a server wrapped by the app (Bun: `app.fetch(req, { server })`).
    for (const holder of [env, env.server]) {
      if (typeof holder !== "object" || holder === null) continue;
      // @hono/node-server: `{ incoming, outgoing }` (node:http's IncomingMessage and ServerResponse).
      const node = holder.incoming?.socket?.remoteAddress;
      if (typeof node === "string") return node;
      // Bun.serve({ fetch: app.fetch }): the env is the Server, whose requestIP knows each request's peer.
      if (typeof holder.requestIP === "function") {
        const bun = holder.requestIP(c.req.raw)?.address;
        if (typeof bun === "string") return bun;
      }
    }
    // Deno.serve(app.fetch): the handler's second argument, ServeHandlerInfo.
    const deno = env.remoteAddr?.hostname;
    if (typeof deno === "string") return deno;
    // AWS Lambda behind API Gateway (hono/aws-lambda): REST APIs (v1) and HTTP APIs (v2).
    const lambda = env.requestContext?.identity?.sourceIp ?? env.requestContext?.http?.sourceIp;
    if (typeof lambda === "string") return lambda;
    // Lambda@Edge (hono/lambda-edge): CloudFront's record of the viewer.
    const edge = env.event?.Records?.[0]?.cf?.request?.clientIp;
    if (typeof edge === "string") return edge;
    // Netlify (hono/netlify): the edge function's context.
    const netlify = env.context?.ip;
    return typeof netlify === "string" ? netlify : undefined;
  } catch {
    // A getter that throws (a Bun request that is not the server's, a Proxy): no address, never a 500.
    return undefined;
  }
}

declare const DYNACOUNT_WEB_BUILD: true | undefined;
