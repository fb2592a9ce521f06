import { createActor, waitFor } from "xstate";
import { Registry } from "prom-client";
import type { JetStreamClient } from "nats";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { NatsCluster, NatsServer, pollUntil } from "../../test/support/nats_server.ts";
import { ManualClock } from "../observability/clock.ts";
import { UsageMetrics } from "../observability/usage_metrics.ts";
import { connectNats, ensureUsageStream, type NatsLink, USAGE_STREAM } from "../usage/nats_connection.ts";
import { Spool, type SpoolOptions } from "../usage/spool.ts";
import {
  jetStreamTransport,
  USAGE_SYSTEM_ID,
  UsageEventTooLargeError,
  usagePublisherActorOptions,
  type UsagePublisherInput,
  usagePublisherMachine,
  type UsageRecord,
  type UsageTransport,
} from "./usage_publisher.ts";

const enc = new TextEncoder();
const id = (i: number) => `evt-${String(i).padStart(6, "0")}`;
const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => id(from + k));
const usage = (i: number) => ({
  type: "usage.event" as const,
  id: id(i),
  subject: "tollgate.usage.test",
  bytes: enc.encode(JSON.stringify({ v: 1, id: id(i), tokens: { totalTokens: i } })),
});

/** Lets every pending promise callback and zero-delay timer run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

/** JetStream as the publisher sees it: stores by id (a second copy is a duplicate), can be down or hold acks. */
class FakeJetStream implements UsageTransport {
  readonly stored: string[] = [];
  readonly #seen = new Set<string>();
  mode: "up" | "down" | "hold" = "up";
  readonly held: (() => void)[] = [];
  readonly failOnce = new Set<string>();
  readonly tooLarge = new Set<string>();
  readonly #listeners = new Set<(up: boolean) => void>();

  publish(r: UsageRecord): Promise<{ duplicate: boolean }> {
    if (this.tooLarge.has(r.id)) return Promise.reject(new UsageEventTooLargeError(`${r.id} is too large`));
    if (this.mode === "down" || this.failOnce.delete(r.id)) return Promise.reject(new Error("timeout"));
    const store = () => {
      const duplicate = this.#seen.has(r.id);
      if (!duplicate) this.#seen.add(r.id), this.stored.push(r.id);
      return { duplicate };
    };
    if (this.mode === "hold") return new Promise((resolve) => this.held.push(() => resolve(store())));
    return Promise.resolve(store());
  }

