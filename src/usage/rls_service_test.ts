// Each semantic below is written from envoyproxy/ratelimit's documented behaviour (README examples, rls.proto) and
// the code it cites; the one Tollgate difference (check-only crossing) is marked.
import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { rateLimitServiceDefinition } from "../edge/rate_limit_filter.ts";
import { silentLogger } from "../observability/logger.ts";
import type { RlsDescriptor, RlsRequest } from "../edge/rate_limit_descriptors.ts";
import {
  type RateLimitResponse,
  RateLimitResponse_Code,
  RateLimitResponse_RateLimit_Unit as Unit,
  RateLimitServiceClient,
} from "../protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import { RateLimitUnit } from "../protocol/gen/envoy/type/v3/ratelimit_unit.ts";
import { CounterStore } from "./counter_store.ts";
import { type RateLimitRules } from "./rate_limit_rules.ts";
import { parseRlsConfig } from "./rls_config.ts";
import {
  type AppliedHit,
  decideRateLimit,
  DEFAULT_RATE_LIMIT_HEADERS,
  hitStats,
  RlsRequestError,
  RlsServer,
  type RlsServerOptions,
} from "./rls_service.ts";
import type { WindowOptions } from "./windows.ts";

const { OK, OVER_LIMIT } = RateLimitResponse_Code;
const MAX_UINT32 = 4_294_967_295;
const T0 = Date.parse("2024-03-10T12:34:56.250Z");
const TESTDATA = new URL("../../testdata/ratelimit/", import.meta.url);

async function rulesFrom(names: string[], windows: WindowOptions = {}): Promise<RateLimitRules> {
  const files = await Promise.all(
    names.map(async (n) => ({ file: n, text: await Deno.readTextFile(new URL(`${n}.yaml`, TESTDATA)) })),
  );
  const result = parseRlsConfig(files, { windows });
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.rules;
}

const RULES = await rulesFrom(["messaging", "per_ip", "internal", "replaces", "every_unit", "depth"]);

type D = { entries: [string, string][]; hits?: number; limit?: RlsDescriptor["limit"] };
const request = (domain: string, descriptors: D[], hitsAddend = 0): RlsRequest => ({
  domain,
  hitsAddend,
  descriptors: descriptors.map((d) => ({
    entries: d.entries.map(([key, value]) => ({ key, value })),
    ...(d.hits === undefined ? {} : { hitsAddend: d.hits }),
    ...(d.limit ? { limit: d.limit } : {}),
  })),
});
const ip = (address: string, hits?: number): D => ({
  entries: [["remote_address", address]],
  ...(hits === undefined ? {} : { hits }),
});

/** [code, requests_per_unit or null, limit_remaining] per status, after the overall code. */
function summary(r: RateLimitResponse): [RateLimitResponse_Code, ...[RateLimitResponse_Code, number | null, number][]] {
  return [
    r.overallCode,
    ...r.statuses.map((s) =>
      [s.code, s.currentLimit?.requestsPerUnit ?? null, s.limitRemaining] as [
        RateLimitResponse_Code,
        number | null,
        number,
      ]
    ),
  ];
}

function run(requests: RlsRequest[], rules = RULES, store = new CounterStore()): RateLimitResponse {
  let last: RateLimitResponse | undefined;
  for (const r of requests) last = decideRateLimit(r, rules, store, T0, { applyHits: true });
  return last!;
}

const repeat = <T>(n: number, x: T): T[] => Array.from({ length: n }, () => x);

