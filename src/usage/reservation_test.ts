// Admission by reservation in the rate limit service and the fold, without NATS: reserve at check time, reconcile with
// the usage event, release on failure; and the records that carry reservations.
import { assert, assertEquals } from "../../test/support/assert.ts";
import type { RlsRequest } from "../edge/rate_limit_descriptors.ts";
import { RateLimitResponse_Code } from "../protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import { readUsageEvent } from "../actors/aggregator/record_decoder.ts";
import {
  AggregatorCore,
  decodeAggregatorSnapshot,
  encodeAggregatorSnapshot,
  UsageFedRules,
} from "./aggregator_core.ts";
import { decodeHitEvent, encodeHitEvent, type HitEvent, HitEventError } from "./hit_event.ts";
import { RESERVATION_DESCRIPTOR_KEY } from "./reservation.ts";
import { type AppliedReservation, decideRateLimit } from "./rls_service.ts";
import { parseRlsConfig } from "./rls_config.ts";
import { decodeUsageEvent, encodeUsageEvent, type UsageEvent, usageEventId, usageEventTime } from "./usage_event.ts";
import { windowKey, windowOf } from "./windows.ts";

const { OK, OVER_LIMIT } = RateLimitResponse_Code;
const HOUR = 3_600_000;
const T0 = Date.UTC(2030, 0, 1, 10, 30);
const DOMAIN = "ai-gateway";

const loaded = parseRlsConfig([{
  file: "rules.yaml",
  text: `domain: ai-gateway
descriptors:
  - key: user
    rate_limit: { unit: hour, requests_per_unit: 1000 }
  - key: tenant
    rate_limit: { unit: hour, requests_per_unit: 3 }
`,
}]);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
const rules = loaded.rules;
// Token budgets per user are fed by usage events; request counts per tenant are not.
const usageFed = new UsageFedRules([{ domain: DOMAIN, entries: [{ key: "user" }] }]);

function core(replica = "a", o: { holdMs?: number } = {}): AggregatorCore {
  return new AggregatorCore({
    replica,
    rules,
    usageFed,
    ...(o.holdMs === undefined ? {} : { reservationHoldMs: o.holdMs }),
  });
}

const marker = (id: string) => ({ entries: [{ key: RESERVATION_DESCRIPTOR_KEY, value: id }] });
const user = (name: string, hitsAddend?: number) => ({
  entries: [{ key: "user", value: name }],
  ...(hitsAddend === undefined ? {} : { hitsAddend }),
});

function request(descriptors: RlsRequest["descriptors"]): RlsRequest {
  return { domain: DOMAIN, hitsAddend: 0, descriptors };
}

/** One ShouldRateLimit decision on a core, holds folded at once (as `tollgate run` does without NATS). */
function check(c: AggregatorCore, req: RlsRequest, at = T0) {
  return decideRateLimit(req, c.rules, c.view, at, {
    applyHits: true,
    checkOnly: c.checkOnly,
    reserve: (r) => c.reserveFolded(r),
  });
}

/** The usage event of a request: the actual cost of user `name` under llm_total_token, released reservation `id`. */
function usage(at: number, name: string, actual: number, o: { id?: string; status?: number } = {}): UsageEvent {
  const ok = (o.status ?? 200) < 300;
  return {
    v: 1,
    id: usageEventId(at),
    time: usageEventTime(at),
    route: "default/chat",
    models: { requested: "gpt-4o" },
    tokens: ok ? { totalTokens: actual } : {},
    costs: ok ? { llm_total_token: actual } : {},
    descriptors: ok
      ? [{ domain: DOMAIN, entries: [{ key: "user", value: name }], hitsAddendFrom: "llm_total_token" }]
      : [],
    status: o.status ?? 200,
    latencyMs: 5,
    stream: false,
    ...(o.id ? { reservation: o.id } : {}),
  };
}

function counterKeyOf(name: string): string {
  return rules.matchDescriptor(DOMAIN, [{ key: "user", value: name }])!.counterKey;
}

/** What the rate limit service reads for `name` (folded + held), and what the fold alone holds. */
function counts(c: AggregatorCore, name: string, at = T0): { view: number; store: number } {
  const key = windowKey(counterKeyOf(name), windowOf("hour", at).id);
  return { view: c.view.get(key), store: c.store.get(key) };
}

Deno.test("a reservation is held at check time, and the usage event replaces it with the actual usage exactly", () => {
  const c = core();
  const res = check(c, request([user("alice", 300), marker("r1")]));
  assertEquals([res.overallCode, res.statuses[0]?.limitRemaining], [OK, 700]);
  assertEquals(counts(c, "alice"), { view: 300, store: 0 });
  c.applyUsage(usage(T0 + 2000, "alice", 120, { id: "r1" }));
  assertEquals(counts(c, "alice"), { view: 120, store: 120 });
  assertEquals(c.reservations.size, 0);
});