  watch(listener: (up: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  connection(up: boolean): void {
    for (const l of this.#listeners) l(up);
  }

  async releaseAll(): Promise<void> {
    for (let rounds = 0; this.held.length > 0 && rounds < 1000; rounds++) {
      for (const h of this.held.splice(0)) h();
      await settle();
    }
  }
}

interface Harness extends AsyncDisposable {
  readonly actor: ReturnType<typeof startPublisher>;
  readonly spool: Spool;
  readonly metrics: UsageMetrics;
  readonly clock: ManualClock;
  spooledIds(): string[];
  state(): string;
  /** A new publisher on the same spool; with `reopen`, as after a process restart (the file closed and reopened). */
  restart(o?: { reopen?: boolean }): ReturnType<typeof startPublisher>;
}

function startPublisher(input: UsagePublisherInput, clock: ManualClock | undefined) {
  const actor = createActor(usagePublisherMachine, { id: "usage-test", input, ...(clock ? { clock } : {}) });
  actor.start();
  return actor;
}

/** A publisher with its spool in a temporary directory; on a manual clock unless `realTime`. */
function harness(o: {
  connect: UsagePublisherInput["connect"];
  spool?: Partial<SpoolOptions>;
  input?: Partial<UsagePublisherInput>;
  realTime?: boolean;
}): Harness {
  const dir = Deno.makeTempDirSync({ prefix: "tollgate-publisher-" });
  const spoolOptions: SpoolOptions = {
    path: `${dir}/usage.spool`,
    maxBytes: 1 << 20,
    maxRecords: 10_000,
    overflow: "reject-new",
    ...o.spool,
  };
  let spool = Spool.open(spoolOptions);
  const metrics = new UsageMetrics(new Registry());
  const clock = new ManualClock();
  const input = (): UsagePublisherInput => ({
    connect: o.connect,
    spool,
    metrics,
    probeIntervalMs: 100,
    publishTimeoutMs: 1000,
    random: () => 0.5,
    ...(o.realTime ? {} : { clock }),
    ...o.input,
  });
  let actor = startPublisher(input(), o.realTime ? undefined : clock);
  return {
    get actor() {
      return actor;
    },
    get spool() {
      return spool;
    },
    metrics,
    clock,
    spooledIds: () => spool.peekBatch(100_000).map((r) => r.id),
    state: () => JSON.stringify(actor.getSnapshot().value).replace(/[{}"]/g, "").replace(/:/g, "."),
    restart({ reopen = false } = {}) {
      actor.stop();
      if (reopen) {
        spool.close();
        spool = Spool.open(spoolOptions);
      }
      actor = startPublisher(input(), o.realTime ? undefined : clock);
      return actor;
    },
    async [Symbol.asyncDispose]() {
      actor.stop();
      await settle();
      spool.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

const fake = (js: UsageTransport, o: Omit<Parameters<typeof harness>[0], "connect"> = {}) =>
  harness({ connect: () => Promise.resolve(js), ...o });

Deno.test("usagePublisher publishes every event directly, once and in order, and stops cleanly", async () => {
  const js = new FakeJetStream();
  await using h = fake(js);
  await settle();
  assertEquals(h.state(), "online.publishing.open");
  for (let i = 0; i < 100; i++) h.actor.send(usage(i));
  await settle();
  assertEquals(js.stored, ids(0, 100));
  assertEquals(await h.metrics.publishedCount("direct"), 100);
  assertEquals(h.spool.records, 0);
  h.actor.send({ type: "usage.stop" });
  await settle();
  assertEquals(h.actor.getSnapshot().status, "done");
});

Deno.test("usagePublisher spools while NATS is down and replays in order; events during the replay go after", async () => {
  const js = new FakeJetStream();
  await using h = fake(js, { input: { replayBatch: 4 } });
  await settle();
  js.mode = "down";
  js.connection(false);
  assertEquals(h.state(), "online.spooling.waiting");
  for (let i = 0; i < 10; i++) h.actor.send(usage(i));
  assertEquals(h.spooledIds(), ids(0, 10));
  h.clock.advance(100);
  assertEquals(h.state(), "online.spooling.waiting", "no probe while the connection is down");

  js.mode = "hold";
  js.connection(true);
  assertEquals(h.state(), "online.spooling.replaying.running");
  for (let i = 10; i < 15; i++) h.actor.send(usage(i));
  assertEquals(h.spooledIds(), ids(0, 15), "events arriving during the replay join the spool's tail");
  await js.releaseAll();
  assertEquals(h.state(), "online.publishing.open");
  for (let i = 15; i < 20; i++) h.actor.send(usage(i));
  await js.releaseAll();
  assertEquals(js.stored, ids(0, 20));
  assertEquals([await h.metrics.publishedCount("replay"), await h.metrics.publishedCount("direct")], [15, 5]);
  assertEquals([h.spool.records, (await h.metrics.spoolRecords.get()).values[0]?.value], [0, 0]);
});

Deno.test("usagePublisher sends every unconfirmed event to the spool when a publish fails; each is stored once", async () => {
  const js = new FakeJetStream();
  await using h = fake(js, { input: { maxInFlight: 4 } });
  await settle();
  js.failOnce.add(id(2));
  for (let i = 0; i < 10; i++) h.actor.send(usage(i));
  await settle();
  assertEquals(h.state(), "online.spooling.waiting");
  assertEquals(h.spooledIds(), ids(2, 10), "from the failed one on, in order, in flight or queued");
  h.clock.advance(100);
  await settle();
  assertEquals(h.state(), "online.publishing.open");
  assertEquals([...js.stored].sort(), ids(0, 10));
  assertEquals(js.stored.length, 10, "the events that had landed were dropped as duplicates");
  assert(js.stored.indexOf(id(2)) > js.stored.indexOf(id(3)), "only a failure amid successes reorders");
});

Deno.test("usagePublisher pushes a full in-memory queue to the spool in order, losing and doubling nothing", async () => {
  const js = new FakeJetStream();
  js.mode = "hold";
  await using h = fake(js, { input: { maxInFlight: 2, maxQueued: 3 } });
  await settle();
  for (let i = 0; i < 10; i++) h.actor.send(usage(i));
  assertEquals(h.state(), "online.spooling.waiting");
  assertEquals(h.spooledIds(), ids(0, 10));
  js.mode = "up";
  await js.releaseAll();
  h.clock.advance(100);
  await settle();
  assertEquals(js.stored, ids(0, 10));
  assertEquals(h.spool.records, 0);
});

Deno.test("usagePublisher stop flushes publishes in flight and leaves the rest in the spool for the next one", async () => {
  const js = new FakeJetStream();
  js.mode = "hold";
  await using h = fake(js, { input: { maxInFlight: 2 } });
  await settle();
  for (let i = 0; i < 5; i++) h.actor.send(usage(i));
  h.actor.send({ type: "usage.stop" });
  assertEquals(h.state(), "online.publishing.draining");
  await js.releaseAll();
  assertEquals(h.actor.getSnapshot().status, "done");
  assertEquals(js.stored, ids(0, 2));
  assertEquals(h.spooledIds(), ids(2, 5));

  js.mode = "up";
  const next = h.restart();
  await settle();
  assertEquals(next.getSnapshot().value, { online: { publishing: "open" } });
  assertEquals(js.stored, ids(0, 5));
});

Deno.test("usagePublisher stop with a transport that never answers ends after the drain timeout, spooling all", async () => {
  const js = new FakeJetStream();
  js.mode = "hold";
  await using h = fake(js);
  await settle();
  for (let i = 0; i < 3; i++) h.actor.send(usage(i));
  h.actor.send({ type: "usage.stop" });
  h.clock.advance(1999);
  assertEquals(h.state(), "online.publishing.draining");
  h.clock.advance(1);
  assertEquals(h.actor.getSnapshot().status, "done");
  assertEquals(h.spooledIds(), ids(0, 3));
});

Deno.test("usagePublisher spools events while connecting and replays them first", async () => {
  const js = new FakeJetStream();
  let connected!: (t: UsageTransport) => void;
  const connecting = new Promise<UsageTransport>((resolve) => connected = resolve);
  await using h = fake(js, { input: { connect: () => connecting } });
  for (let i = 0; i < 5; i++) h.actor.send(usage(i));
  assertEquals(h.state(), "connecting.trying");
  assertEquals(h.spooledIds(), ids(0, 5));
  connected(js);
  await settle();
  h.actor.send(usage(5));
  await settle();
  assertEquals(js.stored, ids(0, 6));
});

Deno.test("usagePublisher counts what the spool refuses when full and what NATS can never take", async () => {
  const js = new FakeJetStream();
  await using h = fake(js, { spool: { maxRecords: 3 } });
  await settle();
  js.tooLarge.add(id(1));
  for (let i = 0; i < 3; i++) h.actor.send(usage(i));
  await settle();
  assertEquals(js.stored, [id(0), id(2)]);
  assertEquals(await h.metrics.droppedCount("too_large"), 1);
  js.mode = "down";
  js.connection(false);
  for (let i = 3; i < 8; i++) h.actor.send(usage(i));
  assertEquals(h.spooledIds(), ids(3, 6));
  assertEquals(await h.metrics.droppedCount("spool_full"), 2);
});

// ——— Against a real nats-server ———

interface Live extends AsyncDisposable {
  readonly h: Harness;
  /** The publisher's current connection. */
  readonly link: NatsLink;
}

/** A publisher on a real nats-server (or cluster), with real timers, its own connection, the usage stream ensured. */
async function live(
  servers: string | string[],
  o: { spool?: Partial<SpoolOptions>; input?: Partial<UsagePublisherInput>; replicas?: number } = {},
) {
  {
    await using admin = await connectNats({ servers });
    await ensureUsageStream(await admin.nc.jetstreamManager(), {
      duplicateWindowMs: 120_000,
      replicas: o.replicas ?? 1,
    });
  }
  const links: NatsLink[] = [];
  const h = harness({
    connect: async (signal) => {
      const link = await connectNats({ servers, reconnectWaitMs: 50, reconnectJitterMs: 20 }, { signal });
      links.push(link);
      return jetStreamTransport(link);
    },
    realTime: true,
    spool: o.spool ?? {},
    input: { probeIntervalMs: 50, publishTimeoutMs: 2000, random: Math.random, ...o.input },
  });
  const l: Live = {
    h,
    get link() {
      return links.at(-1)!;
    },
    async [Symbol.asyncDispose]() {
      await h[Symbol.asyncDispose]();
      for (const link of links) await link.close();
    },
  };
  return l;
}

/** Reads the usage stream back with an ordered consumer: the Nats-Msg-Id of each message, in stream order. */
async function readBack(js: JetStreamClient, expected: number): Promise<string[]> {
  const got: string[] = [];
  let stop = () => {};
  const deadline = setTimeout(() => stop(), 10_000);
  try {
    const consumer = await js.consumers.get(USAGE_STREAM);
    const messages = await consumer.consume({ max_messages: 500 });
    stop = () => messages.stop();
    for await (const m of messages) {
      got.push(m.headers?.get("Nats-Msg-Id") ?? "");
      if (got.length >= expected) break;
    }
    messages.stop();
  } finally {
    clearTimeout(deadline);
  }
  return got;
}

/** Reads the usage stream back message by message from its leader (no consumer to place on a degraded cluster). */
async function readBySequence(link: NatsLink, count: number): Promise<string[]> {
  const jsm = await link.nc.jetstreamManager();
  const got: string[] = [];
  for (let seq = 1; seq <= count; seq++) {
    got.push((await jsm.streams.getMessage(USAGE_STREAM, { seq })).header.get("Nats-Msg-Id"));
  }
  return got;
}

async function storedCount(link: NatsLink): Promise<number> {
  return (await (await link.nc.jetstreamManager()).streams.info(USAGE_STREAM)).state.messages;
}

async function stopAndWait(h: Harness): Promise<void> {
  h.actor.send({ type: "usage.stop" });
  await waitFor(h.actor, (s) => s.status === "done", { timeout: 10_000 });
}

const N = 2000;

Deno.test("usagePublisher on a real nats-server stores every event exactly once, in order", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  await using p = await live(ns.url);
  await using reader = await connectNats({ servers: ns.url });
  await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }), { timeout: 10_000 });
  for (let i = 0; i < N; i++) p.h.actor.send(usage(i));
  await pollUntil("every event stored", async () => (await storedCount(reader)) >= N || undefined);
  await stopAndWait(p.h);
  assertEquals(await readBack(reader.nc.jetstream(), N), ids(0, N));
  assertEquals(await storedCount(reader), N);
  assertEquals(await p.h.metrics.publishedCount("direct"), N);
});

for (const how of ["stop", "kill"] as const) {
  Deno.test(`usagePublisher keeps every event through a NATS outage (${how}): spooled, replayed once, in order`, async () => {
    await using ns = await NatsServer.start({ jetstream: true });
    await using p = await live(ns.url);
    await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }), { timeout: 10_000 });
    // Events keep coming, a few per millisecond, while the server goes away, is away and comes back.
    const sendRange = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        p.h.actor.send(usage(i));
        if (i % 5 === 4) await new Promise((r) => setTimeout(r, 1));
      }
    };
    await sendRange(0, 200);
    await Promise.all([how === "stop" ? ns.stop() : ns.kill(), sendRange(200, 400)]);
    await waitFor(p.h.actor, (s) => s.matches({ online: "spooling" }), { timeout: 10_000 });
    await sendRange(400, 600);
    assert(p.h.spool.records >= 200, `${p.h.spool.records} events in the spool`);
    await Promise.all([ns.restart(), sendRange(600, 1000)]);
    await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }) && p.h.spool.records === 0, {
      timeout: 15_000,
    });
    await stopAndWait(p.h);
    await using reader = await connectNats({ servers: ns.url });
    assertEquals(await readBack(reader.nc.jetstream(), 1000), ids(0, 1000));
    assertEquals(await storedCount(reader), 1000);
    // Confirmed first copies, plus duplicates: an event the server stored as it went down, whose acknowledgement was
    // lost, is confirmed only by its replay, as a duplicate.
    const m = p.h.metrics;
    const [direct, replayed] = [await m.publishedCount("direct"), await m.publishedCount("replay")];
    const duplicates = (await m.deduplicated.get()).values.reduce((sum, v) => sum + v.value, 0);
    assert(direct + replayed <= 1000 && direct + replayed + duplicates >= 1000, `${direct}+${replayed}+${duplicates}`);
    assert(replayed >= 200, `${replayed} replayed`);
  });
}

