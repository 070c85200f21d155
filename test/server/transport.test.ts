// The two ways a request leaves Node (node:http(s) with a keep-alive agent, the default; and fetch), on both
// servers, over TLS, and with answers larger than one chunk. The rest of the client suite runs on both too
// (test/run.ts runs client.test.ts and failures.test.ts again with DYNACOUNT_TEST_TRANSPORT=fetch).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { CounterError } from "../../src/index.ts";
import { startFaultProxy } from "../support/fault-proxy.ts";
import { clientFor, credentials, freshTable, rejection, SECRET, servers } from "../support/harness.ts";
import { root } from "../support/workers.ts";

const TRANSPORTS = ["auto", "fetch"] as const;

for (const server of await servers()) {
  describe(`transports on ${server.name}`, () => {
    it('Node sends over node:http with keep-alive by default; transport: "fetch" or a given fetch send over fetch', async () => {
      const table = await freshTable(server.endpoint);
      const headers: http.IncomingHttpHeaders[] = [];
      const proxy = await startFaultProxy(server.endpoint, (info) => (headers.push(info.headers), "pass"));
      after(() => proxy.close());
      const tableName = table.table.tableName;
      const byDefault = clientFor(proxy.endpoint, { tableName });
      const viaFetch = clientFor(proxy.endpoint, { tableName, transport: "fetch" });
      let given = 0;
      const viaGiven = clientFor(proxy.endpoint, { tableName, fetch: (input, init) => (given++, fetch(input, init)) });
      assert.deepEqual([await byDefault.increment("k"), await viaFetch.increment("k"), await viaGiven.increment("k")], [1, 2, 3]);
      assert.equal(given, 1);
      // undici's fetch sends the Fetch standard's sec-fetch-mode; node:http does not, and keeps the connection.
      assert.deepEqual(
        headers.map((h) => h["sec-fetch-mode"] ?? "none"),
        ["none", "cors", "cors"],
      );
      assert.equal(headers[0]!.connection, "keep-alive");
      for (const h of headers) assert.ok(!JSON.stringify(h).includes(SECRET), "the secret never travels");
    });

    for (const transport of TRANSPORTS) {
      it(`${transport}: an answer of 300 KB with characters split across chunks arrives whole`, async () => {
        const client = await freshTable(server.endpoint, { transport });
        // 1, 2, 3 and 4 bytes of UTF-8 in turn: chunk boundaries fall inside characters.
        const text = "aé€😀".repeat(30_000);
        const Key = { id: { S: "big" } };
        await client.send("PutItem", { TableName: client.table.tableName, Item: { ...Key, text: { S: text } } }, { idempotent: true });
        const answer = await client.send<{ Item: { text: { S: string } } }>(
          "GetItem",
          { TableName: client.table.tableName, Key },
          { idempotent: true },
        );
        assert.equal(answer.Item.text.S.length, text.length);
        assert.ok(answer.Item.text.S === text);
      });
    }
  });
}

describe("TLS", () => {
  const certFile = path.join(root, "test/support/tls/localhost-cert.pem");

  /** An https server with the fixture certificate, forwarding to the plain-http DynamoDB server. */
  async function tlsFront(target: string): Promise<string> {
    const upstream = new URL(target);
    const server = https.createServer(
      { key: readFileSync(path.join(root, "test/support/tls/localhost-key.pem")), cert: readFileSync(certFile) },
      (req, res) => {
        const out = http.request(
          { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        req.pipe(out);
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    after(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
    return `https://localhost:${(server.address() as AddressInfo).port}`;
  }

  it("an https endpoint with a trusted certificate works on both transports (fresh Node, NODE_EXTRA_CA_CERTS)", async () => {
    const [server] = await servers();
    const table = await freshTable(server!.endpoint);
    const endpoint = await tlsFront(server!.endpoint);
    const script = `
      import { CounterClient } from "dynacount";
      const options = { endpoint: ${JSON.stringify(endpoint)}, region: "us-east-1", env: {}, tableName: ${JSON.stringify(table.table.tableName)},
        credentials: ${JSON.stringify(credentials)} };
      const values = [];
      for (const transport of ["auto", "fetch"]) values.push(await new CounterClient({ ...options, transport }).increment("tls"));
      console.log(JSON.stringify(values));`;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: root,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: certFile },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.deepEqual(JSON.parse(stdout), [1, 2]);
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: a certificate that fails verification is a Network error, not sent, without secrets`, async () => {
      const [server] = await servers();
      const endpoint = await tlsFront(server!.endpoint);
      const client = clientFor(endpoint, { transport, retry: { attempts: 1 } });
      const error = await rejection(client.increment("tls"));
      assert.ok(error instanceof CounterError, String(error));
      assert.equal(error.code, "Network");
      assert.equal(error.ambiguous, false, error.message);
      assert.match(error.message, /it was not sent/);
      assert.ok(!JSON.stringify({ error, message: error.message, cause: String(error.cause) }).includes(SECRET));
    });
  }
});
