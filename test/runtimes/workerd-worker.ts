// workerd: the same cases inside a Worker, bundled like wrangler bundles it, without nodejs_compat.
import * as dynacount from "dynacount";
import { runtimeCases } from "./cases.ts";

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const endpoint = url.searchParams.get("endpoint")!;
    const server = url.searchParams.get("server")!;
    const results = [];
    for (const c of runtimeCases(dynacount as never, "workerd", server, endpoint)) {
      try {
        await c.run();
        results.push({ name: c.name, ok: true });
      } catch (error) {
        results.push({ name: c.name, ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
      }
    }
    return Response.json(results);
  },
};
