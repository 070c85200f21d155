// The two builds: one for Node, Bun and Deno (ESM + CJS + types), one for workerd and browsers without the Node path.
import { defineConfig, type Options } from "tsup";

const base: Options = {
  entry: { index: "src/index.ts", "durable-object": "src/durable-object.ts", compat: "src/compat.ts", hono: "src/hono.ts" },
  clean: false,
  target: "es2022",
  platform: "neutral",
  sourcemap: false,
  splitting: true,
  // Bundled: importing zod's package cost ~55 ms of a Node cold start, and a Worker bundles it anyway.
  noExternal: ["zod"],
};

export default defineConfig([
  // Class names kept: CommonJS output would otherwise print errors as `_class [CounterError]`.
  { ...base, name: "node", format: ["esm", "cjs"], dts: true, keepNames: true },
  // package.json `exports` conditions workerd/worker/browser: DYNACOUNT_WEB_BUILD folds the Node-only paths away.
  { ...base, name: "web", format: ["esm"], dts: false, outDir: "dist/web", define: { DYNACOUNT_WEB_BUILD: "true" } },
]);