Deno.test("usagePublisher on a real nats-server stores an event published twice (same id) once", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  await using p = await live(ns.url);
  await using reader = await connectNats({ servers: ns.url });
  await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }), { timeout: 10_000 });
  p.h.actor.send(usage(0));
  p.h.actor.send(usage(0));
  p.h.actor.send(usage(1));
  await stopAndWait(p.h);
  assertEquals(await readBack(reader.nc.jetstream(), 2), ids(0, 2));
  assertEquals(await storedCount(reader), 2);
  assertEquals((await p.h.metrics.deduplicated.get()).values[0]?.value, 1);
});

Deno.test("usagePublisher restarted with a non-empty spool replays it to a real nats-server", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  await using p = await live(ns.url);
  await ns.stop();
  for (let i = 0; i < 100; i++) p.h.actor.send(usage(i));
  await stopAndWait(p.h); // still connecting: everything stays in the spool
  assertEquals(p.h.spool.records, 100);

  await ns.restart();
  p.h.restart({ reopen: true });
  assertEquals(p.h.spool.recovered, { records: 100, tornBytes: 0 });
  await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }), { timeout: 10_000 });
  await using reader = await connectNats({ servers: ns.url });
  assertEquals(await readBack(reader.nc.jetstream(), 100), ids(0, 100));
  assertEquals(await storedCount(reader), 100);
  assertEquals(p.h.spool.records, 0);
});

