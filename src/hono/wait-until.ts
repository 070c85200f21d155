// Background work of a request: to the Worker's execution context where there is one.
import type { Context } from "hono";

/** Hands `work` to `executionCtx.waitUntil`; elsewhere (Node, Bun, `app.request`) it runs on without being awaited. */
export function waitUntil(c: Context, work: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context: nothing is cut short when the answer is sent, so nothing to extend.
  }
}
