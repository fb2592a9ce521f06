import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { FakeRls, headerValue, rlsResponse } from "../../test/support/fake_rls_server.ts";
import type { RateLimitFilterConfig, RouteConfig } from "./config.ts";
import type { DescriptorContext } from "./rate_limit_descriptors.ts";
import { decide, RateLimitFilter, RateLimitServiceError, xRateLimitHeaders } from "./rate_limit_filter.ts";
import {
  RateLimitResponse_Code,
  type RateLimitResponse_DescriptorStatus,
  RateLimitResponse_RateLimit_Unit,
} from "../protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import { ManualClock } from "../observability/clock.ts";
import { silentLogger } from "../observability/logger.ts";

const { OK, OVER_LIMIT, UNKNOWN } = RateLimitResponse_Code;
const { SECOND, MINUTE, HOUR, UNKNOWN: NO_UNIT } = RateLimitResponse_RateLimit_Unit;

function status(
  requestsPerUnit: number,
  unit: RateLimitResponse_RateLimit_Unit,
  limitRemaining: number,
  resetSeconds?: number,
  name = "",
): RateLimitResponse_DescriptorStatus {
  return {
    code: limitRemaining > 0 ? OK : OVER_LIMIT,
    currentLimit: { name, requestsPerUnit, unit },
    limitRemaining,
    durationUntilReset: resetSeconds === undefined ? undefined : { seconds: resetSeconds, nanos: 0 },
  };
}

const flags = { failureModeDeny: false, enableXRateLimitHeaders: true };

// decide()

Deno.test("decide allows an OK answer and adds the X-RateLimit headers of the descriptor statuses", () => {
  const response = rlsResponse({ overallCode: OK, statuses: [status(10, MINUTE, 7, 42)] });
  assertEquals(decide(response, flags), {
    kind: "allow",
    responseHeaders: { "x-ratelimit-limit": "10, 10;w=60", "x-ratelimit-remaining": "7", "x-ratelimit-reset": "42" },
    requestHeaders: {},
  });
});

Deno.test("decide answers OVER_LIMIT with 429, x-envoy-ratelimited and the X-RateLimit headers", () => {
  const response = rlsResponse({ overallCode: OVER_LIMIT, statuses: [status(10, MINUTE, 0, 3)] });
  assertEquals(decide(response, flags), {
    kind: "limited",
    status: 429,
    responseHeaders: {
      "x-ratelimit-limit": "10, 10;w=60",
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": "3",
      "x-envoy-ratelimited": "true",
    },
  });
});

Deno.test("decide adds the service's response_headers_to_add and request_headers_to_add", () => {
  const allowed = rlsResponse({
    overallCode: OK,
    responseHeadersToAdd: [headerValue("X-Quota", "a"), headerValue("x-quota", "b")],
    requestHeadersToAdd: [headerValue("x-tollgate-tier", "", new TextEncoder().encode("gold"))],
  });
  assertEquals(decide(allowed, { ...flags, enableXRateLimitHeaders: false }), {
    kind: "allow",
    responseHeaders: { "x-quota": "a, b" },
    requestHeaders: { "x-tollgate-tier": "gold" },
  });
  const limited = rlsResponse({
    overallCode: OVER_LIMIT,
    responseHeadersToAdd: [headerValue("retry-after", "30")],
    rawBody: new TextEncoder().encode("slow down"),
  });
  assertEquals(decide(limited, { ...flags, enableXRateLimitHeaders: false }), {
    kind: "limited",
    status: 429,
    responseHeaders: { "retry-after": "30", "x-envoy-ratelimited": "true" },
    body: new TextEncoder().encode("slow down"),
  });
});

Deno.test("decide leaves out X-RateLimit headers when they are disabled or no status has a current limit", () => {
  const withLimit = rlsResponse({ overallCode: OK, statuses: [status(10, MINUTE, 7, 42)] });
  assertEquals(decide(withLimit, { ...flags, enableXRateLimitHeaders: false }), {
    kind: "allow",
    responseHeaders: {},
    requestHeaders: {},
  });
  const noLimit = rlsResponse({ overallCode: OK, statuses: [{ code: OK, limitRemaining: 3 }] });
  assertEquals(decide(noLimit, flags), { kind: "allow", responseHeaders: {}, requestHeaders: {} });
});

Deno.test("decide treats an UNKNOWN overall code as under the limit, as Envoy does", () => {
  assertEquals(decide(rlsResponse({ overallCode: UNKNOWN }), flags).kind, "allow");
});

const errorCases = [
  { failureModeDeny: false, want: { kind: "allow", responseHeaders: {}, requestHeaders: {} } },
  { failureModeDeny: true, want: { kind: "error", status: 500 } },
] as const;

