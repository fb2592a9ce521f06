// The NATS test fixtures (a real nats-server, one node or a 3-node JetStream cluster) and the connection helpers
// every role uses, against those real servers.
import { connect, type JetStreamManager, nanos, nkeys, RetentionPolicy, StorageType } from "nats";
import { assert, assertEquals } from "./support/assert.ts";
import { NatsCluster, NatsServer, pollUntil } from "./support/nats_server.ts";
import {
  connectNats,
  ensureUsageStream,
  NatsConnectError,
  natsConnectionOptions,
  USAGE_STREAM,
} from "../src/usage/nats_connection.ts";

const sc = new TextEncoder();

async function messages(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.messages;
}

Deno.test("NatsServer starts with JetStream on a free port, and keeps its store across stop, kill and restart", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  assert(ns.port !== 4222, "never the machine's own server");
  {
    const nc = await connect({ servers: ns.url });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "T", subjects: ["t.>"], storage: StorageType.File });
    await nc.jetstream().publish("t.1", sc.encode("one"));
    await nc.close();
  }
  await ns.stop();
  assert(!ns.running);
  await ns.restart();
  await ns.kill();
  await ns.restart();
  const nc = await connect({ servers: ns.url });
  try {
    assertEquals(await messages(await nc.jetstreamManager(), "T"), 1);
  } finally {
    await nc.close();
  }
});

Deno.test("NatsCluster runs a 3-node JetStream cluster whose R3 stream keeps taking publishes with a node killed", async () => {
  await using cluster = await NatsCluster.start(3);
  const nc = await connect({ servers: cluster.urls, reconnectTimeWait: 100 });
  try {
    const jsm = await nc.jetstreamManager();
    const js = nc.jetstream();
    const info = await jsm.streams.add({ name: "R3", subjects: ["r3.>"], num_replicas: 3 });
    assertEquals(info.cluster?.replicas?.length, 2);
    for (let i = 0; i < 10; i++) await js.publish("r3.a", sc.encode(`${i}`));

    // A follower, and not the node this client is connected to: losing it leaves the leader and a quorum (2 of 3),
    // so every publish is acknowledged at once. (Losing the client's own node is the publisher's business: it spools
    // while nats.js reconnects elsewhere; see usage_publisher_test.ts.)
    const leader = (await jsm.streams.info("R3")).cluster?.leader;
    const follower = cluster.nodes.find((n) => n.name !== leader && n.name !== nc.info?.server_name)!;
    await follower.kill();
    for (let i = 0; i < 50; i++) {
      const ack = await js.publish("r3.b", sc.encode(`${i}`), { msgID: `b-${i}` });
      assertEquals(ack.duplicate, false);
    }
    assertEquals(await messages(jsm, "R3"), 60);

    await follower.restart();
    await pollUntil("the restarted follower to catch up", async () => {
      const replicas = (await jsm.streams.info("R3")).cluster?.replicas ?? [];
      const r = replicas.find((x) => x.name === follower.name);
      return r?.current && !r.offline ? true : undefined;
    }, { timeoutMs: 15_000, intervalMs: 100 });
  } finally {
    await nc.close();
  }
});

Deno.test("connectNats passes user and password through, and wrong ones fail at once with NatsConnectError", async () => {
  await using ns = await NatsServer.start({ jetstream: false, user: "tollgate", pass: "s3cret" });
  await using link = await connectNats({ servers: ns.url, user: "tollgate", pass: "s3cret", name: "test" });
  assertEquals(link.nc.info?.server_name, "single");
  let error: unknown;
  const started = Date.now();
  try {
    await connectNats({ servers: ns.url, user: "tollgate", pass: "wrong", reconnectWaitMs: 50 });
  } catch (err) {
    error = err;
  }
  assert(error instanceof NatsConnectError, `got ${error}`);
  assert(/Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+/.test(error.message), error.message);
  assert(Date.now() - started < 5000, "no retry loop on wrong credentials");
});

