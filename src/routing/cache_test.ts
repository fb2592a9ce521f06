import assertModule from "node:assert/strict";
import { assert, assertEquals } from "../../test/support/assert.ts";
import {
  type CachedResponse,
  cacheKey,
  type CacheQuery,
  createMemoryCache,
  type MemoryCacheOptions,
  normaliseCacheText,
  unitCosine,
  unitVector,
} from "./cache.ts";

const json = (s: string): CachedResponse => ({ body: new TextEncoder().encode(s), contentType: "application/json" });
const text = (r: CachedResponse | undefined) => r && new TextDecoder().decode(r.body);
const q = (t: string, extra: Partial<CacheQuery> = {}): CacheQuery => ({
  scope: "route-a",
  model: "gpt-4o",
  text: t,
  ...extra,
});

function clockedCache(o: Partial<MemoryCacheOptions> = {}) {
  const clock = { t: 1_000_000 };
  const cache = createMemoryCache({ mode: "exact", ttlMs: 60_000, maxEntries: 100, now: () => clock.t, ...o });
  return { cache, clock };
}

Deno.test("exact mode answers the same question with similarity 1 and a stable key", async () => {
  const { cache } = clockedCache();
  await cache.store(q("What is the capital of France?"), json('{"a":"Paris"}'));
  const hit = await cache.lookup(q("What is the capital of France?"));
  assertEquals(text(hit?.response), '{"a":"Paris"}');
  assertEquals(hit?.similarity, 1);
  assertEquals(hit?.key, cacheKey(q("What is the capital of France?")));
  assertEquals(hit?.response.contentType, "application/json");
});

Deno.test("exact mode normalises whitespace and Unicode composition but not case", async () => {
  const { cache } = clockedCache();
  await cache.store(q("Café  au\nlait?"), json("1"));
  assert(await cache.lookup(q("  Cafe\u0301 au lait? ")));
  assertEquals(await cache.lookup(q("café au lait?")), undefined);
  assertEquals(normaliseCacheText(" a \t b\n"), "a b");
});

Deno.test("entries never cross scopes or models", async () => {
  const { cache } = clockedCache({ mode: "similarity" });
  const e = [1, 0, 0];
  await cache.store(q("hello", { embedding: e }), json("1"));
  assertEquals(await cache.lookup(q("hello", { scope: "route-b", embedding: e })), undefined);
  assertEquals(await cache.lookup(q("hello", { model: "gpt-4o-mini", embedding: e })), undefined);
  assert(await cache.lookup(q("hello", { embedding: e })));
});

Deno.test("cacheKey cannot be forged by moving text between scope, model and prompt", () => {
  const a = cacheKey({ scope: "a", model: "b c", text: "d" });
  const b = cacheKey({ scope: "a b", model: "c", text: "d" });
  assert(a !== b);
  assert(/^[0-9a-f]{64}$/.test(a));
});

Deno.test("similarity mode answers a paraphrase above the threshold with its cosine", async () => {
  const { cache } = clockedCache({ mode: "similarity", threshold: 0.9 });
  await cache.store(q("What is the capital of France?", { embedding: [1, 0.1, 0] }), json("paris"));
  await cache.store(q("How tall is Everest?", { embedding: [0, 1, 0] }), json("8849"));
  const hit = await cache.lookup(q("Which city is France's capital?", { embedding: [0.95, 0.2, 0.05] }));
  assertEquals(text(hit?.response), "paris");
  assert(hit!.similarity > 0.9 && hit!.similarity < 1, String(hit?.similarity));
  assertEquals(await cache.lookup(q("Something else", { embedding: [0.6, 0.6, 0.5] })), undefined);
});

Deno.test("similarity mode picks the most similar of several candidates", async () => {
  const { cache } = clockedCache({ mode: "similarity", threshold: 0.5 });
  await cache.store(q("one", { embedding: [1, 0] }), json("one"));
  await cache.store(q("two", { embedding: [0.6, 0.8] }), json("two"));
  assertEquals(text((await cache.lookup(q("x", { embedding: [0.7, 0.7] })))?.response), "two");
  assertEquals(text((await cache.lookup(q("x", { embedding: [0.9, 0.3] })))?.response), "one");
});

Deno.test("similarity mode without a query embedding falls back to the exact key", async () => {
  const { cache } = clockedCache({ mode: "similarity" });
  await cache.store(q("hi", { embedding: [1, 0] }), json("1"));
  assert(await cache.lookup(q("hi")));
  assertEquals(await cache.lookup(q("hello")), undefined);
});

