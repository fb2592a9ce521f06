// The aggregator: its fold (AggregatorCore, no NATS), then replicas on a real nats-server started on a free port —
// agreement between replicas, restart from a snapshot, deduplication, the rate limit service over gRPC — and the
// `tollgate aggregator` command. Every wait is bounded (pollUntil).
import fc from "fast-check";
import * as grpc from "@grpc/grpc-js";
import { connect, type JetStreamClient, type NatsConnection } from "nats";
import { Registry } from "prom-client";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { spawnTollgate } from "./support/process.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { rateLimitServiceDefinition } from "../src/edge/rate_limit_filter.ts";
import type { RlsRequest } from "../src/edge/rate_limit_descriptors.ts";
import { type RateLimitResponse, RateLimitResponse_Code } from "../src/protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import {
  AggregatorCore,
  type AggregatorRuleSet,
  decodeAggregatorSnapshot,
  encodeAggregatorSnapshot,
  UsageFedRules,
} from "../src/usage/aggregator_core.ts";
import {
  decodeHitEvent,
  encodeHitEvent,
  type HitEvent,
  HitEventError,
  hitEventSubject,
  HitEventVersionError,
} from "../src/usage/hit_event.ts";
import { connectNats, ensureUsageStream, type NatsLink, USAGE_STREAM } from "../src/usage/nats_connection.ts";
import { parseRlsConfig } from "../src/usage/rls_config.ts";
import {
  decodeUsageEvent,
  encodeUsageEvent,
  type UsageEvent,
  usageEventId,
  usageEventSubject,
  usageEventTime,
} from "../src/usage/usage_event.ts";
import { windowKey, windowOf } from "../src/usage/windows.ts";
import { readUsageEvent } from "../src/actors/aggregator/record_decoder.ts";
import { counterValue } from "../src/actors/aggregator/metrics.ts";
import { type AggregatorOptions, type AggregatorReplica, startAggregator } from "../src/actors/aggregator/replica.ts";
import { loadRuleSources } from "../src/actors/aggregator/rule_files.ts";
import { openSnapshotStore, SNAPSHOT_BUCKET } from "../src/actors/aggregator/snapshot_store.ts";
import { jetStreamTransport, usagePublisherMachine } from "../src/actors/usage_publisher.ts";
import { UsageMetrics } from "../src/observability/usage_metrics.ts";
import { Spool } from "../src/usage/spool.ts";
import { createActor, waitFor } from "xstate";

const { OK, OVER_LIMIT } = RateLimitResponse_Code;
const MINUTE = 60_000;
const HOUR = 3_600_000;
// Event times in a window wholly in the future: the log's own time (now) never expires it during a test, and no hour
// boundary passes in the middle of one.
const T0 = Math.floor(Date.now() / HOUR) * HOUR + 2 * HOUR + 30 * MINUTE;

const TOKEN_RESOURCES = new URL("../testdata/resources/token_ratelimit/", import.meta.url).pathname;
/** The first descriptor of every rule of the token_ratelimit example (Envoy Gateway's route generic_key). */
const ROUTE_KEY = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";
const REQUEST_RULES = `domain: requests
descriptors:
  - key: tenant
    rate_limit: { unit: hour, requests_per_unit: 3 }
`;

// Fold-only tests: a per-minute and a per-hour rule in domain "t".
const CORE_RULES = parseRlsConfig([{
  file: "core.yaml",
  text: `domain: t
descriptors:
  - key: user
    rate_limit: { unit: minute, requests_per_unit: 1000 }
  - key: org
    rate_limit: { unit: hour, requests_per_unit: 1000 }
`,
}]);
if (!CORE_RULES.ok) throw new Error(JSON.stringify(CORE_RULES.errors));
const CORE: AggregatorRuleSet = { rules: CORE_RULES.rules, usageFed: new UsageFedRules() };

type Descriptor = UsageEvent["descriptors"][number];

function event(at: number, descriptors: Descriptor[], costs: Record<string, number> = {}): UsageEvent {
  return {
    v: 1,
    id: usageEventId(at),
    time: usageEventTime(at),
    route: "default/chat",
    models: { requested: "gpt-4o-mini" },
    tokens: { totalTokens: costs.total ?? 0 },
    costs,
    descriptors,
    status: 200,
    latencyMs: 12.5,
    stream: false,
  };
}

const d = (key: string, value: string, more: Partial<Descriptor> = {}): Descriptor => ({
  domain: "t",
  entries: [{ key, value }],
  ...more,
});

