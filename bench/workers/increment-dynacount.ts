// One increment and one get, with dynacount.
import { CounterClient } from "dynacount";

export default {
  async fetch(request: Request, env: Record<string, unknown>): Promise<Response> {
    const client = new CounterClient({ env, tableName: String(env.TABLE_NAME) });
    const key = new URL(request.url).searchParams.get("key") ?? "bench";
    const value = await client.increment(key);
    const read = await client.get(key);
    return Response.json({ value, read });
  },
};
