import assert from "node:assert/strict";
import { inspect } from "node:util";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { after, before, describe, it } from "node:test";
import { build } from "esbuild";
import { root } from "../support/workers.ts";

// The built package (npm test builds it first), checked the way npm and JSR users receive it.
const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
  name: string;
  version: string;
  exports: Record<string, unknown>;
};
const jsr = JSON.parse(readFileSync(path.join(root, "jsr.json"), "utf8")) as { exports: Record<string, string> };
const entryPoints = Object.keys(pkg.exports).filter((k) => k !== "./package.json");
const specifier = (entry: string) => (entry === "." ? pkg.name : `${pkg.name}/${entry.slice(2)}`);
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);
const run = (command: string, args: string[], cwd = root) =>
  execFileSync(command, args, { cwd, encoding: "utf8", timeout: 180_000, env: { ...process.env, NO_COLOR: "1" } });

/**
 * Bytes of `code` bundled as wrangler would for workerd (esbuild, minified, workerd/worker/browser conditions),
 * gzip -9. hono is left out: it is the app's own dependency, and dynacount/hono imports only its types.
 */
async function bundledSize(code: string, platform: "neutral" | "browser" = "neutral"): Promise<number> {
  const out = await build({
    stdin: { contents: code, resolveDir: root, loader: "ts" },
    bundle: true,
    minify: true,
    format: "esm",
    platform,
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["hono", "hono/*"],
    write: false,
    logLevel: "silent",
  });
  return gzipSync(out.outputFiles[0]!.contents, { level: 9 }).length;
}

