// The config bus pieces against a real nats-server: the snapshot encoding, the KV store (chunks, head, CAS,
// purge) and the controller lease.
import { connect } from "nats";
import { assert, assertEquals } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { assertRejects, compileDir } from "./support/control_plane.ts";
import {
  canonicalJson,
  CONFIG_SCHEMA_VERSION,
  configSnapshot,
  ConfigSnapshotError,
  decodeSnapshot,
  encodeSnapshot,
  IncompatibleSnapshotError,
  SnapshotEncoder,
} from "../src/control/bus/config_snapshot.ts";
import { ChunkGoneError, ConfigStore, PublishConflictError } from "../src/control/bus/config_store.ts";
import { LeaseLostError, LeaseStore } from "../src/control/bus/lease.ts";

const BASIC = "testdata/resources/basic";

Deno.test("canonicalJson sorts keys at every depth and drops undefined members", () => {
  assertEquals(
    canonicalJson({ b: 1, a: { d: [1, { z: 0, y: undefined }], c: "x" } }),
    '{"a":{"c":"x","d":[1,{"z":0}]},"b":1}',
  );
  assertEquals(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
});

Deno.test("canonicalJson refuses what JSON cannot carry", () => {
  for (const bad of [{ m: new Map() }, { f: () => 1 }, { n: Number.NaN }]) {
    let threw = false;
    try {
      canonicalJson(bad);
    } catch (e) {
      threw = e instanceof ConfigSnapshotError;
    }
    assert(threw, `expected an error for ${Object.keys(bad)[0]}`);
  }
});

Deno.test("a config snapshot hashes the same however it was built and carries no Secret value", async () => {
  const compiled = await compileDir([BASIC]);
  const a = await encodeSnapshot(configSnapshot(compiled, { rateLimitDomain: "ai-gateway" }));
  const b = await encodeSnapshot(
    configSnapshot(JSON.parse(JSON.stringify(await compileDir([BASIC]))), { rateLimitDomain: "ai-gateway" }),
  );
  assertEquals(a.hash, b.hash);
  assertEquals(a.snapshot.schemaVersion, CONFIG_SCHEMA_VERSION);
  const text = new TextDecoder().decode(a.bytes);
  // basic.yaml's Secrets hold these placeholder values; the snapshot names the Secrets instead.
  assert(!text.includes("OPENAI_API_KEY"), "the OpenAI key value travelled");
  assert(text.includes('"secret":{"key":"apiKey","name":"envoy-ai-gateway-basic-openai-apikey"'), text.slice(0, 200));
  const decoded = await decodeSnapshot(a.bytes, a.hash);
  assertEquals(decoded.snapshot.gateway.models, compiled.models);
});

Deno.test("a snapshot writes the clusters' common upstream filter once, and decoding puts it back", async () => {
  const compiled = await compileDir([BASIC]);
  assert(compiled.edge.clusters.length > 1, "the example needs several clusters");
  const encoded = await encodeSnapshot(configSnapshot(compiled, { rateLimitDomain: "ai-gateway" }));
  const wire = JSON.parse(new TextDecoder().decode(encoded.bytes));
  assertEquals(
    wire.gateway.edge.upstreamExtProc,
    JSON.parse(JSON.stringify(compiled.edge.clusters[0]!.upstreamExtProc)),
  );
  assert(
    wire.gateway.edge.clusters.every((c: Record<string, unknown>) => !("upstreamExtProc" in c)),
    "a cluster still carries the filter",
  );
  const decoded = await decodeSnapshot(encoded.bytes, encoded.hash);
  assertEquals(decoded.snapshot.gateway.edge, JSON.parse(JSON.stringify(compiled.edge)));
  // The remembering encoder writes the same bytes.
  assertEquals((await new SnapshotEncoder().encode(encoded.snapshot)).hash, encoded.hash);

  // Clusters without one common filter are written as they are.
  const mixed = {
    ...compiled,
    edge: {
      ...compiled.edge,
      clusters: [
        { ...compiled.edge.clusters[0]! },
        ...compiled.edge.clusters.slice(1).map(({ upstreamExtProc: _, ...c }) => c),
      ],
    },
  };
  const plain = await encodeSnapshot(configSnapshot(mixed, { rateLimitDomain: "ai-gateway" }));
  assertEquals(JSON.parse(new TextDecoder().decode(plain.bytes)).gateway.edge.upstreamExtProc, undefined);
  assertEquals(
    (await decodeSnapshot(plain.bytes, plain.hash)).snapshot.gateway.edge,
    JSON.parse(JSON.stringify(mixed.edge)),
  );
});

Deno.test("decodeSnapshot refuses a wrong hash and another schema version", async () => {
  const compiled = await compileDir([BASIC]);
  const good = await encodeSnapshot(configSnapshot(compiled, { rateLimitDomain: "ai-gateway" }));
  await assertRejects(() => decodeSnapshot(good.bytes, "0".repeat(64)), ConfigSnapshotError, "checksum");
  const future = await encodeSnapshot({ ...good.snapshot, schemaVersion: CONFIG_SCHEMA_VERSION + 1 });
  await assertRejects(() => decodeSnapshot(future.bytes, future.hash), IncompatibleSnapshotError, "schema version 2");
});

Deno.test("a snapshot bigger than one chunk is written as chunks plus a head and read back whole", async () => {
  await using ns = await NatsServer.start();
  const nc = await connect({ servers: ns.url });
  try {
    const store = await ConfigStore.open(nc.jetstream(), await nc.jetstreamManager(), { maxChunkBytes: 512 });
    assertEquals(await store.readHead(), undefined);
    const encoded = await encodeSnapshot(configSnapshot(await compileDir([BASIC]), { rateLimitDomain: "ai-gateway" }));
    const first = await store.publish(encoded, undefined, "test");
    assert(first.head.chunks > 1, `expected several chunks, got ${first.head.chunks}`);
    assertEquals([first.head.revision, first.head.hash, first.head.size], [1, encoded.hash, encoded.bytes.length]);
    assertEquals((await store.readHead())?.head, first.head);
    const fetched = await store.fetch(first.head);
    assertEquals(fetched.hash, encoded.hash);
    assertEquals(fetched.snapshot, JSON.parse(JSON.stringify(encoded.snapshot)));

    // Publishing from a stale head is refused: the head is compare-and-set.
    await assertRejects(() => store.publish(encoded, undefined, "stale"), PublishConflictError);
    const second = await store.publish(encoded, first, "test");
    const third = await store.publish(encoded, second, "test");
    assertEquals(third.head.revision, 3);
    // Revision 2's chunks stay for readers still on it; revision 1's are purged.
    assertEquals((await store.fetch(second.head)).hash, encoded.hash);
    await assertRejects(() => store.fetch(first.head), ChunkGoneError);
  } finally {
    await nc.close();
  }
});

Deno.test("the controller lease goes to one holder, is renewed with compare-and-set and expires when left", async () => {
  await using ns = await NatsServer.start();
  const nc = await connect({ servers: ns.url });
  try {
    const a = await LeaseStore.open(nc.jetstream(), { ttlMs: 1500 });
    const b = await LeaseStore.open(nc.jetstream(), { ttlMs: 1500 });
    const got = await a.tryAcquire("a");
    assert(got.acquired);
    assertEquals(await b.tryAcquire("b"), { acquired: false, holder: "a" });
    const renewed = await a.renew("a", got.revision);
    await assertRejects(() => a.renew("a", got.revision), LeaseLostError);
    // Nobody renews: JetStream removes the lease after its TTL and the standby takes it.
    const taken = await pollUntil("the standby to take the lease", async () => {
      const r = await b.tryAcquire("b");
      return r.acquired ? r : undefined;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    assertEquals(await a.holder(), "b");
    await assertRejects(() => a.renew("a", renewed), LeaseLostError);
    // A clean release hands over at once.
    await b.release(taken.revision);
    assert((await a.tryAcquire("a")).acquired);
  } finally {
    await nc.close();
  }
});