/** A usage event charging `tokens` to `user` on rule 2 (llm_total_token, 1000 an hour) of the token_ratelimit example. */
function tokenEvent(at: number, user: string, tokens: number): UsageEvent {
  return event(at, [{
    domain: "ai-gateway",
    entries: [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: "rule-2-match-0", value: user }],
    hitsAddendFrom: "llm_total_token",
  }], { llm_total_token: tokens, total: tokens });
}

const count = (core: AggregatorCore, key: string, value: string, at: number, unit: "minute" | "hour" = "minute") =>
  core.store.get(windowKey(`t|${key}=${value}`, windowOf(unit, at).id));

Deno.test("AggregatorCore counts each descriptor in the window of the event's time, whatever the arrival order", () => {
  const core = new AggregatorCore({ replica: "r1", ...CORE });
  const late = event(T0 + MINUTE + 5, [d("user", "alice", { hitsAddend: 7 })]);
  const early = event(T0 + 10, [d("user", "alice", { hitsAddend: 3 }), d("org", "acme")]);
  core.applyUsage(late, { seq: 1, logTimeMs: T0 + MINUTE + 5 });
  core.applyUsage(early, { seq: 2, logTimeMs: T0 + MINUTE + 6 });
  assertEquals(count(core, "user", "alice", T0), 3);
  assertEquals(count(core, "user", "alice", T0 + MINUTE), 7);
  assertEquals(count(core, "org", "acme", T0, "hour"), 1, "no addend: one hit");
  assertEquals(core.seq, 2);
});

Deno.test("AggregatorCore resolves hitsAddendFrom from the costs, and counts nothing for an absent or oversized cost", () => {
  const core = new AggregatorCore({ replica: "r1", ...CORE });
  const from = (key: string) => d("user", "alice", { hitsAddendFrom: key });
  core.applyUsage(event(T0, [from("total")], { total: 120 }));
  core.applyUsage(event(T0, [from("missing")], { total: 5 }));
  core.applyUsage(event(T0, [from("total")], { total: 1_000_000_001 }));
  core.applyUsage(event(T0, [from("constructor")], {}));
  core.applyUsage(event(T0, [d("user", "alice", { hitsAddend: 0 })]));
  core.applyUsage(event(T0, [d("nobody", "x"), { ...d("user", "alice"), domain: "other" }]));
  assertEquals(count(core, "user", "alice", T0), 120);
  assertEquals(core.store.size, 1);
});

Deno.test("AggregatorCore folds a sequence once: a record at or below the applied sequence changes nothing", () => {
  const core = new AggregatorCore({ replica: "r1", ...CORE });
  const e = event(T0, [d("user", "alice", { hitsAddend: 5 })]);
  assert(core.applyUsage(e, { seq: 10, logTimeMs: T0 }));
  assert(!core.applyUsage(e, { seq: 10, logTimeMs: T0 }));
  assert(!core.applyUsage(e, { seq: 3, logTimeMs: T0 }));
  assert(core.skip({ seq: 11, logTimeMs: T0 }));
  assertEquals([count(core, "user", "alice", T0), core.seq], [5, 11]);
});

Deno.test("AggregatorCore adds other replicas' hit events; its own settle the local hits its RLS already counted", () => {
  const core = new AggregatorCore({ replica: "r1", ...CORE, now: () => T0 });
  const window = windowOf("minute", T0);
  const key = windowKey("t|user=alice", window.id);
  core.view.add(key, 2, window.end); // the RLS answered two requests
  const own = core.localHitEvent({
    domain: "t",
    counterKey: "t|user=alice",
    windowId: window.id,
    n: 2,
    eventTimeMs: T0,
  });
  assertEquals([own.replica, own.n, core.view.get(key), core.store.get(key)], ["r1", 2, 2, 0]);
  const other: HitEvent = { ...own, id: usageEventId(T0), replica: "r2", n: 3 };
  core.applyHits(other, { seq: 1, logTimeMs: T0 });
  assertEquals([core.view.get(key), core.store.get(key)], [5, 3]);
  core.applyHits(own, { seq: 2, logTimeMs: T0 });
  assertEquals([core.view.get(key), core.store.get(key), core.view.size], [5, 5, 0]);
});

Deno.test("AggregatorCore ignores records for windows that ended before log time, and prunes them by log time", () => {
  const core = new AggregatorCore({ replica: "r1", ...CORE, retainMs: MINUTE });
  core.applyUsage(event(T0, [d("user", "alice")]), { seq: 1, logTimeMs: T0 });
  core.applyUsage(event(T0 + 5 * MINUTE, [d("user", "bob")]), { seq: 2, logTimeMs: T0 + 5 * MINUTE });
  // A spooled event arriving late: its minute ended four minutes before log time.
  core.applyUsage(event(T0 + 1, [d("user", "alice"), d("org", "acme")]), { seq: 3, logTimeMs: T0 + 5 * MINUTE });
  assertEquals([count(core, "user", "alice", T0), count(core, "org", "acme", T0, "hour")], [1, 1]);
  assertEquals(core.snapshot().counters.counters.map(([k]) => k.split("#")[0]), ["t|org=acme", "t|user=bob"]);
});

