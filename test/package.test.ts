import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { describe, it } from "node:test";

// The built package (npm test builds it first), imported the way users import it.
const require = createRequire(import.meta.url);

describe("built package on Node", () => {
  it("imports as ESM and as CJS with the same exports", async () => {
    const esm = await import("dynacount");
    const cjs = require("dynacount") as typeof esm;
    for (const mod of [esm, cjs]) {
      assert.equal(typeof mod.CounterClient, "function");
      assert.equal(typeof mod.CounterError, "function");
      const error = new mod.CounterError("Validation", "x");
      assert.equal(error.name, "CounterError");
      assert.ok(error instanceof Error);
    }
    assert.deepEqual(Object.keys(esm).sort(), Object.keys(cjs).sort());
  });

  it("loads in a plain node process, ESM and CJS, without tsx", () => {
    const esm = execFileSync(process.execPath, ["--input-type=module", "-e", `import { CounterClient } from "dynacount"; console.log(typeof CounterClient)`], { encoding: "utf8" });
    const cjs = execFileSync(process.execPath, ["-e", `const { CounterClient } = require("dynacount"); console.log(typeof CounterClient)`], { encoding: "utf8" });
    assert.equal(esm.trim(), "function");
    assert.equal(cjs.trim(), "function");
  });
});
