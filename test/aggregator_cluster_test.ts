// An aggregator replica on a 3-node JetStream cluster (usage stream and snapshot bucket with 3 replicas): the stream
// leader is killed while two publishers are sending, and every usage event is still counted exactly once. Publishers
// re-send an unacknowledged event with its Nats-Msg-Id until it is acknowledged, as the sidecar's publisher does.
import { connect, type JetStreamClient } from "nats";
import { Registry } from "prom-client";
import { assert, assertEquals } from "./support/assert.ts";
import { NatsCluster, pollUntil } from "./support/nats_server.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { startAggregator } from "../src/actors/aggregator/replica.ts";
import { loadRuleSources } from "../src/actors/aggregator/rule_files.ts";
import { connectNats, ensureUsageStream, USAGE_STREAM } from "../src/usage/nats_connection.ts";
import {
  encodeUsageEvent,
  type UsageEvent,
  usageEventId,
  usageEventSubject,
  usageEventTime,
} from "../src/usage/usage_event.ts";
import { windowKey, windowOf } from "../src/usage/windows.ts";

const HOUR = 3_600_000;
const T0 = Math.floor(Date.now() / HOUR) * HOUR + 2 * HOUR + 30 * 60_000;
const TOKEN_RESOURCES = new URL("../testdata/resources/token_ratelimit/", import.meta.url).pathname;
const ROUTE_KEY = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";
const USERS = ["alice", "bob", "carol", "dave", "erin"];

function tokenEvent(at: number, user: string, tokens: number): UsageEvent {
  return {
    v: 1,
    id: usageEventId(at),
    time: usageEventTime(at),
    route: "default/envoy-ai-gateway-token-ratelimit",
    models: { requested: "m" },
    tokens: { totalTokens: tokens },
    costs: { llm_total_token: tokens },
    descriptors: [{
      domain: "ai-gateway",
      entries: [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: "rule-2-match-0", value: user }],
      hitsAddendFrom: "llm_total_token",
    }],
    status: 200,
    latencyMs: 5,
    stream: false,
  };
}

/** Publishes until acknowledged (same Nats-Msg-Id every time), within a deadline. */
async function publishReliably(js: JetStreamClient, e: UsageEvent, deadline: number): Promise<void> {
  for (;;) {
    try {
      await js.publish(usageEventSubject("tollgate.usage", e), encodeUsageEvent(e), { msgID: e.id, timeout: 2000 });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`Event ${e.id} not acknowledged before the deadline`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

Deno.test("on a 3-node JetStream cluster, killing the stream leader under load loses no usage event", async () => {
  await using cluster = await NatsCluster.start(3);
  const admin = await connect({ servers: cluster.urls, reconnectTimeWait: 100 });
  const jsm = await admin.jetstreamManager();
  await ensureUsageStream(jsm, { replicas: 3 });
  const loaded = await loadRuleSources({ rules: [], resources: [TOKEN_RESOURCES] });
  assert(loaded.ok);

  const link = await connectNats({ servers: cluster.urls, reconnectWaitMs: 100, reconnectJitterMs: 50 });
  const replica = startAggregator({
    link,
    replica: "a",
    ruleSet: loaded.ruleSet,
    log: silentLogger(),
    registry: new Registry(),
    replicas: 3,
    snapshotEveryRecords: 500,
    consume: { heartbeatMs: 1000, tipIntervalMs: 1000 },
    retryMs: 200,
  });
  const publishers = await Promise.all([0, 1].map(() => connect({ servers: cluster.urls, reconnectTimeWait: 100 })));
  try {
    await pollUntil("the replica to be ready", () => replica.notReadyReason() === null || undefined, {
      timeoutMs: 20_000,
    });
    const perPublisher = 1200;
    const expected = new Map<string, number>();
    const events = [0, 1].map((p) =>
      Array.from({ length: perPublisher }, (_, i) => {
        const user = USERS[(i + p) % USERS.length]!;
        const tokens = 1 + ((i * 7 + p) % 13);
        expected.set(user, (expected.get(user) ?? 0) + tokens);
        return tokenEvent(T0 + i, user, tokens);
      })
    );
    const sent = [0, 0];
    const deadline = Date.now() + 60_000;
    const publishing = events.map(async (list, p) => {
      const js = publishers[p]!.jetstream();
      for (let i = 0; i < list.length; i += 20) {
        await Promise.all(list.slice(i, i + 20).map((e) => publishReliably(js, e, deadline)));
        sent[p] = i + 20;
      }
    });

    await pollUntil("a third of the events to be published", () => sent[0]! + sent[1]! >= 800 || undefined, {
      timeoutMs: 30_000,
    });
    const leader = (await jsm.streams.info(USAGE_STREAM)).cluster?.leader;
    assert(leader, "the stream has a leader");
    await cluster.byName(leader).kill();
    assert(sent[0]! + sent[1]! < 2 * perPublisher, "killed while the publishers were still sending");
    await Promise.all(publishing);

    const stored = await pollUntil("the stream to answer after the new leader election", async () => {
      const info = await jsm.streams.info(USAGE_STREAM);
      return info.cluster?.leader && info.cluster.leader !== leader ? info.state : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    assertEquals(stored.messages, 2 * perPublisher, "each event stored once");
    await pollUntil("the replica to fold every event", () => replica.core.seq >= stored.last_seq || undefined, {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    for (const user of USERS) {
      const m = replica.core.rules.matchDescriptor("ai-gateway", [
        { key: ROUTE_KEY, value: ROUTE_KEY },
        { key: "rule-2-match-0", value: user },
      ])!;
      assertEquals(replica.core.store.get(windowKey(m.counterKey, windowOf("hour", T0).id)), expected.get(user), user);
    }
  } finally {
    replica.kill();
    await replica.done.catch(() => {});
    await link.close();
    for (const p of publishers) await p.close();
    await admin.close();
  }
});
