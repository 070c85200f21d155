// Bun: the built package, as `bun add dynacount` users get it.
import { describe, test } from "bun:test";
import * as dynacount from "dynacount";
import { runtimeCases, serversFrom } from "./cases.ts";

for (const server of serversFrom(process.env.DYNACOUNT_TEST_SERVERS)) {
  describe(`bun ${Bun.version}`, () => {
    for (const c of runtimeCases(dynacount as never, "bun", server.name, server.endpoint)) test(c.name, () => c.run(), 60_000);
  });
}