Deno.test("AggregatorCore keeps its rules when a config has errors, and folds with the new ones when it has none", () => {
  const core = new AggregatorCore({ replica: "r1", ...CORE });
  const broken = parseRlsConfig([{ file: "b.yaml", text: "domain: t\ndescriptors: [{ key: user, burst: 1 }]" }]);
  assertEquals(core.setRules(broken).map((e) => e.message), ['Unknown field "burst"']);
  core.applyUsage(event(T0, [d("user", "alice")]));
  const orgOnly = parseRlsConfig([{
    file: "o.yaml",
    text: "domain: t\ndescriptors: [{ key: org, rate_limit: { unit: hour, requests_per_unit: 9 } }]",
  }]);
  assertEquals(core.setRules(orgOnly), []);
  core.applyUsage(event(T0, [d("user", "alice"), d("org", "acme")]));
  assertEquals([count(core, "user", "alice", T0), count(core, "org", "acme", T0, "hour")], [1, 1]);
});

// A log of usage and hit events with log times that move forward, sometimes by minutes (so windows expire).
const logArbitrary = fc.array(
  fc.record({
    kind: fc.constantFrom("usage", "usage", "usage", "hit"),
    offset: fc.integer({ min: -3 * MINUTE, max: 3 * MINUTE }),
    advance: fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 4 * MINUTE })),
    who: fc.constantFrom("alice", "bob", "carol"),
    n: fc.integer({ min: 0, max: 40 }),
    addend: fc.constantFrom("fixed", "from", "missing", "one"),
    replica: fc.constantFrom("r1", "r2"),
  }),
  { minLength: 1, maxLength: 120 },
);

type LogSpec = typeof logArbitrary extends fc.Arbitrary<infer T> ? T : never;
type LogEntry = { seq: number; logTimeMs: number; usage?: UsageEvent; hit?: HitEvent };

function buildLog(spec: LogSpec): LogEntry[] {
  let logTime = T0;
  return spec.map((s, i) => {
    logTime += s.advance;
    const at = logTime + s.offset;
    const seq = i + 1;
    if (s.kind === "hit") {
      const window = windowOf("minute", at);
      const hit: HitEvent = {
        v: 1,
        id: usageEventId(at),
        time: usageEventTime(at),
        domain: "t",
        counterKey: `t|user=${s.who}`,
        windowId: window.id,
        n: s.n + 1,
        replica: s.replica,
      };
      return { seq, logTimeMs: logTime, hit };
    }
    const more = s.addend === "fixed"
      ? { hitsAddend: s.n }
      : s.addend === "from"
      ? { hitsAddendFrom: "total" }
      : s.addend === "missing"
      ? { hitsAddendFrom: "absent" }
      : {};
    return { seq, logTimeMs: logTime, usage: event(at, [d("user", s.who, more), d("org", s.who)], { total: s.n }) };
  });
}

function fold(core: AggregatorCore, entry: LogEntry): void {
  if (entry.usage) core.applyUsage(entry.usage, entry);
  else core.applyHits(entry.hit!, entry);
}

Deno.test("replicas folding the same log end with byte-identical snapshots, whenever they prune and snapshot", () => {
  fc.assert(
    fc.property(logArbitrary, fc.array(fc.nat(), { maxLength: 10 }), fc.nat(), (spec, pauses, cut) => {
      const log = buildLog(spec);
      const plain = new AggregatorCore({ replica: "r1", ...CORE });
      const busy = new AggregatorCore({ replica: "r2", ...CORE });
      for (const entry of log) fold(plain, entry);
      const at = new Set(pauses.map((p) => p % log.length));
      let restoredAt: Uint8Array | undefined;
      log.forEach((entry, i) => {
        fold(busy, entry);
        if (at.has(i)) busy.prune(), encodeAggregatorSnapshot(busy.snapshot());
        if (i === cut % log.length) restoredAt = encodeAggregatorSnapshot(busy.snapshot());
      });
      const expected = encodeAggregatorSnapshot(plain.snapshot());
      assertEquals(
        new TextDecoder().decode(encodeAggregatorSnapshot(busy.snapshot())),
        new TextDecoder().decode(expected),
      );
      // A replica restarted from a snapshot taken mid-log, replaying the tail (and the head again: ignored).
      const restarted = new AggregatorCore({ replica: "r3", ...CORE });
      restarted.restore(decodeAggregatorSnapshot(restoredAt!));
      for (const entry of log) fold(restarted, entry);
      assertEquals(encodeAggregatorSnapshot(restarted.snapshot()), expected);
    }),
    { numRuns: 300 },
  );
});

