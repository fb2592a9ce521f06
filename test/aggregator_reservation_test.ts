// Admission by reservation across aggregator replicas on a real nats-server: a reservation held by one replica's rate
// limit service reaches the other through its hit event and counts there too; usage events release reservations on
// both; after reservations and usage events the replicas agree exactly, and every counter is the actual usage.
import * as grpc from "@grpc/grpc-js";
import { connect, type JetStreamClient } from "nats";
import { Registry } from "prom-client";
import { assertEquals } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { rateLimitServiceDefinition } from "../src/edge/rate_limit_filter.ts";
import type { RlsRequest } from "../src/edge/rate_limit_descriptors.ts";
import { type RateLimitResponse, RateLimitResponse_Code } from "../src/protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import { encodeAggregatorSnapshot } from "../src/usage/aggregator_core.ts";
import { connectNats, ensureUsageStream, type NatsLink, USAGE_STREAM } from "../src/usage/nats_connection.ts";
import {
  encodeUsageEvent,
  type UsageEvent,
  usageEventId,
  usageEventSubject,
  usageEventTime,
} from "../src/usage/usage_event.ts";
import { RESERVATION_DESCRIPTOR_KEY } from "../src/usage/reservation.ts";
import { windowKey, windowOf } from "../src/usage/windows.ts";
import { type AggregatorReplica, startAggregator } from "../src/actors/aggregator/replica.ts";
import { loadRuleSources } from "../src/actors/aggregator/rule_files.ts";

const { OK, OVER_LIMIT } = RateLimitResponse_Code;
const HOUR = 3_600_000;
// Inside one hour well in the future: nothing expires during the test and no window boundary passes.
const T0 = Math.floor(Date.now() / HOUR) * HOUR + 2 * HOUR + 30 * 60_000;
const RESOURCES = new URL("../testdata/resources/reservation/", import.meta.url).pathname;
const ROUTE_KEY = "httproute/default/reservation/rule/0/match/0/*";

const userEntries = (user: string) => [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: "rule-0-match-0", value: user }];

/** The request-time call Envoy makes with reservation on: check-only descriptor, reserving descriptor, marker. */
const reserveCall = (user: string, estimate: number, id: string): RlsRequest => ({
  domain: "ai-gateway",
  hitsAddend: 0,
  descriptors: [
    { entries: userEntries(user), hitsAddend: 0 },
    { entries: userEntries(user), hitsAddend: estimate },
    { entries: [{ key: RESERVATION_DESCRIPTOR_KEY, value: id }] },
  ],
});

/** The usage event the sidecar publishes for that request: `actual` tokens (a non-2xx charges nothing). */
function usage(at: number, user: string, actual: number, id: string, status = 200): UsageEvent {
  const ok = status < 300;
  return {
    v: 1,
    id: usageEventId(at),
    time: usageEventTime(at),
    route: "default/reservation",
    models: { requested: "gpt-4o-mini" },
    tokens: ok ? { totalTokens: actual } : {},
    costs: ok ? { llm_total_token: actual } : {},
    descriptors: ok
      ? [{ domain: "ai-gateway", entries: userEntries(user), hitsAddendFrom: "llm_total_token", reserved: 400 }]
      : [],
    status,
    latencyMs: 10,
    stream: false,
    reservation: id,
  };
}

function callRls(target: string, req: RlsRequest): Promise<RateLimitResponse> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const m = rateLimitServiceDefinition.shouldRateLimit;
  return new Promise<RateLimitResponse>((resolve, reject) =>
    client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, (err, res) => {
      client.close();
      if (err || !res) reject(err ?? new Error("no response"));
      else resolve(res);
    })
  );
}

async function publish(js: JetStreamClient, e: UsageEvent): Promise<void> {
  await js.publish(usageEventSubject("tollgate.usage", e), encodeUsageEvent(e), { msgID: e.id });
}

/** What each replica's rate limit service reads for `user` (folded + held), and what its fold alone holds. */
function counts(r: AggregatorReplica, user: string) {
  const m = r.core.rules.matchDescriptor("ai-gateway", userEntries(user))!;
  const key = windowKey(m.counterKey, windowOf("hour", T0).id);
  return { view: r.core.view.get(key), store: r.core.store.get(key) };
}