const cases: Array<{ name: string; requests: RlsRequest[]; want: ReturnType<typeof summary> }> = [
  {
    name: "a request-level hits_addend of 0 counts one hit",
    requests: [request("per_ip", [ip("192.0.2.1")])],
    want: [OK, [OK, 10, 9]],
  },
  {
    name: "a request-level hits_addend of n counts n hits",
    requests: [request("per_ip", [ip("192.0.2.1")], 4)],
    want: [OK, [OK, 10, 6]],
  },
  {
    name: "a descriptor's own hits_addend overrides the request's",
    requests: [request("per_ip", [ip("192.0.2.1", 1), ip("192.0.2.2")], 7)],
    want: [OK, [OK, 10, 9], [OK, 10, 3]],
  },
  {
    name: "a descriptor hits_addend of 0 only checks and adds nothing",
    requests: [request("per_ip", [ip("192.0.2.1", 0)]), request("per_ip", [ip("192.0.2.1", 0)])],
    want: [OK, [OK, 10, 10]],
  },
  {
    name: "OVER_LIMIT once current + hits passes the limit, with limit_remaining 0",
    requests: [request("per_ip", [ip("192.0.2.1")], 8), request("per_ip", [ip("192.0.2.1")], 3)],
    want: [OVER_LIMIT, [OVER_LIMIT, 10, 0]],
  },
  {
    name: "reaching the limit exactly is still OK",
    requests: [request("per_ip", [ip("192.0.2.1")], 10)],
    want: [OK, [OK, 10, 0]],
  },
  {
    name: "each value of a value-less key has its own counter",
    requests: [request("per_ip", [ip("192.0.2.1")], 10), request("per_ip", [ip("192.0.2.1"), ip("192.0.2.2")])],
    want: [OVER_LIMIT, [OVER_LIMIT, 10, 0], [OK, 10, 9]],
  },
  {
    name: "the most specific match applies: a limit of 0 blocks that address",
    requests: [request("per_ip", [ip("192.0.2.66")])],
    want: [OVER_LIMIT, [OVER_LIMIT, 0, 0]],
  },
  {
    name: "statuses follow the request's order, unmatched descriptors answer OK without a limit",
    requests: [request("messaging", [
      { entries: [["sender", "x"]] },
      { entries: [["message_type", "marketing"], ["to_number", "1"]] },
      { entries: [["to_number", "1"]] },
    ])],
    want: [OK, [OK, null, 0], [OK, 5, 4], [OK, 100, 99]],
  },
  {
    name: "an unlimited descriptor answers OK with no limit and limit_remaining 2^32-1",
    requests: [request("internal", [{ entries: [["ldap", "cn=x"]] }], 1000)],
    want: [OK, [OK, null, MAX_UINT32]],
  },
  {
    name: "shadow_mode reports the breach in its status but never makes the answer OVER_LIMIT",
    requests: repeat(3, request("internal", [{ entries: [["service", "auth"], ["user", "trial"]] }])),
    want: [OK, [OK, 2, 0]],
  },
  {
    name: "a limit without shadow_mode next to it still limits",
    requests: repeat(3, request("internal", [{ entries: [["service", "auth"], ["user", "paying"]] }])),
    want: [OVER_LIMIT, [OVER_LIMIT, 2, 0]],
  },
  {
    name: "one over-limit descriptor makes the whole answer OVER_LIMIT",
    requests: [request("per_ip", [ip("192.0.2.1"), ip("192.0.2.66"), ip("192.0.2.3")])],
    want: [OVER_LIMIT, [OK, 10, 9], [OVER_LIMIT, 0, 0], [OK, 10, 9]],
  },
  {
    name: "a replaced limit is neither checked nor reported when its replacement matches in the same request",
    requests: repeat(
      3,
      request("replaces", [
        { entries: [["api", "read"], ["user", "alice"]] },
        { entries: [["endpoint", "search"], ["user", "alice"]] },
      ]),
    ),
    want: [OK, [OK, null, 0], [OK, 4, 1]],
  },
  {
    name: "a replaced limit still applies on its own (and was not counted while replaced)",
    requests: [
      ...repeat(
        3,
        request("replaces", [
          { entries: [["api", "read"], ["user", "alice"]] },
          { entries: [["endpoint", "search"], ["user", "alice"]] },
        ]),
      ),
      request("replaces", [{ entries: [["api", "read"], ["user", "alice"]] }]),
    ],
    want: [OK, [OK, 2, 1]],
  },
  {
    name: "a limit override in the descriptor replaces the configured limit",
    requests: [request("per_ip", [{ ...ip("192.0.2.1"), limit: { requestsPerUnit: 3, unit: RateLimitUnit.HOUR } }], 3)],
    want: [OK, [OK, 3, 0]],
  },
  {
    name: "a domain the config does not know limits nothing",
    requests: [request("unknown", [ip("192.0.2.1")])],
    want: [OK, [OK, null, 0]],
  },
  {
    name: "hits still count when another descriptor is over the limit, as in envoyproxy/ratelimit",
    requests: [request("per_ip", [ip("192.0.2.66"), ip("192.0.2.1")], 4), request("per_ip", [ip("192.0.2.1")])],
    want: [OK, [OK, 10, 5]],
  },
];

