// "Certainly not sent" is decided from error codes and anchored per-runtime prefixes, never from text that may hold the URL.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import type { CounterError } from "../../src/index.ts";
import { neverSent } from "../../src/core/not-sent.ts";
import type { Fault } from "../support/fault-proxy.ts";
import { freePort } from "../support/servers.ts";
import { clientFor, credentials, servers, throughProxy } from "../support/harness.ts";
import { root } from "../support/workers.ts";

// URLs whose path or host holds every word the old free-text check looked for.
const URLS = [
  "http://127.0.0.1:8000/cert/ECONNREFUSED/connection refused/ENOTFOUND/EAI_AGAIN/UNABLE_TO_VERIFY",
  "https://cert-refused-enotfound.example.com/certificate",
  "https://dynamodb.us-east-1.amazonaws.com/",
];

const withCode = (make: () => Error, code: string) => Object.assign(make(), { code });
const fetchFailed = (cause: unknown) => new TypeError("fetch failed", { cause });

/**
 * Rejections as each runtime gives them (shapes and texts recorded from Node 20.20 fetch/undici and node:http,
 * Deno 2.9 and 1.x, Bun 1.4 and older, workerd 2026, browsers), for `url`: [what, error, never sent].
 */
function cases(url: string): [string, unknown, boolean][] {
  const { host } = new URL(url);
  return [
    // Node fetch (undici): the code is on `cause`.
    ["node fetch: refused", fetchFailed(withCode(() => new Error("connect ECONNREFUSED 127.0.0.1:8000"), "ECONNREFUSED")), true],
    [
      "node fetch: refused on every address (autoSelectFamily)",
      fetchFailed(withCode(() => new AggregateError([], ""), "ECONNREFUSED")),
      true,
    ],
    ["node fetch: unresolved", fetchFailed(withCode(() => new Error(`getaddrinfo ENOTFOUND ${host}`), "ENOTFOUND")), true],
    ["node fetch: DNS try again", fetchFailed(withCode(() => new Error(`getaddrinfo EAI_AGAIN ${host}`), "EAI_AGAIN")), true],
    ["node fetch: self-signed", fetchFailed(withCode(() => new Error("self-signed certificate"), "DEPTH_ZERO_SELF_SIGNED_CERT")), true],
    [
      "node fetch: unknown issuer",
      fetchFailed(withCode(() => new Error("unable to verify the first certificate"), "UNABLE_TO_VERIFY_LEAF_SIGNATURE")),
      true,
    ],
    ["node fetch: expired", fetchFailed(withCode(() => new Error("certificate has expired"), "CERT_HAS_EXPIRED")), true],
    [
      "node fetch: chain",
      fetchFailed(withCode(() => new Error("self-signed certificate in certificate chain"), "SELF_SIGNED_CERT_IN_CHAIN")),
      true,
    ],
    [
      "node fetch: wrong name",
      fetchFailed(
        withCode(() => new Error(`Hostname/IP does not match certificate's altnames: Host: ${host}`), "ERR_TLS_CERT_ALTNAME_INVALID"),
      ),
      true,
    ],
    ["node fetch: reset", fetchFailed(withCode(() => new Error("other side closed"), "UND_ERR_SOCKET")), false],
    [
      "node fetch: reset mid-body",
      new TypeError("terminated", { cause: withCode(() => new Error("other side closed"), "UND_ERR_SOCKET") }),
      false,
    ],
    ["node fetch: closed", fetchFailed(withCode(() => new Error("read ECONNRESET"), "ECONNRESET")), false],
    // node:http (the Node fast path): the code is on the error itself.
    ["node:http: refused", withCode(() => new Error("connect ECONNREFUSED 127.0.0.1:8000"), "ECONNREFUSED"), true],
    ["node:http: hang up", withCode(() => new Error("socket hang up"), "ECONNRESET"), false],
    ["node:http: closed mid-answer", withCode(() => new Error("the connection closed before the answer ended"), "ECONNRESET"), false],
    ["node:http: pipe", withCode(() => new Error("write EPIPE"), "EPIPE"), false],
    // Deno: no code; hyper's chain after the URL. "(Connect)" is before any connection.
    [
      "deno 2: refused",
      fetchFailed(
        new Error(`error sending request for url (${url}): client error (Connect): tcp connect error: Connection refused (os error 111)`),
      ),
      true,
    ],
    [
      "deno 2: unresolved",
      fetchFailed(
        new Error(
          `error sending request for url (${url}): client error (Connect): dns error: failed to lookup address information: Name or service not known`,
        ),
      ),
      true,
    ],
    [
      "deno 2: certificate",
      fetchFailed(new Error(`error sending request for url (${url}): client error (Connect): invalid peer certificate: UnknownIssuer`)),
      true,
    ],
    [
      "deno 1: refused",
      new TypeError(
        `error sending request for url (${url}): error trying to connect: tcp connect error: Connection refused (os error 111)`,
      ),
      true,
    ],
    [
      "deno 2: closed after the request was read",
      fetchFailed(
        new Error(
          `error sending request from 127.0.0.1:43204 for ${url} (127.0.0.1:8000): client error (SendRequest): connection closed before message completed`,
        ),
      ),
      false,
    ],
    [
      "deno 2: reset",
      fetchFailed(
        new Error(
          `error sending request for url (${url}): client error (SendRequest): connection error: Connection reset by peer (os error 104)`,
        ),
      ),
      false,
    ],
    ["deno 2: reset mid-body", new TypeError("error reading a body from connection"), false],
    [
      "deno: a URL that is not the endpoint's",
      fetchFailed(new Error(`error sending request for url (${url}x): client error (SendRequest): connection closed`)),
      false,
    ],
    ["deno: blocked port", new TypeError("Fetch failed: Requests to port 1 are blocked"), false],
    // Bun: a code on the error (newer releases: the errno name; older ones: "ConnectionRefused").
    [
      "bun: refused",
      withCode(() => new TypeError("ECONNREFUSED: Unable to connect. Is the computer able to access the url?"), "ECONNREFUSED"),
      true,
    ],
    [
      "bun (older): refused",
      withCode(() => new TypeError("Unable to connect. Is the computer able to access the url?"), "ConnectionRefused"),
      true,
    ],
    ["bun: unresolved", withCode(() => new TypeError(`getaddrinfo ENOTFOUND ${host}`), "ENOTFOUND"), true],
    ["bun: self-signed", withCode(() => new TypeError("self signed certificate"), "DEPTH_ZERO_SELF_SIGNED_CERT"), true],
    ["bun: reset", withCode(() => new TypeError("ECONNRESET: The socket connection was closed unexpectedly."), "ECONNRESET"), false],
    // workerd reports a refused connection and a reset alike; browsers say nothing.
    ["workerd: refused or reset", new Error("Network connection lost."), false],
    ["workerd: unresolved or certificate", new Error("internal error; reference = p6crauk8eeiiuq7mqqliguse"), false],
    ["browser", new TypeError("Failed to fetch"), false],
    // Text without a code decides nothing, whatever it says (node-fetch and other wrappers quote the URL).
    ["wrapper quoting the URL", new Error(`request to ${url} failed, reason: socket hang up`), false],
    [
      "wrapper quoting the URL, with a code that is not a refusal",
      withCode(() => new Error(`request to ${url} failed, reason: connect ECONNREFUSED`), "ECONNRESET"),
      false,
    ],
    ["not an error", `connect ECONNREFUSED ${url}`, false],
    ["nothing", undefined, false],
  ];
}