Deno.test("a request whose reservation would overshoot the limit is refused at check time and holds nothing", () => {
  const c = core();
  c.applyUsage(usage(T0, "alice", 900));
  const refused = check(c, request([user("alice", 200), marker("r1")]));
  assertEquals([refused.overallCode, refused.statuses[0]?.limitRemaining], [OVER_LIMIT, 0]);
  assertEquals(counts(c, "alice").view, 900);
  // Exactly filling the budget is allowed; after that even a check without a reservation is refused.
  assertEquals(check(c, request([user("alice", 100), marker("r2")])).overallCode, OK);
  assertEquals(check(c, request([user("alice", 0)])).overallCode, OVER_LIMIT);
  // The refused request's usage event (a 429, nothing charged) releases nothing and adds nothing.
  c.applyUsage(usage(T0 + 1, "alice", 0, { id: "r1", status: 429 }));
  assertEquals(counts(c, "alice"), { view: 1000, store: 900 });
});

Deno.test("without the marker a usage-fed counter is only checked: Envoy's stream-done hits add nothing", () => {
  const c = core();
  assertEquals(check(c, request([user("alice", 500)])).overallCode, OK);
  assertEquals(counts(c, "alice").view, 0);
});

Deno.test("a failed request releases its reservation", () => {
  const c = core();
  c.applyUsage(usage(T0, "alice", 100));
  check(c, request([user("alice", 400), marker("r1")]));
  assertEquals(counts(c, "alice").view, 500);
  c.applyUsage(usage(T0 + 3000, "alice", 0, { id: "r1", status: 503 }));
  assertEquals(counts(c, "alice"), { view: 100, store: 100 });
});

Deno.test("one request's reservations on several counters are all held, or none when one of them is over", () => {
  const c = core();
  c.applyUsage(usage(T0, "bob", 950));
  const both = request([user("alice", 100), user("bob", 100), marker("r1")]);
  assertEquals(check(c, both).overallCode, OVER_LIMIT);
  assertEquals([counts(c, "alice").view, counts(c, "bob").view], [0, 950]);
  assertEquals(check(c, request([user("alice", 100), user("bob", 50), marker("r2")])).overallCode, OK);
  assertEquals([counts(c, "alice").view, counts(c, "bob").view], [100, 1000]);
});

Deno.test("request-count hits in a reserving request keep envoyproxy/ratelimit's semantics", () => {
  const c = core();
  const tenant = { entries: [{ key: "tenant", value: "acme" }] };
  for (let i = 0; i < 3; i++) {
    assertEquals(check(c, request([tenant, user("alice", 10), marker(`r${i}`)])).overallCode, OK);
  }
  const fourth = check(c, request([tenant, user("alice", 10), marker("r3")]));
  assertEquals(fourth.overallCode, OVER_LIMIT);
  // The tenant's hit counted although the request was refused (envoyproxy/ratelimit#1060); the reservation did not.
  assertEquals(counts(c, "alice").view, 30);
});

Deno.test("the actual usage goes to the window the reservation was held in, even when the response ends in the next", () => {
  const c = core();
  const start = Math.floor(T0 / HOUR) * HOUR + HOUR - 1000; // a second before the hour ends
  check(c, request([user("alice", 300), marker("r1")]), start);
  c.applyUsage(usage(start + 5000, "alice", 250, { id: "r1" }));
  assertEquals(counts(c, "alice", start), { view: 250, store: 250 });
  assertEquals(counts(c, "alice", start + 5000), { view: 0, store: 0 });
});

Deno.test("a usage event with a reservation nothing holds counts its actual usage in its own window", () => {
  const c = core();
  c.applyUsage(usage(T0, "alice", 77, { id: "never-held" }));
  assertEquals(counts(c, "alice"), { view: 77, store: 77 });
});

