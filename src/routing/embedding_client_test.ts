import { assert, assertEquals } from "../../test/support/assert.ts";
import { ManualClock } from "../observability/clock.ts";
import { cosine, createEmbeddingClient, EmbeddingError } from "./embedding_client.ts";
import { EmbeddingSignals } from "./embedding_signal.ts";

const CONFIG = { url: "http://embeddings.test/v1/embeddings", model: "m", timeoutMs: 100, cacheEntries: 2 };

/** A fetch that answers [len, 1] per input (so vectors differ by text length) and records each call's inputs. */
function fakeFetch(o: { calls: string[][]; reorder?: boolean; status?: number } = { calls: [] }): typeof fetch {
  return (_url, init) => {
    const { input } = JSON.parse(String(init!.body)) as { input: string[] };
    o.calls.push(input);
    if (o.status) return Promise.resolve(new Response("no", { status: o.status }));
    const data = input.map((t, index) => ({ index, embedding: [t.length, 1] }));
    if (o.reorder) data.reverse();
    return Promise.resolve(Response.json({ data }));
  };
}

Deno.test("embed returns unit vectors in input order, even when the server reorders them", async () => {
  const calls: string[][] = [];
  const client = createEmbeddingClient(CONFIG, {
    fetch: fakeFetch({ calls, reorder: true }),
    clock: new ManualClock(),
  });
  const [a, b] = await client.embed(["abc", "a"]);
  assert(Math.abs(cosine(a!, a!) - 1) < 1e-6, "unit length");
  assert(a![0]! > b![0]!, "the longer text's vector comes first");
  assertEquals(calls, [["abc", "a"]]);
});

Deno.test("embed caches vectors (bounded, least recently used out) and shares calls in flight", async () => {
  const calls: string[][] = [];
  const client = createEmbeddingClient(CONFIG, { fetch: fakeFetch({ calls }), clock: new ManualClock() });
  await Promise.all([client.embed(["x"]), client.embed(["x", "yy"])]);
  assertEquals(calls, [["x"], ["yy"]]);
  await client.embed(["x", "yy"]);
  assertEquals(calls.length, 2, "both cached");
  await client.embed(["zzz"]); // evicts "x" (least recently used of two entries)
  await client.embed(["x"]);
  assertEquals(calls.at(-1), ["x"]);
});

Deno.test("embed fails with EmbeddingError on a bad status, a bad body, or the deadline", async () => {
  const failing = createEmbeddingClient(CONFIG, {
    fetch: fakeFetch({ calls: [], status: 503 }),
    clock: new ManualClock(),
  });
  const err = await failing.embed(["x"]).catch((e) => e);
  assert(err instanceof EmbeddingError && err.message.includes("503"), String(err));

  const wrong = createEmbeddingClient(CONFIG, {
    fetch: () => Promise.resolve(Response.json({ data: [{ index: 0, embedding: "nope" }] })),
    clock: new ManualClock(),
  });
  assert((await wrong.embed(["x"]).catch((e) => e)) instanceof EmbeddingError);

  const clock = new ManualClock();
  const hanging = createEmbeddingClient(CONFIG, {
    fetch: (_u, init) =>
      new Promise((_r, reject) => init!.signal!.addEventListener("abort", () => reject(new Error("aborted")))),
    clock,
  });
  const pending = hanging.embed(["x"]).catch((e) => e);
  clock.advance(100);
  const timeout = await pending;
  assert(timeout instanceof EmbeddingError && timeout.message.includes("within 100 ms"), String(timeout));
});

Deno.test("embed rejects with the caller's reason when the caller aborts", async () => {
  const controller = new AbortController();
  const client = createEmbeddingClient(CONFIG, {
    fetch: (_u, init) =>
      new Promise((_r, reject) => init!.signal!.addEventListener("abort", () => reject(new Error("aborted")))),
    clock: new ManualClock(),
  });
  const pending = client.embed(["x"], controller.signal).catch((e) => e);
  controller.abort(new Error("client went away"));
  assertEquals(((await pending) as Error).message, "client went away");
});

Deno.test("embedding signals score by best or mean similarity and retry examples after a failure", async () => {
  let fail = true;
  const inner = fakeFetch({ calls: [] });
  const client = createEmbeddingClient({ ...CONFIG, cacheEntries: 100 }, {
    fetch: (u, init) => fail ? Promise.resolve(new Response("down", { status: 500 })) : inner(u, init),
    clock: new ManualClock(),
  });
  const signals = new EmbeddingSignals([
    { name: "max", examples: ["aaaa", "a"], threshold: 0.99, aggregation: "max" },
    { name: "mean", examples: ["aaaa", "a"], threshold: 0.99, aggregation: "mean" },
  ], client);
  const [query] = await createEmbeddingClient(CONFIG, { fetch: inner, clock: new ManualClock() }).embed(["bbbb"]);
  assert((await signals.score(query!).catch((e) => e)) instanceof EmbeddingError);
  fail = false;
  const scores = await signals.score(query!);
  assertEquals(scores.map((s) => [s.name, s.matched]), [["max", true], ["mean", false]]);
  assert(scores[0]!.similarity > scores[1]!.similarity);
});