for (const c of errorCases) {
  Deno.test(`decide on a failed call with failureModeDeny ${c.failureModeDeny} answers ${c.want.kind}`, () => {
    assertEquals(decide(new RateLimitServiceError("Rate limit service call failed"), { ...flags, ...c }), c.want);
  });
}

const headerCases: Array<
  { name: string; statuses: RateLimitResponse_DescriptorStatus[]; want: Record<string, string> }
> = [
  {
    name: "one limit gives its quota policy",
    statuses: [status(100, HOUR, 99, 3599)],
    want: { "x-ratelimit-limit": "100, 100;w=3600", "x-ratelimit-remaining": "99", "x-ratelimit-reset": "3599" },
  },
  {
    name: "several limits report the window closest to its limit and list every policy with names",
    statuses: [status(1000, HOUR, 500, 1800), status(10, SECOND, 2, 1, "per-ip"), status(50, MINUTE, 2, 30)],
    want: {
      "x-ratelimit-limit": `10, 1000;w=3600, 10;w=1;name="per-ip", 50;w=60`,
      "x-ratelimit-remaining": "2",
      "x-ratelimit-reset": "1",
    },
  },
  {
    name: "statuses without current_limit are ignored",
    statuses: [{ code: OK, limitRemaining: 0 }, status(10, MINUTE, 4, 20)],
    want: { "x-ratelimit-limit": "10, 10;w=60", "x-ratelimit-remaining": "4", "x-ratelimit-reset": "20" },
  },
  {
    name: "a limit with an unknown unit has no policy entry but can still be the closest",
    statuses: [status(5, NO_UNIT, 1, 9), status(10, MINUTE, 4, 20)],
    want: { "x-ratelimit-limit": "5, 10;w=60", "x-ratelimit-remaining": "1", "x-ratelimit-reset": "9" },
  },
  {
    name: "a missing duration_until_reset reads as 0",
    statuses: [status(10, MINUTE, 4)],
    want: { "x-ratelimit-limit": "10, 10;w=60", "x-ratelimit-remaining": "4", "x-ratelimit-reset": "0" },
  },
  { name: "no statuses give no headers", statuses: [], want: {} },
];

for (const c of headerCases) {
  Deno.test(`xRateLimitHeaders: ${c.name}`, () => {
    assertEquals(xRateLimitHeaders(c.statuses), c.want);
  });
}

// RateLimitFilter against a real gRPC service

function filterConfig(target: string, more: Partial<RateLimitFilterConfig> = {}): RateLimitFilterConfig {
  return { domain: "tollgate", target, timeoutMs: 20, failureModeDeny: false, enableXRateLimitHeaders: true, ...more };
}

const route: RouteConfig = {
  name: "chat",
  match: { prefix: "/v1/", headers: [] },
  cluster: "openai",
  timeoutMs: 0,
  autoHostRewrite: false,
  rateLimits: [
    {
      applyOnStreamDone: false,
      actions: [
        { kind: "genericKey", descriptorKey: "route", descriptorValue: "chat" },
        { kind: "requestHeaders", headerName: "x-ai-model", descriptorKey: "model", skipIfAbsent: false },
      ],
    },
    {
      applyOnStreamDone: true,
      actions: [{ kind: "metadata", descriptorKey: "user", namespace: "io.tollgate", key: "user" }],
      hitsAddend: { metadata: { namespace: "io.tollgate", key: "total_tokens" } },
    },
  ],
};

const request: DescriptorContext = {
  headers: new Map([[":path", "/v1/chat/completions"], ["x-ai-model", "gpt-4o"]]),
  metadata: new Map([["io.tollgate", { user: "alice", total_tokens: 1234 }]]),
};

function startFilter(rls: FakeRls, more: Partial<RateLimitFilterConfig> = {}) {
  const clock = new ManualClock();
  const filter = new RateLimitFilter(filterConfig(rls.target, more), { clock, logger: silentLogger() });
  return { clock, filter, [Symbol.dispose]: () => filter.close() };
}

Deno.test("RateLimitFilter.check sends the domain and the request-time descriptors only", async () => {
  await using rls = await FakeRls.start();
  using f = startFilter(rls);
  const { filter } = f;
  assertEquals(await filter.check(route, request), { kind: "allow", responseHeaders: {}, requestHeaders: {} });
  assertEquals(rls.requests, [{
    domain: "tollgate",
    descriptors: [{ entries: [{ key: "route", value: "chat" }, { key: "model", value: "gpt-4o" }] }],
    hitsAddend: 0,
  }]);
});