Deno.test("readUsageEvent accepts exactly what decodeUsageEvent accepts, and answers the same, with or without its byte reader", () => {
  const base = JSON.parse(new TextDecoder().decode(encodeUsageEvent({
    ...tokenEvent(T0, "alice", 42),
    backend: "default/openai",
    ttftMs: 3,
    stream: true,
    tenant: "acme",
  }))) as Record<string, unknown>;
  const paths = [
    "v",
    "id",
    "time",
    "route",
    "backend",
    "models",
    "models.requested",
    "tokens",
    "tokens.totalTokens",
    "costs",
    "costs.llm_total_token",
    "descriptors",
    "descriptors.0",
    "descriptors.0.domain",
    "descriptors.0.entries",
    "descriptors.0.entries.0",
    "descriptors.0.entries.0.value",
    "descriptors.0.hitsAddendFrom",
    "status",
    "latencyMs",
    "ttftMs",
    "stream",
    "tenant",
    "extra",
    "descriptors.0.hitsAddend",
    "models.extra",
    "tokens.extra",
  ];
  const times = [
    "2025-06-01T12:00:00.123Z",
    "2025-06-01T12:00:00Z",
    "2025-02-30T12:00:00.000Z",
    "2024-02-29T23:59:59.999Z",
    "2023-02-29T00:00:00.000Z",
    "1900-02-29T00:00:00.000Z",
    "2000-02-29T00:00:00.000Z",
    "0000-01-01T00:00:00.000Z",
    "2025-04-31T00:00:00.000Z",
    "2025-12-31T24:00:00.000Z",
    "2025-06-01T12:60:00.000Z",
    "2025-06-01T12:00:60.000Z",
    "2025-06-01t12:00:00.000Z",
    "2025-06-01T12:00:00.000+00:00",
    "+02025-06-01T12:00:00.000Z",
    "2025-13-01T12:00:00.000Z",
    "2025-00-01T12:00:00.000Z",
    "2025-01-00T12:00:00.000Z",
    "2025-06-01T12:00:00.000\u0000",
  ];
  const agree = (json: unknown) => {
    const bytes = new TextEncoder().encode(JSON.stringify(json));
    agreeOn(bytes, readUsageEvent(bytes));
    agreeOn(bytes, readUsageEvent(bytes, null)); // without the byte reader: JSON.parse and the check by hand
  };
  const agreeOn = (bytes: Uint8Array, fast: UsageEvent | Error) => {
    const json = new TextDecoder().decode(bytes);
    let slow: UsageEvent | Error;
    let threw = false;
    try {
      slow = decodeUsageEvent(bytes);
    } catch (err) {
      // decodeUsageEvent throws for a `time` that is no date at all; readUsageEvent turns that into an error.
      [slow, threw] = [err as Error, true];
    }
    assertEquals(fast instanceof Error, slow instanceof Error, json);
    if (!(fast instanceof Error)) assertEquals(fast, slow);
    else if (!threw) assertEquals(fast.message, (slow as Error).message);
  };
  for (const time of times) agree({ ...base, time });
  const values = fc.oneof(
    fc.constant(undefined),
    fc.constantFrom(0, 1, -1, 1.5, 1e9, 1e9 + 1, 2 ** 53, 100, 599, 600, "", "x", true, null, [], {}),
    fc.constantFrom(...times),
    fc.constantFrom("01972b5c-ee7b-7800-b358-7da2c7ec1136", "01972b5c-ee7b-4800-b358-7da2c7ec1136"),
    fc.string(),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom(...paths), values), { maxLength: 3 }), (edits) => {
      const json = structuredClone(base);
      for (const [path, value] of edits) {
        const keys = path.split(".");
        let at: Record<string, unknown> | undefined = json;
        for (const k of keys.slice(0, -1)) at = at?.[k] as Record<string, unknown> | undefined;
        if (typeof at !== "object" || at === null) continue;
        if (value === undefined) delete at[keys.at(-1)!];
        // A copy: fast-check hands out the same [] and {} every time, and one edit could nest it in itself.
        else at[keys.at(-1)!] = structuredClone(value);
      }
      agree(json);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("rules from Envoy AI Gateway resources make every response-cost counter usage-fed (check-only at the RLS)", async () => {
  const loaded = await loadRuleSources({ rules: [], resources: [TOKEN_RESOURCES] });
  assert(loaded.ok);
  const { rules, usageFed } = loaded.ruleSet;
  const m = rules.matchDescriptor("ai-gateway", [
    { key: ROUTE_KEY, value: ROUTE_KEY },
    { key: "rule-2-match-0", value: "alice" },
  ]);
  assert(m && m.limit.kind === "limited" && m.limit.requestsPerUnit === 1000);
  assert(usageFed.covers(m.counterKey));
  assert(!usageFed.covers("requests|tenant=acme"));
  assertEquals(usageFed.templates.length, 5);
});

Deno.test("hit events round-trip, and a reader refuses unknown fields and reads a newer version as too new", () => {
  const hit: HitEvent = {
    v: 1,
    id: usageEventId(T0),
    time: usageEventTime(T0),
    domain: "requests",
    counterKey: "requests|tenant=acme",
    windowId: windowOf("hour", T0).id,
    n: 2,
    replica: "a",
  };
  assertEquals(decodeHitEvent(encodeHitEvent(hit)), hit);
  const bytes = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  const extra = decodeHitEvent(bytes({ ...hit, extra: 1 }));
  assert(extra instanceof HitEventError && !(extra instanceof HitEventVersionError));
  assertMatch(extra.message, /extra: Unknown field/);
  assertMatch((decodeHitEvent(bytes({ ...hit, n: 0, windowId: "x" })) as Error).message, /windowId.*n: Expected/);
  assert(decodeHitEvent(bytes({ ...hit, v: 2, more: true })) instanceof HitEventVersionError);
  assertEquals(hitEventSubject("requests"), hitEventSubject("requests"));
  assertMatch(hitEventSubject("a.b"), /^tollgate\.hits\.[0-9a-f]{16}$/);
});

// Replicas on a real nats-server.

const REQUEST_RULES_DIR = Deno.makeTempDirSync({ prefix: "tollgate-aggregator-rules-" });
Deno.writeTextFileSync(`${REQUEST_RULES_DIR}/requests.yaml`, REQUEST_RULES);

async function testRules(): Promise<AggregatorRuleSet> {
  const loaded = await loadRuleSources({ rules: [REQUEST_RULES_DIR], resources: [TOKEN_RESOURCES] });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.ruleSet;
}

interface Env extends AsyncDisposable {
  readonly ns: NatsServer;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  replica(id: string, more?: Partial<AggregatorOptions>): Promise<AggregatorReplica & { target: string }>;
  lastSeq(): Promise<number>;
}

async function env(): Promise<Env> {
  const ns = await NatsServer.start({ jetstream: true });
  const nc = await connect({ servers: ns.url });
  await ensureUsageStream(await nc.jetstreamManager());
  const links: NatsLink[] = [];
  const replicas: AggregatorReplica[] = [];
  const ruleSet = await testRules();
  return {
    ns,
    nc,
    js: nc.jetstream(),
    async replica(id, more = {}) {
      const link = await connectNats({ servers: ns.url, reconnectWaitMs: 50, reconnectJitterMs: 10 });
      links.push(link);
      const r = startAggregator({
        link,
        replica: id,
        ruleSet,
        log: silentLogger(),
        registry: new Registry(),
        listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
        now: () => T0 + 1000,
        snapshotIntervalMs: 60_000,
        retryMs: 100,
        ...more,
      });
      replicas.push(r);
      const address = await r.listening;
      return Object.assign(r, { target: address?.kind === "tcp" ? `127.0.0.1:${address.port}` : "" });
    },
    async lastSeq() {
      return (await (await nc.jetstreamManager()).streams.info(USAGE_STREAM)).state.last_seq;
    },
    async [Symbol.asyncDispose]() {
      for (const r of replicas) r.kill();
      await Promise.allSettled(replicas.map((r) => r.done));
      for (const l of links) await l.close();
      await nc.close();
      await ns[Symbol.asyncDispose]();
    },
  };
}

async function publishUsage(js: JetStreamClient, e: UsageEvent) {
  return await js.publish(usageEventSubject("tollgate.usage", e), encodeUsageEvent(e), { msgID: e.id });
}

async function caughtUp(e: Env, ...replicas: AggregatorReplica[]): Promise<number> {
  const last = await e.lastSeq();
  await pollUntil(
    `replicas to fold up to ${last}`,
    () => replicas.every((r) => r.core.seq >= last && r.notReadyReason() === null) ? true : undefined,
    { timeoutMs: 15_000 },
  );
  return last;
}

const snapshotText = (r: AggregatorReplica) => new TextDecoder().decode(encodeAggregatorSnapshot(r.core.snapshot()));

function tokenCount(r: AggregatorReplica, user: string, at = T0): number {
  const m = r.core.rules.matchDescriptor("ai-gateway", [
    { key: ROUTE_KEY, value: ROUTE_KEY },
    { key: "rule-2-match-0", value: user },
  ])!;
  return r.core.store.get(windowKey(m.counterKey, windowOf("hour", at).id));
}

Deno.test("two replicas fed by two publishers agree exactly on every counter", async () => {
  await using e = await env();
  const a = await e.replica("a");
  const b = await e.replica("b");
  // Publisher 1: the sidecar's usage publisher actor (spool and all); publisher 2: direct JetStream publishes.
  const dir = await Deno.makeTempDir({ prefix: "tollgate-aggregator-spool-" });
  const spool = Spool.open({
    path: `${dir}/usage.spool`,
    maxBytes: 1 << 20,
    maxRecords: 10_000,
    overflow: "reject-new",
  });
  const publisherLink = await connectNats({ servers: e.ns.url });
  const publisher = createActor(usagePublisherMachine, {
    input: {
      connect: () => Promise.resolve(jetStreamTransport(publisherLink)),
      spool,
      metrics: new UsageMetrics(new Registry()),
    },
  }).start();
  const users = ["alice", "bob", "carol", "dave"];
  let expected = 0;
  const direct: Promise<unknown>[] = [];
  for (let i = 0; i < 400; i++) {
    const ev = tokenEvent(T0 + i, users[i % users.length]!, 1 + (i % 7));
    if (users[i % users.length] === "alice") expected += 1 + (i % 7);
    if (i % 2 === 0) {
      publisher.send({
        type: "usage.event",
        id: ev.id,
        subject: usageEventSubject("tollgate.usage", ev),
        bytes: encodeUsageEvent(ev),
      });
    } else direct.push(publishUsage(e.js, ev));
  }
  await Promise.all(direct);
  await pollUntil(
    "the usage publisher to publish everything",
    async () => (await e.lastSeq()) >= 400 ? true : undefined,
  );
  publisher.send({ type: "usage.stop" });
  await waitFor(publisher, (s) => s.status === "done", { timeout: 10_000 });
  spool.close();
  await publisherLink.close();
  await Deno.remove(dir, { recursive: true });

  await caughtUp(e, a, b);
  assertEquals(tokenCount(a, "alice"), expected);
  assertEquals(snapshotText(a), snapshotText(b));
  assertEquals(a.core.store.size, 4);
  assertEquals(await counterValue(a.metrics.records, { kind: "usage" }), 400);
});

Deno.test("a killed replica restarts from its KV snapshot and the tail, with nothing counted twice", async () => {
  await using e = await env();
  const b = await e.replica("b");
  let a = await e.replica("a", { snapshotEveryRecords: 50 });
  for (let i = 0; i < 120; i++) await publishUsage(e.js, tokenEvent(T0 + i, "alice", 1));
  await caughtUp(e, a);
  await pollUntil(
    "a snapshot of replica a",
    async () => (await a.metrics.snapshotSeq.get()).values[0]!.value >= 100 ? true : undefined,
  );
  a.kill();
  await a.done;
  for (let i = 120; i < 200; i++) await publishUsage(e.js, tokenEvent(T0 + i, "alice", 1));

  a = await e.replica("a");
  const last = await caughtUp(e, a, b);
  assert(a.restoredFrom && a.restoredFrom.replica === "a" && a.restoredFrom.seq >= 100 && a.restoredFrom.seq < last);
  assertEquals(tokenCount(a, "alice"), 200);
  assertEquals(snapshotText(a), snapshotText(b));
  assertEquals(await counterValue(a.metrics.records, { kind: "usage" }), last - a.restoredFrom.seq, "only the tail");

  // A new replica without a snapshot of its own starts from the most advanced one.
  await a.stop();
  const c = await e.replica("c");
  await caughtUp(e, c);
  assertEquals(c.restoredFrom?.seq, last);
  assertEquals(snapshotText(c), snapshotText(b));
});

Deno.test("snapshots bigger than a message are cut into chunks, and a torn or foreign one is skipped", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  const nc = await connect({ servers: ns.url });
  try {
    const store = await openSnapshotStore(nc.jetstream(), { maxChunkBytes: 1024 });
    const random = (n: number) => crypto.getRandomValues(new Uint8Array(n)); // incompressible
    const first = random(5000);
    await store.save("a", "S@1", 10, first);
    assertEquals(await store.load("a", "S@1"), { replica: "a", seq: 10, bytes: first });
    const second = random(2500);
    await store.save("a", "S@1", 20, second);
    assertEquals((await store.load("a", "S@1"))?.seq, 20);
    await store.save("b", "S@1", 15, random(100));
    assertEquals((await store.load("c", "S@1"))?.replica, "a", "no own snapshot: the most advanced one");
    const kv = await nc.jetstream().views.kv(SNAPSHOT_BUCKET);
    const head = (await kv.get("head.a"))!.json<{ slot: number }>();
    await kv.put(`chunk.a.${head.slot}.1`, new Uint8Array([1, 2, 3]));
    const skipped: string[] = [];
    const loaded = await store.load("a", "S@1", (replica, err) => skipped.push(`${replica}: ${err.message}`));
    assertEquals([loaded?.replica, loaded?.seq], ["b", 15]);
    assertEquals(skipped, ['a: Snapshot of replica "a" at 20 fails its checksum']);
    assertEquals(await store.load("b", "S@2", () => {}), undefined, "a recreated stream starts again");
  } finally {
    await nc.close();
  }
});

Deno.test("a usage event published twice with the same Nats-Msg-Id is counted once", async () => {
  await using e = await env();
  const a = await e.replica("a");
  const ev = tokenEvent(T0, "alice", 30);
  assertEquals((await publishUsage(e.js, ev)).duplicate, false);
  assertEquals((await publishUsage(e.js, ev)).duplicate, true);
  await publishUsage(e.js, tokenEvent(T0 + 1, "alice", 5));
  await caughtUp(e, a);
  assertEquals(tokenCount(a, "alice"), 35);
});

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

const tokenCheck = (user: string, hitsAddend?: number): RlsRequest => ({
  domain: "ai-gateway",
  hitsAddend: 0,
  descriptors: [{
    entries: [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: "rule-2-match-0", value: user }],
    ...(hitsAddend === undefined ? {} : { hitsAddend }),
  }],
});