Deno.test("usagePublisher with a drop-oldest spool counts the events it evicts during an outage", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  await using p = await live(ns.url, { spool: { maxRecords: 50, overflow: "drop-oldest" } });
  await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }), { timeout: 10_000 });
  await ns.stop();
  await waitFor(p.h.actor, (s) => s.matches({ online: "spooling" }), { timeout: 10_000 });
  for (let i = 0; i < 80; i++) p.h.actor.send(usage(i));
  assertEquals(await p.h.metrics.droppedCount("spool_evicted"), 30);
  assertEquals(p.h.spooledIds(), ids(30, 80));
  await ns.restart();
  await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }), { timeout: 10_000 });
  await using reader = await connectNats({ servers: ns.url });
  assertEquals(await readBack(reader.nc.jetstream(), 50), ids(30, 80));
  assertEquals(await storedCount(reader), 50);
});

Deno.test("usagePublisher on a 3-node cluster loses nothing when the node it is connected to is killed", async () => {
  await using cluster = await NatsCluster.start(3);
  let victim: NatsServer;
  {
    await using admin = await connectNats({ servers: cluster.urls });
    const info = await ensureUsageStream(await admin.nc.jetstreamManager(), { replicas: 3 });
    // Neither the stream leader nor the meta leader: losing either is a leader election (publishes, or the JetStream
    // API the test reads back with, pause for seconds), a different and slower story.
    const metaLeader = await cluster.metaLeader();
    victim = cluster.nodes.find((n) => n.name !== info.cluster?.leader && n.name !== metaLeader)!;
  }
  // Given only the victim's URL, nats.js learns the other nodes from it and moves to one of them.
  await using p = await live(victim.url, { replicas: 3 });
  await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }), { timeout: 10_000 });
  assertEquals(p.link.nc.info?.server_name, victim.name);
  for (let i = 0; i < 300; i++) p.h.actor.send(usage(i));
  await pollUntil("the first events stored", async () => (await storedCount(p.link)) >= 300 || undefined);
  const sending = (async () => {
    for (let i = 300; i < 1000; i++) {
      p.h.actor.send(usage(i));
      if (i % 5 === 4) await new Promise((r) => setTimeout(r, 1));
    }
  })();
  await victim.kill();
  await sending;
  await waitFor(p.h.actor, (s) => s.matches({ online: "publishing" }) && p.h.spool.records === 0, {
    timeout: 20_000,
  });
  await stopAndWait(p.h);
  assert(p.link.nc.info?.server_name !== victim.name);
  await using reader = await connectNats({ servers: cluster.urls.filter((u) => u !== victim.url) });
  assertEquals(await storedCount(reader), 1000);
  assertEquals(await readBySequence(reader, 1000), ids(0, 1000));
});

Deno.test("usagePublisherActorOptions registers the process singleton as systemId usage, on the input's clock", async () => {
  const js = new FakeJetStream();
  const dir = Deno.makeTempDirSync({ prefix: "tollgate-publisher-" });
  using spool = Spool.open({ path: `${dir}/usage.spool`, maxBytes: 1 << 20, maxRecords: 100, overflow: "reject-new" });
  const clock = new ManualClock();
  const input: UsagePublisherInput = {
    connect: () => Promise.resolve(js),
    spool,
    metrics: new UsageMetrics(new Registry()),
    clock,
    probeIntervalMs: 100,
    random: () => 0.5,
  };
  const actor = createActor(usagePublisherMachine, usagePublisherActorOptions(input)).start();
  try {
    assertEquals(actor.system.get(USAGE_SYSTEM_ID), actor);
    await settle();
    js.failOnce.add(id(0));
    actor.system.get(USAGE_SYSTEM_ID)!.send(usage(0));
    await settle();
    assertEquals([js.stored, spool.records], [[], 1]);
    clock.advance(100); // the probe after a failed publish runs on the input's clock
    await settle();
    assertEquals(js.stored, [id(0)]);
  } finally {
    actor.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});