for (const c of cases) {
  Deno.test(`decideRateLimit: ${c.name}`, () => assertEquals(summary(run(c.requests)), c.want));
}

// Tollgate's deliberate difference: envoyproxy/ratelimit answers OVER_LIMIT to a check-only descriptor only when
// current > limit, which lets requests through after a token budget is spent exactly.
const crossingCases: Array<{ spent: number; hits: number; want: [RateLimitResponse_Code, number] }> = [
  { spent: 9, hits: 0, want: [OK, 1] },
  { spent: 10, hits: 0, want: [OVER_LIMIT, 0] },
  { spent: 11, hits: 0, want: [OVER_LIMIT, 0] },
  { spent: 9, hits: 1, want: [OK, 0] },
  { spent: 10, hits: 1, want: [OVER_LIMIT, 0] },
];

for (const c of crossingCases) {
  Deno.test(`decideRateLimit with ${c.spent} of 10 spent and ${c.hits} hits answers ${RateLimitResponse_Code[c.want[0]]}`, () => {
    const store = new CounterStore();
    run([request("per_ip", [ip("192.0.2.1", c.spent)])], RULES, store);
    const r = run([request("per_ip", [ip("192.0.2.1", c.hits)])], RULES, store);
    assertEquals([r.statuses[0]!.code, r.statuses[0]!.limitRemaining], c.want);
  });
}

Deno.test("decideRateLimit gives duration_until_reset in whole seconds to the window's end, rounded up", () => {
  const at = (nowMs: number, unit: string) =>
    decideRateLimit(request("every_unit", [{ entries: [["unit", unit]] }]), RULES, new CounterStore(), nowMs, {
      applyHits: false,
    }).statuses[0]!;
  assertEquals(at(T0, "minute").durationUntilReset, { seconds: 4, nanos: 0 });
  assertEquals(at(Date.parse("2024-03-10T12:34:00Z"), "minute").durationUntilReset, { seconds: 60, nanos: 0 });
  assertEquals(at(T0, "week").currentLimit?.unit, 7 as Unit);
  assertEquals(at(T0, "month").currentLimit, { name: "monthly", requestsPerUnit: 1, unit: Unit.MONTH });
});

Deno.test("decideRateLimit starts a fresh counter in the next window", () => {
  const store = new CounterStore();
  const minute = (nowMs: number) =>
    decideRateLimit(request("every_unit", [{ entries: [["unit", "minute"]] }]), RULES, store, nowMs, {
      applyHits: true,
    });
  assertEquals(minute(T0).overallCode, OK);
  assertEquals(minute(T0 + 1000).overallCode, OVER_LIMIT);
  assertEquals(minute(Date.parse("2024-03-10T12:35:00Z")).overallCode, OK);
});