const requestCheck = (tenant: string): RlsRequest => ({
  domain: "requests",
  hitsAddend: 0,
  descriptors: [{ entries: [{ key: "tenant", value: tenant }] }],
});

Deno.test("RLS: a token budget spent by usage events answers OVER_LIMIT, and stream-done hits for it only check", async () => {
  await using e = await env();
  const a = await e.replica("a");
  for (let i = 0; i < 10; i++) await publishUsage(e.js, tokenEvent(T0 + i, "alice", 100));
  await publishUsage(e.js, tokenEvent(T0, "bob", 400));
  await caughtUp(e, a);

  const alice = await callRls(a.target, tokenCheck("alice", 0));
  assertEquals([alice.overallCode, alice.statuses[0]?.limitRemaining], [OVER_LIMIT, 0]);
  assertEquals(alice.statuses[0]?.currentLimit?.requestsPerUnit, 1000);
  // Envoy's apply_on_stream_done call (and the edge's) for bob: the usage event already carries these 500 tokens.
  const done = await callRls(a.target, tokenCheck("bob", 500));
  assertEquals([done.overallCode, done.statuses[0]?.limitRemaining], [OK, 600]);
  // A request-time check without hits_addend (Envoy sends 1 hit): checked, not added either.
  await callRls(a.target, tokenCheck("bob"));
  assertEquals([
    tokenCount(a, "bob"),
    a.core.view.get(windowKey(
      a.core.rules.matchDescriptor("ai-gateway", tokenCheck("bob").descriptors[0]!.entries)!.counterKey,
      windowOf("hour", T0).id,
    )),
  ], [400, 400]);
  assertEquals((await callRls(a.target, tokenCheck("bob", 0))).statuses[0]?.limitRemaining, 600);
  assertEquals(await counterValue(a.metrics.hitEvents, { result: "published" }), 0);
  assertEquals(await counterValue(a.metrics.decisions, { code: "OVER_LIMIT" }), 1);
});