describe("package", () => {
  it("package.json and jsr.json export the same entry points, and every target exists", () => {
    assert.deepEqual(entryPoints.sort(), Object.keys(jsr.exports).sort());
    assert.deepEqual(entryPoints.sort(), [".", "./compat", "./durable-object", "./hono"]);
    for (const target of Object.values(jsr.exports)) assert.ok(existsSync(path.join(root, target)), target);
    for (const conditions of Object.values(pkg.exports).filter((v) => typeof v === "object") as Record<string, Record<string, string>>[]) {
      for (const file of Object.values(conditions).flatMap((c) => Object.values(c))) assert.ok(existsSync(path.join(root, file)), file);
    }
  });

  it("imports as ESM and as CJS with the same exports, sharing one CounterError class across entry points", async () => {
    for (const entry of entryPoints) {
      const esm = (await import(specifier(entry))) as Record<string, unknown>;
      const cjs = require(specifier(entry)) as Record<string, unknown>;
      assert.deepEqual(
        Object.keys(esm)
          .filter((k) => k !== "default")
          .sort(),
        Object.keys(cjs)
          .filter((k) => k !== "default" && k !== "__esModule")
          .sort(),
        entry,
      );
    }
    const main = require("dynacount") as typeof import("dynacount");
    const compat = require("dynacount/compat") as typeof import("dynacount/compat");
    compat.config.update({ endpoint: "http://127.0.0.1:9", accessKeyId: "a", secretAccessKey: "b" });
    const error = await compat.increment("").catch((e: unknown) => e);
    assert.ok(error instanceof main.CounterError, "one class in CJS");
    const esmMain = await import("dynacount");
    const esmCompat = await import("dynacount/compat");
    esmCompat.config.update({ endpoint: "http://127.0.0.1:9", accessKeyId: "a", secretAccessKey: "b" });
    const esmError = await esmCompat.increment("").catch((e: unknown) => e);
    assert.ok(esmError instanceof esmMain.CounterError, "one class in ESM");
    // Classes keep their names through the build (minifiers rename them `_class` without keepNames): what a user
    // sees when an error is logged.
    for (const [format, lib, logged] of [
      ["CJS", main, error],
      ["ESM", esmMain, esmError],
    ] as const) {
      assert.match(inspect(logged), /^CounterError: /, `${format}: a logged error says CounterError`);
      assert.deepEqual(
        ["CounterError", "CounterClient", "CounterBuffer", "RateLimiter", "ConcurrencyLimiter", "IdAllocator"].filter(
          (name) => (lib as Record<string, { name?: string }>)[name]?.name !== name,
        ),
        [],
        `${format}: every class keeps its name`,
      );
    }
  });

  it("the built output has no node: import and no unguarded process, Buffer, Deno or Bun", () => {
    const files = [...readdirSync(path.join(root, "dist")), ...readdirSync(path.join(root, "dist/web")).map((f) => `web/${f}`)];
    for (const file of files.filter((f) => /\.c?js$/.test(f))) {
      const code = readFileSync(path.join(root, "dist", file), "utf8");
      // The build for workerd/worker/browser leaves the Node fast path out altogether.
      if (file.startsWith("web/"))
        assert.doesNotMatch(code, /getBuiltinModule|node:crypto|createHmac/, `${file} carries the Node fast path`);
      // Node's modules are reached only through process.getBuiltinModule (the Node fast path), never imported.
      assert.doesNotMatch(code, /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)["']node:/, `${file} imports node:`);
      // A bare global used as a value (not a property access like g.Deno, not inside typeof) would throw where it
      // is missing. Only uses count: the name followed by member access or a call (messages may name a runtime).
      for (const m of code.matchAll(/(?<![\w$.])(process|Buffer|Deno|Bun)(?=\s*(?:\?\.|[.[(]))/g)) {
        const before = code.slice(Math.max(0, m.index - 7), m.index);
        assert.match(before, /typeof\s*$/, `${file}: unguarded ${m[1]} at ${m.index}: …${code.slice(m.index - 40, m.index + 40)}…`);
      }
    }
  });

  describe("the packed tarball", () => {
    let dir: string;
    let tarball: string;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), "dynacount-pack-"));
      const out = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dir])) as {
        filename: string;
        files: { path: string }[];
      }[];
      tarball = path.join(dir, out[0]!.filename);
      writeFileSync(path.join(dir, "files.json"), JSON.stringify(out[0]!.files.map((f) => f.path)));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("holds only dist, README, LICENSE and package.json", () => {
      const files = JSON.parse(readFileSync(path.join(dir, "files.json"), "utf8")) as string[];
      const outside = files.filter((f) => !f.startsWith("dist/") && !["README.md", "LICENSE", "package.json"].includes(f));
      assert.deepEqual(outside, []);
      assert.ok(files.includes("dist/index.js") && files.includes("dist/index.cjs") && files.includes("dist/index.d.ts"));
      assert.ok(!files.some((f) => f.endsWith(".map") || f.startsWith("src/") || f.startsWith("test/")));
    });

    it("publint and @arethetypeswrong/cli find no problems", () => {
      assert.match(run(bin("publint"), [tarball]), /All good/);
      assert.match(run(bin("attw"), [tarball, "--format", "ascii"]), /No problems found/);
    });

    it("installs into a new project; every entry imports as ESM and CJS; types resolve under bundler and node16", () => {
      const project = path.join(dir, "app");
      run("mkdir", ["-p", project]);
      writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
      // hono is an optional peer dependency: a Hono app has it already.
      run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball, "hono@^4"], project);
      for (const entry of entryPoints) {
        const name = specifier(entry);
        assert.equal(
          run(
            process.execPath,
            ["--input-type=module", "-e", `const m = await import(${JSON.stringify(name)}); console.log(Object.keys(m).length > 0)`],
            project,
          ).trim(),
          "true",
          `ESM ${name}`,
        );
        assert.equal(
          run(process.execPath, ["-e", `console.log(Object.keys(require(${JSON.stringify(name)})).length > 0)`], project).trim(),
          "true",
          `CJS ${name}`,
        );
      }
      const usage = `import { CounterClient, CounterBuffer, RateLimiter, IdAllocator, ShardedCounter, CounterError, type RateLimitResult } from "dynacount";
import { DurableCounterBuffer } from "dynacount/durable-object";
import { increment, config } from "dynacount/compat";
import { rateLimit } from "dynacount/hono";
import { Hono } from "hono";
const client = new CounterClient({ numbers: "bigint" });
const value: Promise<bigint> = client.increment("k");
const result: Promise<RateLimitResult> = new RateLimiter(client, { limit: 1, windowMs: 1000 }).limit("x");
const code: string = new CounterError("Validation", "m").code;
const app = new Hono().use("/api/*", rateLimit(new RateLimiter(client, { limit: 1, windowMs: 1000 }), { identifier: (c) => c.req.header("x-key") ?? "anon" }));
void [value, result, code, app, CounterBuffer, IdAllocator, ShardedCounter, DurableCounterBuffer, increment, config];
`;
      // The same code as an ES module (usage.ts, in a "type": "module" project) and as CommonJS (usage.cts, whose
      // imports node16 resolves through the `require` condition): each must find its own declaration files.
      writeFileSync(path.join(project, "usage.ts"), usage);
      writeFileSync(path.join(project, "usage.cts"), usage);
      const declarations = (listed: string, ext: string) =>
        entryPoints
          .map((entry) => `node_modules/dynacount/dist/${entry === "." ? "index" : entry.slice(2)}.${ext}`)
          .filter((file) => !listed.includes(file));
      for (const [moduleResolution, module] of [
        ["bundler", "esnext"],
        ["node16", "node16"],
      ] as const) {
        const files = moduleResolution === "node16" ? ["usage.ts", "usage.cts"] : ["usage.ts"];
        const compilerOptions = {
          noEmit: true,
          strict: true,
          skipLibCheck: false,
          lib: ["es2022", "dom"],
          types: [],
          module,
          moduleResolution,
          target: "es2022",
        };
        writeFileSync(path.join(project, `tsconfig.${moduleResolution}.json`), JSON.stringify({ compilerOptions, files }));
        const listed = run(
          process.execPath,
          [path.join(root, "node_modules/typescript/bin/tsc"), "-p", `tsconfig.${moduleResolution}.json`, "--listFiles"],
          project,
        );
        assert.deepEqual(declarations(listed, "d.ts"), [], `${moduleResolution}: the ESM declarations of every entry point are used`);
        if (moduleResolution === "node16")
          assert.deepEqual(declarations(listed, "d.cts"), [], "node16: usage.cts uses the CJS declarations");
        else assert.doesNotMatch(listed, /\.d\.cts/, "bundler: no CJS declarations for an ES module");
      }
    });
  });

  it("deno publish --dry-run passes for jsr.json (no slow types, no warnings) and publishes the source and docs only", () => {
    // deno reports on stderr, which run() does not return.
    const out = spawnSync(bin("deno"), ["publish", "--dry-run", "--allow-dirty"], {
      cwd: root,
      encoding: "utf8",
      timeout: 180_000,
      env: { ...process.env, NO_COLOR: "1" },
    });
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stderr, /Checking for slow types/);
    assert.doesNotMatch(out.stderr, /warning/i);
    assert.match(out.stderr, /Success Dry run complete/);
    const published = [...out.stderr.matchAll(/^\s+(file:\/\/\S+) \(/gm)].map((m) => path.relative(root, fileURLToPath(m[1]!))).sort();
    const sources = (dir: string): string[] =>
      readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((d) =>
        d.isDirectory() ? sources(`${dir}/${d.name}`) : d.name.endsWith(".ts") ? [`${dir}/${d.name}`] : [],
      );
    assert.deepEqual(published, ["LICENSE", "README.md", "jsr.json", ...sources("src")].sort());
    for (const target of Object.values(jsr.exports)) assert.ok(published.includes(path.normalize(target)), target);
  });

  it("size of each entry point, minified + gzip with the workerd/browser conditions, dependencies included", async () => {
    const sizes: Record<string, number> = {};
    for (const entry of entryPoints) {
      sizes[specifier(entry)] = await bundledSize(`export * from ${JSON.stringify(specifier(entry))};`);
    }
    const budgets: Record<string, number> = BUDGETS;
    // Every row printed before any fails: one entry over its ceiling must not hide the others' figures.
    const over: string[] = [];
    for (const [name, bytes] of Object.entries(sizes)) {
      console.log(`  size ${name.padEnd(26)} ${(bytes / 1024).toFixed(1)} KB gzip (ceiling ${(budgets[name]! / 1024).toFixed(1)} KB)`);
      if (!(bytes <= budgets[name]!)) over.push(`${name} grew to ${bytes} bytes`);
    }
    assert.deepEqual(over, []);
  });

  it("size of a Worker per use (what wrangler would bundle), against its budget", async () => {
    const bytes: Record<string, number> = {};
    for (const [use, code] of Object.entries(USES)) {
      bytes[use] = await bundledSize(code);
    }
    bytes["dynacount/hono's own share"] =
      bytes["RateLimiter + rateLimitHeaders + dynacount/hono"]! - bytes["RateLimiter + rateLimitHeaders"]!;
    // The same two calls with the AWS SDK v3, bundled the same way.
    const sdk = await bundledSize(readFileSync(path.join(root, "bench/workers/increment-sdk.ts"), "utf8"), "browser");
    const over: string[] = [];
    for (const [use, size] of Object.entries(bytes)) {
      const vsSdk = use.startsWith("CounterClient only")
        ? ` = ${(size / sdk).toFixed(3)}× AWS SDK v3's ${(sdk / 1024).toFixed(1)} KB (budget ≤ 0.25×)`
        : "";
      const ceiling = USE_BUDGETS[use];
      console.log(
        `  size ${use.padEnd(48)} ${(size / 1024).toFixed(1)} KB gzip${ceiling ? ` (ceiling ${(ceiling / 1024).toFixed(1)} KB)` : ""}${vsSdk}`,
      );
      if (ceiling && size > ceiling) over.push(`${use}: ${size} bytes`);
      if (vsSdk && size > sdk * 0.25) over.push(`${use}: ${size} bytes is more than 0.25× the AWS SDK v3's ${sdk}`);
    }
    assert.deepEqual(over, []);
  });
});