describe("neverSent: which failures certainly never reached the server", () => {
  for (const url of URLS) {
    it(`each runtime's errors, for ${url}`, () => {
      for (const [what, error, expected] of cases(url)) assert.equal(neverSent(error, url), expected, what);
    });
  }
});

/** Faults for every request of `operation`. */
const always =
  (operation: string, fault: Fault) =>
  (info: { operation: string }): Fault =>
    info.operation === operation ? fault : "pass";

type Outcome = { value?: number; error?: { code: string; ambiguous: boolean; retryable: boolean; message: string }; fetches?: number };

/**
 * One `increment("k")` with the default retry attempts (4) on `runtime`: in this process, or in a Deno or Bun
 * child, where `fetches` counts the calls of the global `fetch` (which the client looks up per call).
 */
async function incrementOn(runtime: string, endpoint: string, tableName: string): Promise<Outcome> {
  const options = { endpoint, region: "us-east-1", env: {}, tableName, credentials, retry: { baseDelayMs: 1, maxDelayMs: 5 } };
  if (runtime.startsWith("node")) {
    try {
      return { value: await clientFor(endpoint, { ...options, transport: runtime === "node fetch" ? "fetch" : "auto" }).increment("k") };
    } catch (e) {
      const error = e as CounterError;
      return { error: { code: error.code, ambiguous: error.ambiguous, retryable: error.retryable, message: error.message } };
    }
  }
  const script = (from: string) => `
    import { CounterClient } from ${JSON.stringify(from)};
    const platformFetch = globalThis.fetch;
    let fetches = 0;
    globalThis.fetch = (...args) => (fetches++, platformFetch(...args));
    const client = new CounterClient(${JSON.stringify(options)});
    let out;
    try { out = { value: await client.increment("k") }; }
    catch (e) { out = { error: { code: e.code, ambiguous: e.ambiguous, retryable: e.retryable, message: e.message } }; }
    console.log(JSON.stringify({ ...out, fetches }));`;
  const [command, args] =
    runtime === "deno"
      ? // The source through jsr.json's exports, as a JSR user runs it.
        [`${root}/node_modules/.bin/deno`, ["eval", "--config", "jsr.json", script("@dynacount/dynacount")]]
      : [`${root}/node_modules/.bin/bun`, ["-e", script(`${root}/src/index.ts`)]];
  const { stdout } = await promisify(execFile)(command, args, {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, NO_COLOR: "1" },
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Outcome;
}

const RUNTIMES = ["node", "node fetch", "deno", "bun"];

for (const server of await servers()) {
  describe(`an endpoint whose path holds "cert" and "refused", on ${server.name}`, () => {
    for (const runtime of RUNTIMES) {
      it(`${runtime}: a connection closed after the server read the write is ambiguous and not resent`, async () => {
        const { direct, proxy } = await throughProxy(server.endpoint);
        proxy.setFault(always("UpdateItem", "drop-after"));
        const { value, error, fetches } = await incrementOn(runtime, `${proxy.endpoint}/cert/ENOTFOUND/refused/`, direct.table.tableName);
        assert.equal(value, undefined);
        assert.equal(error?.code, "Network", JSON.stringify(error));
        assert.equal(error.ambiguous, true, error.message);
        const reached = proxy.forwarded.get("UpdateItem");
        if (runtime === "deno") {
          // dynacount sent it once; Deno's fetch itself resends a request once when the connection closes before
          // the answer (denoland/deno#35610; Deno 2.9.5 does), which no caller can turn off.
          assert.equal(fetches, 1, "dynacount did not resend it");
          assert.ok(reached === 1 || reached === 2, `${reached} requests reached the server`);
        } else {
          if (fetches !== undefined) assert.equal(fetches, 1, "dynacount did not resend it");
          assert.equal(reached, 1, "exactly one request reached the server");
        }
        assert.equal(await direct.get("k"), reached, "applied as often as it reached the server");
      });
    }
  });
}

describe(`a refused connection on an endpoint whose path holds "cert"`, () => {
  for (const runtime of RUNTIMES) {
    it(`${runtime}: certainly not sent, so retried and not ambiguous`, async () => {
      const { error } = await incrementOn(runtime, `http://127.0.0.1:${await freePort()}/cert/`, "AtomicCounters");
      assert.equal(error?.code, "Network", JSON.stringify(error));
      assert.equal(error.ambiguous, false, error.message);
      assert.match(error.message, /it was not sent/);
    });
  }
});