Deno.test("RLS: request-count hits applied on one replica reach the other through hit events", async () => {
  await using e = await env();
  const a = await e.replica("a");
  const b = await e.replica("b");
  await caughtUp(e, a, b);
  assertEquals((await callRls(a.target, requestCheck("acme"))).statuses[0]?.limitRemaining, 2);
  assertEquals((await callRls(a.target, requestCheck("acme"))).statuses[0]?.limitRemaining, 1);
  const key = windowKey(
    a.core.rules.matchDescriptor("requests", requestCheck("acme").descriptors[0]!.entries)!.counterKey,
    windowOf("hour", T0 + 1000).id,
  );
  await pollUntil("b to fold a's hit events", () => b.core.view.get(key) === 2 ? true : undefined);
  const third = await callRls(b.target, requestCheck("acme"));
  assertEquals([third.overallCode, third.statuses[0]?.limitRemaining], [OK, 0]);
  assertEquals((await callRls(b.target, requestCheck("acme"))).overallCode, OVER_LIMIT);
  // Once every hit is in the log, both replicas fold the same four and nothing is left in a local overlay.
  await pollUntil(
    "every hit to come back through the log",
    () => [a, b].every((r) => r.core.store.get(key) === 4 && r.core.view.size === 0) || undefined,
  );
  await caughtUp(e, a, b);
  assertEquals(snapshotText(a), snapshotText(b));
  // Hits of one counter within 20 ms travel as one event, so there are 1 or 2 events each way.
  assert(await counterValue(a.metrics.records, { kind: "own_hit" }) >= 1);
  assert(await counterValue(a.metrics.records, { kind: "hit" }) >= 1);
});