// Budgets. A Worker that uses only CounterClient may weigh at most 0.25× the AWS SDK v3 Worker for the same two
// calls (bundled in the same run). Every other entry point and use has a ceiling: work that adds a feature may
// raise one by what the feature adds, saying so in its commit.
// Measured when set (KB gzip): dynacount 33.6 (+ limitAll, ConcurrencyLimiter, per-plan limits, page views),
// durable-object 15.8 (+ DurablePageViews), compat 12.5, hono 6.8 (the trust model for client addresses; several
// limits through limitAll, which brings the limiter's code along, shared with the app's own RateLimiter).
const BUDGETS = {
  dynacount: 40 * 1024,
  "dynacount/hono": 7.5 * 1024,
  "dynacount/durable-object": 24 * 1024,
  "dynacount/compat": 14 * 1024,
};

// A Worker per use: only what it imports is bundled (hono itself is the app's, so it is left out).
const worker = (imports: string, body: string) => `${imports}\nexport default { async fetch(request, env) { ${body} } };`;
const USES: Record<string, string> = {
  "CounterClient only (increment + get)": worker(
    `import { CounterClient } from "dynacount";`,
    `const c = new CounterClient({ env }); return new Response(String((await c.increment("k")) + (await c.get("k"))));`,
  ),
  "DurableCounterBuffer (dynacount/durable-object)": `import { CounterClient } from "dynacount"; import { DurableCounterBuffer } from "dynacount/durable-object";
    export class Counter { constructor(ctx, env) { this.buffer = new DurableCounterBuffer(ctx, new CounterClient({ env })); }
      add(key) { return this.buffer.add(key); } alarm(info) { return this.buffer.alarm(info); } }
    export default { fetch(request, env) { return env.COUNTER.get(env.COUNTER.idFromName("x")).add("k"); } };`,
  "RateLimiter + rateLimitHeaders": worker(
    `import { CounterClient, RateLimiter, rateLimitHeaders } from "dynacount";`,
    `const limiter = new RateLimiter(new CounterClient({ env }), { limit: 10, windowMs: 60000 });
     const r = await limiter.limit("ip"); return new Response(null, { status: r.success ? 200 : 429, headers: rateLimitHeaders(r) });`,
  ),
  "RateLimiter + rateLimitHeaders + dynacount/hono": worker(
    `import { CounterClient, RateLimiter, rateLimitHeaders } from "dynacount"; import { rateLimit } from "dynacount/hono";`,
    `const limiter = new RateLimiter(new CounterClient({ env }), { limit: 10, windowMs: 60000 });
     const r = await limiter.limit("ip"); return new Response(String(rateLimit(limiter)), { status: r.success ? 200 : 429, headers: rateLimitHeaders(r) });`,
  ),
};
const USE_BUDGETS: Record<string, number | undefined> = {
  // The budget is 0.25× the AWS SDK v3 (checked beside it): no ceiling of its own.
  "CounterClient only (increment + get)": undefined,
  // Measured when set: 18.9 KB (the client 13.0, the flush engine, its store and writer).
  "DurableCounterBuffer (dynacount/durable-object)": 20 * 1024,
  // 18.5 KB: the client and three algorithms with leases, refunds, per-plan limits and headers.
  "RateLimiter + rateLimitHeaders": 20 * 1024,
  // 23.0 KB: + the middleware, limitAll (its array form) and the concurrency option.
  "RateLimiter + rateLimitHeaders + dynacount/hono": 24 * 1024,
  // 4.8 KB: the middleware with the client-address trust model, several limits (limitAll) and concurrency.
  // + 0.3 KB: a cost a call cannot take is answered 429 (failClosed) rather than hashed or 500; headers on the
  // limiters' clock.
  "dynacount/hono's own share": 5.5 * 1024,
};
