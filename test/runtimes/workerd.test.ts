import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bundleWorker, startMiniflare } from "../support/workers.ts";
import { serversFrom } from "./cases.ts";

// The Worker bundles the built package with the workerd/browser conditions and runs without
// nodejs_compat: a `node:` import or Node global anywhere in it fails here.
const script = await bundleWorker("test/runtimes/workerd-worker.ts");

describe("workerd (miniflare, no nodejs_compat)", () => {
  for (const server of serversFrom(process.env.DYNACOUNT_TEST_SERVERS)) {
    it(`runs every runtime case against ${server.name}`, async (t) => {
      const mf = startMiniflare(script, { compatibilityFlags: [] });
      try {
        const res = await mf.dispatchFetch(`http://worker/?server=${server.name}&endpoint=${encodeURIComponent(server.endpoint)}`);
        const results = (await res.json()) as { name: string; ok: boolean; error?: string }[];
        assert.ok(results.length >= 5);
        for (const r of results) await t.test(r.name, () => assert.ok(r.ok, r.error ?? r.name));
      } finally {
        await mf.dispose();
      }
    });
  }
});