Deno.test("replicas agree when a usage event is folded before its reservation's hit event, and the hold expires", () => {
  const a = core("a", { holdMs: 60_000 });
  const b = core("b", { holdMs: 60_000 });
  const published: HitEvent[] = [];
  decideRateLimit(request([user("alice", 300), marker("r1")]), a.rules, a.view, T0, {
    applyHits: true,
    checkOnly: a.checkOnly,
    reserve: (r: AppliedReservation) => published.push(a.reserveLocal(r)),
  });
  assertEquals([published.length, counts(a, "alice").view, counts(b, "alice").view], [1, 300, 0]);
  // The log: the usage event first (seq 1), then the hit event (seq 2).
  const log: [UsageEvent | HitEvent, number][] = [[usage(T0 + 10, "alice", 120, { id: "r1" }), 1], [published[0]!, 2]];
  for (const r of [a, b]) {
    for (const [record, seq] of log) {
      const at = { seq, logTimeMs: T0 + 20 };
      if ("counterKey" in record) r.applyHits(record, at);
      else r.applyUsage(record, at);
    }
  }
  const snap = (r: AggregatorCore) => new TextDecoder().decode(encodeAggregatorSnapshot(r.snapshot()));
  assertEquals(snap(a), snap(b));
  // The late hold counts (conservatively) until it expires, on both.
  assertEquals([counts(a, "alice"), counts(b, "alice")], [{ view: 420, store: 120 }, { view: 420, store: 120 }]);
  for (const r of [a, b]) {
    r.applyUsage(usage(T0 + 61_000, "carol", 1), { seq: 3, logTimeMs: T0 + 61_000 });
    r.prune();
  }
  assertEquals([counts(a, "alice").view, counts(b, "alice").view], [120, 120]);
  assertEquals(snap(a), snap(b));
});

Deno.test("a replica's own reservation moves from local to folded when its hit event comes back", () => {
  const a = core("a");
  const b = core("b");
  let hit: HitEvent | undefined;
  decideRateLimit(request([user("alice", 300), marker("r1")]), a.rules, a.view, T0, {
    applyHits: true,
    checkOnly: a.checkOnly,
    reserve: (r) => hit = a.reserveLocal(r),
  });
  const decoded = decodeHitEvent(encodeHitEvent(hit!));
  assert(!(decoded instanceof Error), String(decoded));
  for (const r of [a, b]) r.applyHits(decoded, { seq: 1, logTimeMs: T0 + 1 });
  assertEquals([counts(a, "alice").view, counts(b, "alice").view], [300, 300]);
  for (const r of [a, b]) r.applyUsage(usage(T0 + 50, "alice", 90, { id: "r1" }), { seq: 2, logTimeMs: T0 + 60 });
  assertEquals([counts(a, "alice"), counts(b, "alice")], [{ view: 90, store: 90 }, { view: 90, store: 90 }]);
});

Deno.test("held reservations survive a snapshot and restore, and are released after it", () => {
  const a = core();
  check(a, request([user("alice", 300), marker("r1")]));
  const bytes = encodeAggregatorSnapshot(a.snapshot());
  const restored = core("b");
  restored.restore(decodeAggregatorSnapshot(bytes));
  assertEquals(counts(restored, "alice").view, 300);
  restored.applyUsage(usage(T0 + 10, "alice", 5, { id: "r1" }));
  assertEquals(counts(restored, "alice"), { view: 5, store: 5 });
  // A snapshot without reservations has the same bytes as before reservations existed.
  const plain = core();
  plain.applyUsage(usage(T0, "bob", 1));
  assert(!new TextDecoder().decode(encodeAggregatorSnapshot(plain.snapshot())).includes("reservations"));
});

Deno.test("hit events carry a reservation with its end, and a reader refuses half of one", () => {
  const hit: HitEvent = {
    v: 1,
    id: usageEventId(T0),
    time: usageEventTime(T0),
    domain: DOMAIN,
    counterKey: counterKeyOf("alice"),
    windowId: windowOf("hour", T0).id,
    n: 300,
    replica: "a",
    reservation: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    reservedUntil: T0 + 900_000,
  };
  assertEquals(decodeHitEvent(encodeHitEvent(hit)), hit);
  const { reservedUntil: _, ...half } = hit;
  assert(decodeHitEvent(new TextEncoder().encode(JSON.stringify(half))) instanceof HitEventError);
  const bad = { ...hit, reservation: "not an id!" };
  assert(decodeHitEvent(new TextEncoder().encode(JSON.stringify(bad))) instanceof HitEventError);
});

Deno.test("usage events carry a reservation id and reserved amounts, read alike by both decoders", () => {
  const e: UsageEvent = {
    ...usage(T0, "alice", 10, { id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" }),
    descriptors: [{
      domain: DOMAIN,
      entries: [{ key: "user", value: "alice" }],
      hitsAddendFrom: "llm_total_token",
      reserved: 300,
    }],
  };
  const bytes = encodeUsageEvent(e);
  assertEquals(decodeUsageEvent(bytes), e);
  assertEquals(readUsageEvent(bytes), e);
  for (const broken of [{ ...e, reservation: "" }, { ...e, descriptors: [{ ...e.descriptors[0]!, reserved: -1 }] }]) {
    const b = new TextEncoder().encode(JSON.stringify(broken));
    assert(decodeUsageEvent(b) instanceof Error);
    assert(readUsageEvent(b) instanceof Error);
  }
});