Deno.test("connectNats passes a token through, and turns an nkey seed and TLS options into nats.js options", async () => {
  await using ns = await NatsServer.start({ jetstream: false, token: "t0ken" });
  await using link = await connectNats({ servers: ns.url, token: "t0ken" });
  assert(!link.nc.isClosed());
  const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
  const options = natsConnectionOptions({ servers: [ns.url], nkeySeed: seed, tls: { caFile: "/ca.pem" } });
  assertEquals(typeof options.authenticator, "function");
  assertEquals(options.tls, { caFile: "/ca.pem" });
  assertEquals([options.maxReconnectAttempts, options.waitOnFirstConnect], [-1, false]);
});

Deno.test("connectNats waits for a server that is not up yet, and gives up when its signal aborts", async () => {
  await using ns = await NatsServer.start({ jetstream: false });
  await ns.stop();
  const aborter = new AbortController();
  const attempts: number[] = [];
  const pending = connectNats({ servers: ns.url, reconnectWaitMs: 50, reconnectJitterMs: 10 }, {
    signal: aborter.signal,
    onRetry: (_err, attempt) => attempts.push(attempt),
  });
  await pollUntil("two failed attempts", () => attempts.length >= 2 ? true : undefined);
  await ns.restart();
  await using link = await pending;
  assert(!link.nc.isClosed());

  await ns.stop();
  const given = new AbortController();
  const gaveUp = connectNats({ servers: ns.url, reconnectWaitMs: 50 }, { signal: given.signal });
  setTimeout(() => given.abort(new Error("shutting down")), 150);
  let error: unknown;
  try {
    await gaveUp;
  } catch (err) {
    error = err;
  }
  assertEquals((error as Error | undefined)?.message, "shutting down");
});

Deno.test("NatsLink.watch reports the connection going down and coming back; closed() resolves on close", async () => {
  await using ns = await NatsServer.start({ jetstream: false });
  const link = await connectNats({ servers: ns.url, reconnectWaitMs: 50, reconnectJitterMs: 10 });
  const seen: boolean[] = [];
  const unwatch = link.watch((up) => seen.push(up));
  await ns.stop();
  await pollUntil("a disconnect", () => seen.includes(false) ? true : undefined);
  await ns.restart();
  await pollUntil("a reconnect", () => seen.at(-1) === true ? true : undefined);
  unwatch();
  await link.close();
  assertEquals(await link.closed(), undefined);
});

Deno.test("ensureUsageStream creates the usage stream, is idempotent, and updates the settings it owns", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  await using link = await connectNats({ servers: ns.url });
  const jsm = await link.nc.jetstreamManager();
  const created = await ensureUsageStream(jsm, { duplicateWindowMs: 120_000, maxAgeMs: 3_600_000 });
  assertEquals(created.config.name, USAGE_STREAM);
  assertEquals([...created.config.subjects].sort(), ["tollgate.hits.>", "tollgate.usage.>"]);
  assertEquals(
    [created.config.retention, created.config.storage, created.config.num_replicas],
    [RetentionPolicy.Limits, StorageType.File, 1],
  );
  assertEquals([created.config.duplicate_window, created.config.max_age], [nanos(120_000), nanos(3_600_000)]);
  const again = await ensureUsageStream(jsm, { duplicateWindowMs: 120_000, maxAgeMs: 3_600_000 });
  assertEquals(again.created, created.created);
  const updated = await ensureUsageStream(jsm, { duplicateWindowMs: 300_000, maxAgeMs: 3_600_000 });
  assertEquals(updated.config.duplicate_window, nanos(300_000));

  await jsm.streams.add({ name: "MEMORY", subjects: ["m.>"], storage: StorageType.Memory });
  let error: unknown;
  try {
    await ensureUsageStream(jsm, { name: "MEMORY", subjects: ["m.>"] });
  } catch (err) {
    error = err;
  }
  assert(/Cannot use stream MEMORY for usage: .*memory storage/.test(String(error)), String(error));
});