Deno.test("embeddings of another dimension or of zero length never match", async () => {
  const { cache } = clockedCache({ mode: "similarity", threshold: 0.1 });
  await cache.store(q("a", { embedding: [1, 0, 0] }), json("a"));
  assertEquals(await cache.lookup(q("b", { embedding: [1, 0] })), undefined);
  assertEquals(await cache.lookup(q("b", { embedding: [0, 0, 0] })), undefined);
});

Deno.test("exact mode ignores embeddings", async () => {
  const { cache } = clockedCache({ mode: "exact" });
  await cache.store(q("a", { embedding: [1, 0] }), json("a"));
  assertEquals(await cache.lookup(q("b", { embedding: [1, 0] })), undefined);
});

Deno.test("entries expire ttlMs after they were stored, and a hit does not extend them", async () => {
  const { cache, clock } = clockedCache({ ttlMs: 1_000 });
  await cache.store(q("a"), json("a"));
  clock.t += 999;
  assert(await cache.lookup(q("a")));
  clock.t += 1;
  assertEquals(await cache.lookup(q("a")), undefined);
  assertEquals(cache.size, 0);
});

Deno.test("storing again replaces the entry and restarts its ttl", async () => {
  const { cache, clock } = clockedCache({ ttlMs: 1_000 });
  await cache.store(q("a"), json("old"));
  clock.t += 800;
  await cache.store(q("a"), json("new"));
  clock.t += 800;
  assertEquals(text((await cache.lookup(q("a")))?.response), "new");
  assertEquals(cache.size, 1);
});

Deno.test("beyond maxEntries the least recently used entry goes first", async () => {
  const { cache } = clockedCache({ maxEntries: 2 });
  await cache.store(q("a"), json("a"));
  await cache.store(q("b"), json("b"));
  assert(await cache.lookup(q("a"))); // a is now more recent than b
  await cache.store(q("c"), json("c"));
  assertEquals(cache.size, 2);
  assert(await cache.lookup(q("a")));
  assertEquals(await cache.lookup(q("b")), undefined);
  assert(await cache.lookup(q("c")));
});

Deno.test("expired entries are dropped before live ones are evicted", async () => {
  const { cache, clock } = clockedCache({ maxEntries: 2, ttlMs: 1_000 });
  await cache.store(q("old"), json("old"));
  clock.t += 600;
  await cache.store(q("b"), json("b"));
  clock.t += 500; // "old" has expired
  await cache.store(q("c"), json("c"));
  assert(await cache.lookup(q("b")));
  assert(await cache.lookup(q("c")));
});

Deno.test("the cache keeps its own copy of the body", async () => {
  const { cache } = clockedCache();
  const response = json("abc");
  await cache.store(q("a"), response);
  response.body[0] = 0x7a;
  assertEquals(text((await cache.lookup(q("a")))?.response), "abc");
});

Deno.test("lookup rejects with the signal's reason when it is already aborted", async () => {
  const { cache } = clockedCache();
  const ac = new AbortController();
  ac.abort(new Error("client went away"));
  await assertModule.rejects(cache.lookup(q("a"), ac.signal), /client went away/);
});

Deno.test("createMemoryCache rejects invalid options", () => {
  const base = { mode: "exact" as const, ttlMs: 1_000, maxEntries: 10 };
  assertModule.throws(() => createMemoryCache({ ...base, ttlMs: 0 }), /Invalid cache ttlMs 0/);
  assertModule.throws(() => createMemoryCache({ ...base, maxEntries: 0 }), /Invalid cache maxEntries 0/);
  assertModule.throws(() => createMemoryCache({ ...base, maxEntries: 1.5 }), /Invalid cache maxEntries 1.5/);
  assertModule.throws(() => createMemoryCache({ ...base, threshold: 1.2 }), /Invalid cache similarity threshold 1.2/);
  assertModule.throws(() => createMemoryCache({ ...base, mode: "fuzzy" as "exact" }), /Invalid cache mode "fuzzy"/);
});

Deno.test("unitVector and unitCosine", () => {
  const a = unitVector([3, 4])!;
  assertEquals(Array.from(a).map((x) => Math.round(x * 1e6) / 1e6), [0.6, 0.8]);
  assertEquals(unitVector([]), undefined);
  assertEquals(unitVector([0, 0]), undefined);
  assertEquals(unitVector([1, Number.NaN]), undefined);
  assertEquals(unitCosine(a, unitVector([1])!), undefined);
  assert(Math.abs(unitCosine(a, unitVector([4, -3])!)!) < 1e-6);
});
