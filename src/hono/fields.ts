// Header fields added to an answer, which is copied first when its headers are immutable (e.g. straight from `fetch`).

/** `res` with `fields` set: `res` itself, or a copy when its headers cannot be changed (`Response.redirect`, `fetch`). */
export function withFields(res: Response, fields: Record<string, string>): Response {
  try {
    for (const [name, value] of Object.entries(fields)) res.headers.set(name, value);
    return res;
  } catch {
    const copy = new Response(res.body, res);
    for (const [name, value] of Object.entries(fields)) copy.headers.set(name, value);
    return copy;
  }
}

/** `Retry-After` in whole seconds until `reset` (at least 1) on the clock `reset` is on, unless the answer already has one. */
export function retryAfter(res: Response, reset: number, now = Date.now()): Record<string, string> {
  return res.headers.has("Retry-After") ? {} : { "Retry-After": String(Math.max(1, Math.ceil((reset - now) / 1000))) };
}
