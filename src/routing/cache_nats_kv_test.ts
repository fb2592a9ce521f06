// The shared cache against a real nats-server with JetStream: every step opens its own bucket on one server.
import assertModule from "node:assert/strict";
import { connect, type KV } from "nats";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { NatsServer, pollUntil } from "../../test/support/nats_server.ts";
import { type CachedResponse, cacheKey, type CacheQuery, SemanticCacheError } from "./cache.ts";
import { createNatsKvCache, type NatsKvCacheOptions, openNatsKvCacheBucket } from "./cache_nats_kv.ts";

const body = (s: string): CachedResponse => ({ body: new TextEncoder().encode(s), contentType: "text/event-stream" });
const text = (r: CachedResponse | undefined) => r && new TextDecoder().decode(r.body);
const q = (t: string, embedding?: number[]): CacheQuery => ({
  scope: "route-a",
  model: "gpt-4o",
  text: t,
  ...(embedding ? { embedding } : {}),
});

Deno.test("NATS KV semantic cache", async (t) => {
  await using ns = await NatsServer.start({ jetstream: true });
  const nc = await connect({ servers: ns.url });
  const js = nc.jetstream();
  let bucketNo = 0;
  const clock = { t: 1_700_000_000_000 };
  const bucket = (ttlMs = 60_000): Promise<KV> =>
    openNatsKvCacheBucket(js, { bucket: `CACHE_TEST_${++bucketNo}`, ttlMs });
  const open = (kv: KV, o: Partial<NatsKvCacheOptions> = {}) =>
    createNatsKvCache(kv, { mode: "exact", ttlMs: 60_000, maxEntries: 100, now: () => clock.t, ...o });

  try {
    await t.step("two instances on one bucket see each other's exact entries", async () => {
      const kv = await bucket();
      await using a = open(kv);
      await using b = open(kv);
      await a.store(q("What is NATS?"), body("data: a messaging system\n\n"));
      const hit = await b.lookup(q("What  is NATS?"));
      assertEquals(text(hit?.response), "data: a messaging system\n\n");
      assertEquals(hit?.response.contentType, "text/event-stream");
      assertEquals(hit?.similarity, 1);
      assertEquals(hit?.key, cacheKey(q("What is NATS?")));
      assertEquals(await b.lookup({ ...q("What is NATS?"), scope: "route-b" }), undefined);
      assertEquals(await b.lookup({ ...q("What is NATS?"), model: "other" }), undefined);
    });

    await t.step("a paraphrase finds an entry another instance stored, through the watched index", async () => {
      const kv = await bucket();
      await using a = open(kv, { mode: "similarity", threshold: 0.9 });
      await using b = open(kv, { mode: "similarity", threshold: 0.9 });
      await b.ready();
      await a.store(q("capital of France?", [1, 0.1, 0]), body("Paris"));
      await a.store(q("height of Everest?", [0, 1, 0]), body("8849 m"));
      await pollUntil("the second instance to index both entries", () => b.size === 2 ? true : undefined);
      const hit = await b.lookup(q("Which city is the French capital?", [0.95, 0.2, 0.05]));
      assertEquals(text(hit?.response), "Paris");
      assert(hit!.similarity > 0.9 && hit!.similarity < 1, String(hit?.similarity));
      assertEquals(await b.lookup(q("unrelated", [0.5, 0.5, 0.7])), undefined);
    });

    await t.step(
      "an instance started later loads the existing entries before its first similarity lookup",
      async () => {
        const kv = await bucket();
        await using a = open(kv, { mode: "similarity" });
        await a.store(q("hello there", [0, 0, 1]), body("hi"));
        await using late = open(kv, { mode: "similarity" });
        assertEquals(text((await late.lookup(q("hello!", [0, 0.1, 1])))?.response), "hi");
      },
    );

    await t.step("entries expire after ttlMs for every instance", async () => {
      const kv = await bucket();
      await using a = open(kv, { ttlMs: 1_000 });
      await using b = open(kv, { ttlMs: 1_000 });
      await a.store(q("x"), body("x"));
      clock.t += 999;
      assert(await b.lookup(q("x")));
      clock.t += 1;
      assertEquals(await b.lookup(q("x")), undefined);
    });

    await t.step("beyond maxEntries the least recently used entry goes, hits on other instances included", async () => {
      const kv = await bucket();
      await using a = open(kv, { maxEntries: 2 });
      await using b = open(kv, { maxEntries: 2, touchIntervalMs: 0 });
      await a.store(q("a"), body("a"));
      clock.t += 1_000;
      await a.store(q("b"), body("b"));
      clock.t += 1_000;
      assert(await b.lookup(q("a"))); // b records the hit in the bucket
      const keyA = cacheKey(q("a"));
      await pollUntil("the hit on a to be written", async () => (await kv.get(`i.t.${keyA}`)) ?? undefined);
      await using c = open(kv, { maxEntries: 2 });
      await c.ready(); // c's index now holds a (hit at +2 s), b (stored at +1 s) and the hit
      clock.t += 1_000;
      await c.store(q("c"), body("c"));
      assertEquals(await a.lookup(q("b")), undefined);
      assert(await a.lookup(q("a")));
      assert(await a.lookup(q("c")));
      await pollUntil("the first instance to see the eviction", () => a.size === 2 ? true : undefined);
    });

    await t.step("on a bucket without max_age, expired entries are deleted by the next store", async () => {
      const kv = await js.views.kv(`CACHE_TEST_${++bucketNo}`, { history: 1 });
      await using a = open(kv, { ttlMs: 1_000 });
      await a.store(q("old"), body("old"));
      const key = cacheKey(q("old"));
      clock.t += 1_000;
      await a.store(q("new"), body("new"));
      await pollUntil("the expired entry to be deleted", async () => {
        const entry = await kv.get(`b.${key}`);
        return entry === null || entry.operation !== "PUT" ? true : undefined;
      });
      assert(await a.lookup(q("new")));
    });

    await t.step("a response too big for one KV value is not stored", async () => {
      const kv = await bucket();
      await using a = open(kv, { maxValueBytes: 1_000 });
      await assertModule.rejects(a.store(q("big"), body("x".repeat(2_000))), SemanticCacheError);
      assertEquals(await a.lookup(q("big")), undefined);
    });

    await t.step("openNatsKvCacheBucket gives the bucket max_age = ttlMs and one value per key", async () => {
      const status = await (await bucket(90_000)).status();
      assertEquals([status.ttl, status.history], [90_000, 1]);
    });

    await t.step("lookup rejects with the signal's reason once it is aborted", async () => {
      const kv = await bucket();
      await using a = open(kv, { mode: "similarity" });
      const ac = new AbortController();
      ac.abort(new Error("client went away"));
      await assertModule.rejects(a.lookup(q("x", [1, 0]), ac.signal), /client went away/);
    });

    await t.step("store after close is refused", async () => {
      const a = open(await bucket());
      await a.close();
      await assertModule.rejects(a.store(q("x"), body("x")), /closed/);
    });
  } finally {
    await nc.close();
  }
});
