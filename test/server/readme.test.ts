// README.md's code blocks: every ```ts/```js block type-checks against src/, and blocks marked <!-- snippet: run --> run against dynalite.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { credentials, servers } from "../support/harness.ts";
import { root } from "../support/workers.ts";

const run = promisify(execFile);

interface Block {
  /** README line of the opening fence; the code starts on the next line. */
  fence: number;
  /** The heading it is under. */
  section: string;
  lang: "ts" | "js";
  code: string;
  /** Marked with `<!-- snippet: run -->` on the line before the fence. */
  runs: boolean;
  /** Its file in the temporary project. */
  file: string;
}

const MARKER = /^<!--\s*snippet:\s*(\S+)\s*-->$/;

/** The README's TypeScript and JavaScript blocks (other languages are shell, TOML, …: not code to check). */
function readmeBlocks(text: string): Block[] {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#+\s+(.*)$/.exec(lines[i]!);
    if (heading) section = heading[1]!;
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && line.startsWith("```"));
    assert.ok(end > i, `README.md:${i + 1}: code block never closed`);
    const marker = MARKER.exec(lines[i - 1] ?? "");
    // A typo in a marker must not silently stop a snippet from running.
    assert.ok(!marker || marker[1] === "run", `README.md:${i}: unknown marker ${lines[i - 1]}`);
    const lang = open[1];
    if (lang === "ts" || lang === "js") {
      // The JS block is the CommonJS migration snippet (require), so it is checked as a .cjs file.
      const file = `readme-${i + 1}.${lang === "ts" ? "ts" : "cjs"}`;
      blocks.push({ fence: i + 1, section, lang, code: lines.slice(i + 1, end).join("\n"), runs: marker !== null, file });
    } else {
      assert.ok(!marker, `README.md:${i}: only ts/js blocks can be marked to run`);
    }
    i = end;
  }
  return blocks;
}

// Names snippets use without defining them, because the text around them says what they are: a Worker's
// `Env` (the type `wrangler types` generates) and the Quick start's `client` in the snippets that continue it.
// Anything else must be defined in the snippet itself. A snippet's own imports and declarations shadow these
// (each snippet is a module).
const GLOBALS = `// What README snippets may use without defining it.
interface Env {
  AWS_REGION: string;
  AWS_ACCESS_KEY_ID: string;
  AWS_SECRET_ACCESS_KEY: string;
}
declare const client: import("dynacount").CounterClient;
// The migration snippet's underscore: not installed here, and underscore.deferred ships no types.
declare module "underscore";
declare module "underscore.deferred";
`;

