import { assertEquals } from "../../../test/support/assert.ts";
import { AggregatorCore, UsageFedRules } from "../../usage/aggregator_core.ts";
import { parseRlsConfig } from "../../usage/rls_config.ts";
import { type UsageEvent, usageEventId, usageEventTime } from "../../usage/usage_event.ts";
import { windowKey, windowOf } from "../../usage/windows.ts";
import { descriptorKeyNames, headroomReport, tenantKeysOf } from "./dashboard_headroom.ts";

const HOUR = 3_600_000;
const NOW = Math.floor(Date.UTC(2026, 0, 1, 12) / HOUR) * HOUR + 10 * 60_000;

const RULES = `domain: t
descriptors:
  - key: user
    rate_limit: { unit: hour, requests_per_unit: 100 }
  - key: team
    value: "red*"
    share_threshold: true
    rate_limit: { unit: hour, requests_per_unit: 10 }
  - key: org
    shadow_mode: true
    rate_limit: { unit: minute, requests_per_unit: 5 }
  - key: free
    rate_limit: { unlimited: true }
`;

function core(): AggregatorCore {
  const parsed = parseRlsConfig([{ file: "t.yaml", text: RULES }]);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return new AggregatorCore({ replica: "r1", rules: parsed.rules, usageFed: new UsageFedRules(), now: () => NOW });
}

function usage(at: number, key: string, value: string, hits: number): UsageEvent {
  return {
    v: 1,
    id: usageEventId(at),
    time: usageEventTime(at),
    route: "default/chat",
    models: { requested: "m" },
    tokens: {},
    costs: {},
    descriptors: [{ domain: "t", entries: [{ key, value }], hitsAddend: hits }],
    status: 200,
    latencyMs: 1,
    stream: false,
  };
}

Deno.test("headroomReport lists the current windows' counters, busiest first, with their rule's limit", () => {
  const c = core();
  c.applyUsage(usage(NOW, "user", "alice", 80));
  c.applyUsage(usage(NOW, "user", "bob", 30));
  c.applyUsage(usage(NOW - HOUR, "user", "carol", 99)); // last hour's window: not current
  c.applyUsage(usage(NOW, "team", "red-1", 4));
  c.applyUsage(usage(NOW, "team", "red-2", 5)); // shares red*'s counter: 9 of 10
  c.applyUsage(usage(NOW, "org", "acme", 7)); // over, in shadow mode
  c.applyUsage(usage(NOW, "free", "x", 1000)); // unlimited: never counted
  // A hit the rate limit service added locally, not yet back through the log.
  const bob = c.rules.matchDescriptor("t", [{ key: "user", value: "bob" }])!;
  c.view.add(windowKey(bob.counterKey, windowOf("hour", NOW).id), 5, windowOf("hour", NOW).end);

  const r = headroomReport(c, { now: NOW });
  assertEquals(r.limitedRules, 3);
  assertEquals(r.domains, ["t"]);
  assertEquals(
    r.top.map((x) => [x.descriptor, x.used, x.limit, x.remaining, x.unit, x.shadowMode]),
    [
      ["org=acme", 7, 5, 0, "minute", true],
      ["team=red*", 9, 10, 1, "hour", false],
      ["user=alice", 80, 100, 20, "hour", false],
      ["user=bob", 35, 100, 65, "hour", false],
    ],
  );
  assertEquals(r.activeCounters, 4);
  assertEquals(r.top[1]!.windowEnd, windowOf("hour", NOW).end);
  assertEquals(headroomReport(c, { now: NOW, top: 1 }).top.length, 1);
});

Deno.test("headroomReport names descriptor keys after the request header that feeds them, and shortens route markers", () => {
  const route = "httproute/default/chat/rule/0/match/0/*";
  const parsed = parseRlsConfig([{
    file: "t.yaml",
    text: `domain: ai-gateway
descriptors:
  - key: "${route}"
    value: "${route}"
    descriptors:
      - key: rule-0-match-0
        rate_limit: { unit: hour, requests_per_unit: 10 }
`,
  }]);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const c = new AggregatorCore({ replica: "r1", rules: parsed.rules, usageFed: new UsageFedRules() });
  const e = usage(NOW, "x", "y", 0);
  c.applyUsage({
    ...e,
    costs: { llm_input_token: 4 },
    descriptors: [{
      domain: "ai-gateway",
      entries: [{ key: route, value: route }, { key: "rule-0-match-0", value: "alice" }],
      hitsAddendFrom: "llm_input_token",
    }],
  });
  const names = descriptorKeyNames(
    new Map([["r", {
      entries: [{
        actions: [
          { kind: "genericKey" as const, descriptorKey: route, descriptorValue: route },
          {
            kind: "requestHeaders" as const,
            headerName: "x-user-id",
            descriptorKey: "rule-0-match-0",
            skipIfAbsent: false,
          },
        ],
        applyOnStreamDone: true,
        hitsAddend: { metadata: { namespace: "io.envoy.ai_gateway", key: "llm_input_token" } },
      }],
    }]]),
  );
  const [top] = headroomReport(c, { now: NOW, names }).top;
  assertEquals(
    [top?.descriptor, top?.scope, top?.name, top?.used, top?.limit],
    ["x-user-id=alice", "route default/chat", "llm_input_token", 4, 10],
  );
  assertEquals([...tenantKeysOf(parsed.rules)], ["rule-0-match-0"]);
});