Deno.test("two replicas hold each other's reservations and agree exactly once usage events release them", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  const nc = await connect({ servers: ns.url });
  const jsm = await nc.jetstreamManager();
  await ensureUsageStream(jsm);
  const js = nc.jetstream();
  const loaded = await loadRuleSources({ rules: [], resources: [RESOURCES] });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const links: NatsLink[] = [];
  const start = async (replica: string) => {
    const link = await connectNats({ servers: ns.url, reconnectWaitMs: 50, reconnectJitterMs: 10 });
    links.push(link);
    const r = startAggregator({
      link,
      replica,
      ruleSet: loaded.ruleSet,
      log: silentLogger(),
      registry: new Registry(),
      listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
      now: () => T0,
      snapshotIntervalMs: 60_000,
      retryMs: 100,
    });
    const address = await r.listening;
    return Object.assign(r, { target: address?.kind === "tcp" ? `127.0.0.1:${address.port}` : "" });
  };
  const a = await start("a");
  const b = await start("b");
  try {
    // alice spent 300 earlier.
    await publish(js, usage(T0 - 60_000, "alice", 300, "r0"));
    await pollUntil(
      "both to fold the first usage",
      () => [a, b].every((r) => counts(r, "alice").store === 300) || undefined,
    );

    // Request 1 reserves 400 on replica a; request 2 reserves 200 on replica b.
    assertEquals((await callRls(a.target, reserveCall("alice", 400, "r1"))).overallCode, OK);
    assertEquals((await callRls(b.target, reserveCall("alice", 200, "r2"))).overallCode, OK);
    await pollUntil(
      "each replica to hold the other's reservation",
      () => [a, b].every((r) => counts(r, "alice").view === 900 && r.core.reservations.size === 2) || undefined,
    );
    // Either replica now refuses what would overshoot the 1,000 tokens, and holds nothing for it.
    assertEquals((await callRls(b.target, reserveCall("alice", 101, "r3"))).overallCode, OVER_LIMIT);
    assertEquals((await callRls(a.target, reserveCall("alice", 100, "r4"))).overallCode, OK);
    await pollUntil("r4 to reach b", () => counts(b, "alice").view === 1000 || undefined);

    // Request 1 used 250, request 2 failed upstream (released, nothing charged), request 4 used 90; request 3 was
    // refused before it ran, so its stream published no usage event.
    await publish(js, usage(T0 + 1000, "alice", 250, "r1"));
    await publish(js, usage(T0 + 1100, "alice", 0, "r2", 503));
    await publish(js, usage(T0 + 1200, "alice", 90, "r4"));
    const last = (await jsm.streams.info(USAGE_STREAM)).state.last_seq;
    await pollUntil("both replicas to fold everything", () => [a, b].every((r) => r.core.seq >= last) || undefined);

    for (const r of [a, b]) {
      assertEquals(counts(r, "alice"), { view: 300 + 250 + 90, store: 300 + 250 + 90 });
      assertEquals(r.core.reservations.size, 0);
    }
    const snapshot = (r: AggregatorReplica) => new TextDecoder().decode(encodeAggregatorSnapshot(r.core.snapshot()));
    assertEquals(snapshot(a), snapshot(b));
  } finally {
    for (const r of [a, b]) r.kill();
    await Promise.allSettled([a.done, b.done]);
    for (const l of links) await l.close();
    await nc.close();
  }
});

Deno.test("a replica restarted from its snapshot still holds the reservations in it, and releases them", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  const nc = await connect({ servers: ns.url });
  const jsm = await nc.jetstreamManager();
  await ensureUsageStream(jsm);
  const js = nc.jetstream();
  const loaded = await loadRuleSources({ rules: [], resources: [RESOURCES] });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const links: NatsLink[] = [];
  const start = async () => {
    const link = await connectNats({ servers: ns.url, reconnectWaitMs: 50, reconnectJitterMs: 10 });
    links.push(link);
    const r = startAggregator({
      link,
      replica: "a",
      ruleSet: loaded.ruleSet,
      log: silentLogger(),
      registry: new Registry(),
      listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
      now: () => T0,
      snapshotIntervalMs: 60_000,
      retryMs: 100,
    });
    const address = await r.listening;
    return Object.assign(r, { target: address?.kind === "tcp" ? `127.0.0.1:${address.port}` : "" });
  };
  const first = await start();
  let second: Awaited<ReturnType<typeof start>> | undefined;
  try {
    assertEquals((await callRls(first.target, reserveCall("bob", 500, "r1"))).overallCode, OK);
    await pollUntil("the reservation to come back through the log", () => first.core.seq >= 1 || undefined);
    // A drain writes the final snapshot, with the reservation folded in it.
    await first.stop();
    second = await start();
    await pollUntil("the restarted replica to be ready", () => second!.notReadyReason() === null || undefined);
    assertEquals(second.restoredFrom?.seq, 1);
    assertEquals(counts(second, "bob"), { view: 500, store: 0 });
    await publish(js, usage(T0 + 10, "bob", 123, "r1"));
    await pollUntil("the usage event to release it", () => counts(second!, "bob").store === 123 || undefined);
    assertEquals(counts(second, "bob"), { view: 123, store: 123 });
  } finally {
    first.kill();
    second?.kill();
    await Promise.allSettled([first.done, second?.done]);
    for (const l of links) await l.close();
    await nc.close();
  }
});
