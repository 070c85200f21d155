import { startServers } from "../test/support/servers.ts";
import { rateLimitBench } from "./ratelimit.ts";
const running = await startServers();
try {
  const rows = await rateLimitBench(running.servers, false);
  for (const r of rows) console.log(`${r.server} | ${r.workload} | ${r.implementation} | ${r.requestsPerCall.toFixed(3)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(1)} | ${r.admitted} / ${r.exact}`);
} finally { await running.stop(); }