Deno.test("decideRateLimit uses calendar windows when the rules ask for them", async () => {
  const rules = await rulesFrom(["every_unit"], { calendar: { timeZone: "Europe/Paris" } });
  const r = decideRateLimit(request("every_unit", [{ entries: [["unit", "month"]] }]), rules, new CounterStore(), T0, {
    applyHits: false,
  });
  // 2024-03-10T12:34:56.250Z to 2024-03-31T22:00:00Z (April 1st, Paris midnight).
  assertEquals(r.statuses[0]!.durationUntilReset?.seconds, 1_848_304);
});

Deno.test("decideRateLimit in a dry run leaves the store alone but counts repeated descriptors of the request", () => {
  const store = new CounterStore();
  const r = decideRateLimit(request("per_ip", [ip("192.0.2.1"), ip("192.0.2.1")], 6), RULES, store, T0, {
    applyHits: false,
  });
  assertEquals(summary(r), [OVER_LIMIT, [OK, 10, 4], [OVER_LIMIT, 10, 0]]);
  assertEquals(store.size, 0);
});

Deno.test("decideRateLimit reports every hit it adds, with the window of the event time", () => {
  const hits: AppliedHit[] = [];
  const store = new CounterStore();
  decideRateLimit(request("per_ip", [ip("192.0.2.1", 2), ip("192.0.2.2", 0), ip("192.0.2.66")]), RULES, store, T0, {
    applyHits: true,
    onHit: (h) => hits.push(h),
  });
  const second = Math.floor(T0 / 1000) * 1000;
  assertEquals(hits, [
    {
      domain: "per_ip",
      counterKey: "per_ip|remote_address=192.0.2.1",
      windowId: `${second}/${second + 1000}`,
      n: 2,
      eventTimeMs: T0,
    },
    {
      domain: "per_ip",
      counterKey: "per_ip|remote_address=192.0.2.66",
      windowId: `${second}/${second + 1000}`,
      n: 1,
      eventTimeMs: T0,
    },
  ]);
  assertEquals(store.get(`per_ip|remote_address=192.0.2.1#${second}/${second + 1000}`), 2);
});

Deno.test("decideRateLimit adds RateLimit headers of the descriptor closest to its limit when asked", () => {
  const r = decideRateLimit(
    request("per_ip", [ip("192.0.2.1", 2), ip("192.0.2.2", 7)]),
    RULES,
    new CounterStore(),
    T0,
    {
      applyHits: true,
      rateLimitHeaders: DEFAULT_RATE_LIMIT_HEADERS,
    },
  );
  assertEquals(r.responseHeadersToAdd.map((h) => [h.key, h.value]), [
    ["RateLimit-Limit", "10"],
    ["RateLimit-Remaining", "3"],
    ["RateLimit-Reset", "1"],
  ]);
});

Deno.test("decideRateLimit refuses a request without domain or descriptors", () => {
  for (const bad of [request("", [ip("192.0.2.1")]), request("per_ip", [])]) {
    let error: unknown;
    try {
      decideRateLimit(bad, RULES, new CounterStore(), T0, { applyHits: true });
    } catch (err) {
      error = err;
    }
    assert(error instanceof RlsRequestError);
  }
});

Deno.test("hitStats splits hits as envoyproxy/ratelimit's statistics do (near limit from 80%)", () => {
  assertEquals(hitStats(10, 0, 5), { withinLimit: 5, nearLimit: 0, overLimit: 0 });
  assertEquals(hitStats(10, 6, 9), { withinLimit: 3, nearLimit: 1, overLimit: 0 });
  assertEquals(hitStats(10, 9, 12), { withinLimit: 0, nearLimit: 1, overLimit: 2 });
  assertEquals(hitStats(10, 10, 13), { withinLimit: 0, nearLimit: 0, overLimit: 3 });
});

// The server, through real gRPC clients: the one built on rateLimitServiceDefinition (the per-descriptor hits_addend
// codec Envoy's filter uses in the edge) and ts-proto's generated RateLimitServiceClient.

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