Deno.test("RateLimitFilter.check does not call the service when no descriptor can be built", async () => {
  await using rls = await FakeRls.start();
  using f = startFilter(rls);
  const { filter } = f;
  const noModel = { ...request, headers: new Map([[":path", "/v1/chat/completions"]]) };
  assertEquals(await filter.check(route, noModel), { kind: "allow", responseHeaders: {}, requestHeaders: {} });
  assertEquals(await filter.check({ ...route, rateLimits: [] }, request), {
    kind: "allow",
    responseHeaders: {},
    requestHeaders: {},
  });
  assertEquals(rls.requests.length, 0);
});

Deno.test("RateLimitFilter.check answers 429 with the X-RateLimit headers when the service says OVER_LIMIT", async () => {
  await using rls = await FakeRls.start(() =>
    rlsResponse({
      overallCode: OVER_LIMIT,
      statuses: [status(10, MINUTE, 0, 12)],
      responseHeadersToAdd: [headerValue("x-tollgate-limit", "requests")],
    })
  );
  using f = startFilter(rls);
  const { filter } = f;
  assertEquals(await filter.check(route, request), {
    kind: "limited",
    status: 429,
    responseHeaders: {
      "x-ratelimit-limit": "10, 10;w=60",
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": "12",
      "x-tollgate-limit": "requests",
      "x-envoy-ratelimited": "true",
    },
  });
});

for (const c of errorCases) {
  Deno.test(`RateLimitFilter.check cancels a call that outlives timeoutMs and answers ${c.want.kind} when failureModeDeny is ${c.failureModeDeny}`, async () => {
    await using rls = await FakeRls.start();
    rls.hold();
    using f = startFilter(rls, { failureModeDeny: c.failureModeDeny, timeoutMs: 25 });
    const { clock, filter } = f;
    const decision = filter.check(route, request);
    await rls.received(1);
    clock.advance(24);
    assertEquals(clock.pendingTimers, 1);
    clock.advance(1);
    assertEquals(await decision, c.want);
    await rls.cancelled(1);
    assertEquals(clock.pendingTimers, 0);
  });

  Deno.test(`RateLimitFilter.check answers ${c.want.kind} on a gRPC error when failureModeDeny is ${c.failureModeDeny}`, async () => {
    await using rls = await FakeRls.start();
    rls.failWith(grpc.status.UNAVAILABLE);
    using f = startFilter(rls, { failureModeDeny: c.failureModeDeny });
    const { clock, filter } = f;
    assertEquals(await filter.check(route, request), c.want);
    assertEquals(clock.pendingTimers, 0);
  });
}

Deno.test("RateLimitFilter.check answers 500 with failureModeDeny when nothing listens at the target", async () => {
  const rls = await FakeRls.start();
  const target = rls.target;
  await rls[Symbol.asyncDispose]();
  const clock = new ManualClock();
  using deny = new RateLimitFilter(filterConfig(target, { failureModeDeny: true }), { clock, logger: silentLogger() });
  assertEquals(await deny.check(route, request), { kind: "error", status: 500 });
});

Deno.test("RateLimitFilter.applyOnStreamDone sends hits_addend from metadata and ignores an OVER_LIMIT answer", async () => {
  await using rls = await FakeRls.start(() => rlsResponse({ overallCode: OVER_LIMIT }));
  using f = startFilter(rls, { failureModeDeny: true });
  const { clock, filter } = f;
  assertEquals(await filter.applyOnStreamDone(route, request), undefined);
  assertEquals(rls.requests, [{
    domain: "tollgate",
    descriptors: [{ entries: [{ key: "user", value: "alice" }], hitsAddend: 1234 }],
    hitsAddend: 0,
  }]);
  assertEquals(clock.pendingTimers, 0);
});

Deno.test("RateLimitFilter.applyOnStreamDone skips the call when the hits addend is missing from metadata", async () => {
  await using rls = await FakeRls.start();
  using f = startFilter(rls);
  const { filter } = f;
  await filter.applyOnStreamDone(route, { ...request, metadata: new Map([["io.tollgate", { user: "alice" }]]) });
  assertEquals(rls.requests.length, 0);
});

Deno.test("RateLimitFilter.applyOnStreamDone never throws when the service fails or times out", async () => {
  await using rls = await FakeRls.start();
  using f = startFilter(rls, { failureModeDeny: true });
  const { clock, filter } = f;
  rls.failWith(grpc.status.INTERNAL);
  await filter.applyOnStreamDone(route, request);
  rls.hold();
  const done = filter.applyOnStreamDone(route, request);
  await rls.received(2);
  clock.advance(20);
  assertEquals(await done, undefined);
  assert(rls.requests.every((r) => r.descriptors[0]?.hitsAddend === 1234));
});
