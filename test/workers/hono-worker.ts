// A Hono app in workerd using dynacount/hono, driven by test/hono.test.ts through miniflare.
import { Hono } from "hono";
import { CounterClient, RateLimiter } from "dynacount";
import { clientAddress, rateLimit, type RateLimitVariables } from "dynacount/hono";

interface Env {
  ENDPOINT: string;
  TABLE_NAME: string;
}

const app = new Hono<{ Bindings: Env; Variables: RateLimitVariables }>();
let limiter: RateLimiter | undefined;
// `trustProxies` is set to show that on Cloudflare it changes nothing: cf-connecting-ip is the client.
app.use("/api/*", async (c, next) => {
  limiter ??= new RateLimiter(
    new CounterClient({
      endpoint: c.env.ENDPOINT,
      region: "us-east-1",
      tableName: c.env.TABLE_NAME,
      env: {},
      credentials: { accessKeyId: "AKIDWORKERD", secretAccessKey: "workerd-secret" },
    }),
    { limit: 3, windowMs: 60_000, algorithm: "token-bucket" },
  );
  return rateLimit(limiter, { trustProxies: 1 })(c, next);
});
app.get("/api/hello", (c) => c.json({ hello: "world", remaining: c.get("rateLimit").remaining }));
app.get("/ip", (c) =>
  c.json({ address: clientAddress(c) ?? null, trusting: clientAddress(c, { trustProxies: 2 }) ?? null, cf: typeof c.req.raw.cf }),
);
app.get("/", (c) => c.text("not limited"));

export default app;