async function startServer(more: Partial<RlsServerOptions> = {}): Promise<RlsServer & { target: string }> {
  const server = await RlsServer.start({
    listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
    rules: RULES,
    logger: silentLogger(),
    now: () => T0,
    ...more,
  });
  const target = server.address!.kind === "tcp" ? `127.0.0.1:${server.address!.port}` : "";
  return Object.assign(server, { target });
}

Deno.test("RlsServer answers ShouldRateLimit over gRPC, reading per-descriptor hits_addend from the wire", async () => {
  const hits: unknown[][] = [];
  await using server = await startServer({ onHits: (...args) => hits.push(args) });
  assertEquals(summary(await callRls(server.target, request("per_ip", [ip("192.0.2.1", 0)]))), [OK, [OK, 10, 10]]);
  assertEquals(summary(await callRls(server.target, request("per_ip", [ip("192.0.2.1", 10)]))), [OK, [OK, 10, 0]]);
  assertEquals(summary(await callRls(server.target, request("per_ip", [ip("192.0.2.1", 0)]))), [OVER_LIMIT, [
    OVER_LIMIT,
    10,
    0,
  ]]);
  const second = Math.floor(T0 / 1000) * 1000;
  assertEquals(hits, [["per_ip", "per_ip|remote_address=192.0.2.1", `${second}/${second + 1000}`, 10, T0]]);
});

Deno.test("RlsServer serves the generated RateLimitServiceClient too, with the request-level hits_addend", async () => {
  await using server = await startServer();
  const client = new RateLimitServiceClient(server.target, grpc.credentials.createInsecure());
  const response = await new Promise<RateLimitResponse>((resolve, reject) =>
    client.shouldRateLimit(request("per_ip", [ip("192.0.2.9")], 4), (err, res) => (err ? reject(err) : resolve(res)))
  );
  client.close();
  assertEquals(summary(response), [OK, [OK, 10, 6]]);
});

Deno.test("RlsServer tells the time from its injected clock", async () => {
  let now = T0;
  await using server = await startServer({ now: () => now });
  const minute = request("every_unit", [{ entries: [["unit", "minute"]] }]);
  assertEquals((await callRls(server.target, minute)).overallCode, OK);
  assertEquals((await callRls(server.target, minute)).overallCode, OVER_LIMIT);
  now = Date.parse("2024-03-10T12:35:00Z");
  assertEquals((await callRls(server.target, minute)).overallCode, OK);
});

Deno.test("RlsServer keeps its rules when a new config has errors, and swaps them when it has none", async () => {
  await using server = await startServer();
  const broken = parseRlsConfig([{ file: "broken.yaml", text: "domain: per_ip\ndescriptors: [{ key: x, burst: 1 }]" }]);
  assertEquals(server.setRules(broken).map((e) => e.message), ['Unknown field "burst"']);
  assertEquals(summary(await callRls(server.target, request("per_ip", [ip("192.0.2.1")]))), [OK, [OK, 10, 9]]);
  const stricter = parseRlsConfig([{
    file: "new.yaml",
    text: "domain: per_ip\ndescriptors: [{ key: remote_address, rate_limit: { unit: second, requests_per_unit: 1 } }]",
  }]);
  assertEquals(server.setRules(stricter), []);
  assertEquals(summary(await callRls(server.target, request("per_ip", [ip("192.0.2.1")]))), [OVER_LIMIT, [
    OVER_LIMIT,
    1,
    0,
  ]]);
});

Deno.test("RlsServer answers INVALID_ARGUMENT to a request without domain", async () => {
  await using server = await startServer();
  const error = await callRls(server.target, request("", [ip("192.0.2.1")])).catch((err: unknown) => err);
  assertEquals((error as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);
});

Deno.test("RlsServer listens on a Unix socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/rls.sock`;
  {
    await using _server = await startServer({ listen: { kind: "unix", path } });
    assertEquals(summary(await callRls(`unix://${path}`, request("per_ip", [ip("192.0.2.1")]))), [OK, [OK, 10, 9]]);
  }
  await Deno.remove(dir, { recursive: true });
});