/** A temporary project with one module per block, resolving `dynacount…` to src/. */
function project(blocks: Block[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "dynacount-readme-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // The repo's node_modules, so that hono, tsx and the Workers types resolve as they do for a user.
  symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"), "dir");
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const src = (entry: string) => [path.join(root, "src", entry)];
  const tsconfig = {
    extends: path.join(root, "tsconfig.json"),
    compilerOptions: {
      // Worker snippets need the Workers types; the Node ones use nothing Node-only, so one program checks all.
      lib: ["ES2022"],
      types: ["@cloudflare/workers-types"],
      allowJs: true,
      checkJs: true,
      // Read by tsc and by tsx (which runs the marked blocks): the package's entry points are the source.
      paths: {
        dynacount: src("index.ts"),
        "dynacount/durable-object": src("durable-object.ts"),
        "dynacount/hono": src("hono.ts"),
        "dynacount/compat": src("compat.ts"),
        "jsr:@dynacount/dynacount": src("index.ts"),
      },
    },
    include: ["*.ts", "*.cjs"],
  };
  writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
  writeFileSync(path.join(dir, "globals.d.ts"), GLOBALS);
  for (const block of blocks) {
    // `export {};` makes a TS block a module even without imports, so its names do not clash with other blocks'.
    writeFileSync(path.join(dir, block.file), `${block.lang === "ts" ? "export {};" : ""}\n${block.code}\n`);
  }
  return dir;
}

/** tsc's diagnostics in the snippets, each pointed at the README line it is about, in README order. */
function readmeDiagnostics(output: string, blocks: Block[]): string[] {
  const byFile = new Map(blocks.map((b) => [b.file, b]));
  const found: { line: number; text: string }[] = [];
  let current: { line: number; text: string } | undefined;
  for (const text of output.split("\n")) {
    const m = /^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(text);
    if (!m) {
      // Continuation lines of a long message belong to the diagnostic above.
      if (current && text.trim()) current.text += `\n    ${text.trim()}`;
      continue;
    }
    const [, file, row, col, code, message] = m;
    const block = byFile.get(file!);
    // Diagnostics in src/ are not the README's: src/ is checked by the repo's own type checks, for each runtime
    // with its own types (here it is compiled with the Workers types only, which some Node-path code is not for).
    current = undefined;
    if (!block) continue;
    // Line 1 of a block's file is the `export {};` line, so file line n is README line fence + n - 1.
    const line = block.fence + Number(row) - 1;
    found.push((current = { line, text: `README.md:${line}:${col} ${code} ${message}` }));
  }
  // tsc failed without a diagnostic we could read (a bad tsconfig, a crash): show what it said.
  if (found.length === 0 && output.trim() && !/error TS\d+/.test(output)) return [output.trim()];
  return found.sort((a, b) => a.line - b.line).map((d) => d.text);
}

const blocks = readmeBlocks(readFileSync(path.join(root, "README.md"), "utf8"));
const dir = project(blocks);

describe("README.md snippets", { timeout: 120_000 }, () => {
  it("has the snippets this test is about, and runs the main ones", () => {
    assert.ok(blocks.length >= 20, `${blocks.length} ts/js blocks`);
    // A marker dropped by an edit would quietly turn a snippet back into one that is only type-checked.
    const running = blocks.filter((b) => b.runs).map((b) => b.section);
    for (const section of ["Quick start", "Buffers: many increments, few writes", "Rate limiting", "Id generation", "Hot counters"]) {
      assert.ok(running.includes(section), `the snippet under "${section}" is marked <!-- snippet: run -->`);
    }
  });

  it("every ts and js block type-checks (strict, against src/)", async () => {
    const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
    const out = await run(process.execPath, [tsc, "--noEmit", "--pretty", "false", "-p", "tsconfig.json"], { cwd: dir }).then(
      () => "",
      (error: { stdout?: string; stderr?: string; message: string }) => `${error.stdout ?? ""}${error.stderr ?? ""}` || error.message,
    );
    const diagnostics = readmeDiagnostics(out, blocks);
    if (diagnostics.length > 0) assert.fail(`README snippets do not type-check:\n${diagnostics.join("\n")}`);
  });

  // In README order, as a reader runs them: the Quick start creates the table the later snippets use.
  describe("marked blocks run against dynalite", async () => {
    const server = (await servers()).find((s) => s.name === "dynalite");
    assert.ok(server, "dynalite is running");
    const env = {
      PATH: process.env.PATH ?? "",
      HOME: dir, // no ~/.aws of the machine's user
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      NO_COLOR: "1",
    };
    for (const block of blocks.filter((b) => b.runs)) {
      it(`README.md:${block.fence} (${block.section}) runs`, async () => {
        // cwd is the project, so tsx reads its tsconfig's paths and `dynacount` is the source.
        await run(process.execPath, ["--import", "tsx", block.file], { cwd: dir, env, timeout: 30_000 }).catch(
          (error: { stdout?: string; stderr?: string; message: string }) => {
            // The end of stderr has the error; Node prints the snippet's failing line above it.
            assert.fail(`README.md:${block.fence} failed:\n${(error.stderr || error.message).slice(-3000)}\n${error.stdout ?? ""}`);
          },
        );
      });
    }
  });
});