Deno.test("a record of a newer version stops folding there, and readiness says why", async () => {
  await using e = await env();
  const a = await e.replica("a");
  await publishUsage(e.js, tokenEvent(T0, "alice", 5));
  await e.js.publish(hitEventSubject("requests"), new TextEncoder().encode('{"v":2}'));
  await publishUsage(e.js, tokenEvent(T0 + 1, "alice", 5));
  await pollUntil("a to stall", () => a.notReadyReason()?.startsWith("folding stopped") ? true : undefined);
  assertMatch(a.notReadyReason()!, /Hit event version 2 is newer than this reader understands/);
  assertEquals([a.core.seq, tokenCount(a, "alice")], [1, 5]);
});

// The command, as an operator runs it.

Deno.test("tollgate aggregator serves, reports readiness and metrics, keeps its rules on a bad change, drains on SIGTERM", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  const rulesDir = await Deno.makeTempDir({ prefix: "tollgate-aggregator-cli-" });
  await Deno.writeTextFile(`${rulesDir}/requests.yaml`, REQUEST_RULES);
  const p = spawnTollgate([
    "aggregator",
    "--nats",
    ns.url,
    "--listen",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--rules",
    rulesDir,
    "--replica",
    "cli-1",
    "--snapshot-interval",
    "3600",
  ]);
  await using _ = p;
  const listening = await p.waitForLog("Rate limit service listening");
  const target = String(listening.address);
  const admin = `http://${listening.admin}`;
  await pollUntil("/readyz to answer 200", async () => (await fetch(`${admin}/readyz`)).status === 200 || undefined);

  const tenant = requestCheck("acme");
  assertEquals((await callRls(target, tenant)).statuses[0]?.limitRemaining, 2);
  await Deno.writeTextFile(
    `${rulesDir}/requests.yaml`,
    "domain: requests\ndescriptors:\n  - key: tenant\n    burst: 1\n",
  );
  const rejected = await p.waitForLog("Rejected a rate limit rules change; keeping the rules in force");
  assertMatch(String(rejected.errors), /requests\.yaml.*Unknown field "burst"/);
  assertEquals((await callRls(target, tenant)).statuses[0]?.limitRemaining, 1, "the old rules still apply");

  const metrics = await (await fetch(`${admin}/metrics`)).text();
  assertMatch(metrics, /tollgate_aggregator_lag_records 0/);
  assertMatch(metrics, /tollgate_rls_decisions_total\{code="OK"\} 2/);
  assertMatch(metrics, /tollgate_aggregator_applied_sequence \d+/);

  // Both hit events folded; no snapshot yet (an hour apart): the one SIGTERM writes holds them.
  await pollUntil(
    "both hit events to be folded",
    async () =>
      /tollgate_aggregator_applied_sequence 2\b/.test(await (await fetch(`${admin}/metrics`)).text()) || undefined,
  );
  p.child.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
  await p.waitForLog("Stopped");
  const nc = await connect({ servers: ns.url });
  try {
    const kv = await nc.jetstream().views.kv(SNAPSHOT_BUCKET);
    const head = (await kv.get("head.cli-1"))?.json<{ seq: number }>();
    const last = (await (await nc.jetstreamManager()).streams.info(USAGE_STREAM)).state.last_seq;
    assertEquals([head?.seq, last], [2, 2], "the final snapshot holds both hit events");
  } finally {
    await nc.close();
    await Deno.remove(rulesDir, { recursive: true });
  }
});

Deno.test("tollgate aggregator without --nats, or with invalid rules, exits with a one-line reason", async () => {
  const { runTollgate } = await import("./support/process.ts");
  const missing = await runTollgate(["aggregator"]);
  assertEquals(missing.code, 2);
  assertMatch(missing.stderr, /^tollgate aggregator: --nats is required/);
  const bad = await Deno.makeTempFile({ suffix: ".yaml" });
  await Deno.writeTextFile(bad, "domain: x\ndescriptors: [{ key: a, rate_limit: { unit: fortnight } }]\n");
  const invalid = await runTollgate(["aggregator", "--nats", "nats://127.0.0.1:1", "--rules", bad, "--admin", "off"]);
  await Deno.remove(bad);
  assertEquals(invalid.code, 1);
  assertMatch(invalid.stderr, /^tollgate aggregator: invalid rate limit rules:\n[^]*Expected one of "second"/);
});
