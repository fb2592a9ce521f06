// The dashboard's data without a browser: `tollgate aggregator` on a real nats-server folds usage events published to
// JetStream and answers rate-limit checks; its admin port serves the page and /dashboard/data with the headroom of
// each descriptor's counter, the traffic it folded and the tenants behind it. Then the admin server's routing itself.
import * as grpc from "@grpc/grpc-js";
import { connect } from "nats";
import { Registry } from "prom-client";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { spawnTollgate } from "./support/process.ts";
import { rateLimitServiceDefinition } from "../src/edge/rate_limit_filter.ts";
import type { RlsRequest } from "../src/edge/rate_limit_descriptors.ts";
import type { RateLimitResponse } from "../src/protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import {
  encodeUsageEvent,
  type UsageEvent,
  usageEventId,
  usageEventSubject,
  usageEventTime,
} from "../src/usage/usage_event.ts";
import { startAdmin } from "../src/admin/server.ts";
import { Dashboard, type DashboardData } from "../src/observability/dashboard/dashboard_routes.ts";

const RULES = `domain: tokens
descriptors:
  - key: tenant
    rate_limit: { unit: hour, requests_per_unit: 1000 }
---
domain: requests
descriptors:
  - key: tenant
    rate_limit: { unit: hour, requests_per_unit: 3 }
`;

function tokenEvent(tenant: string, tokens: number, status = 200): UsageEvent {
  const now = Date.now();
  return {
    v: 1,
    id: usageEventId(now),
    time: usageEventTime(now),
    route: "default/chat",
    backend: "default/openai",
    models: { requested: "gpt-4o-mini" },
    tokens: { inputTokens: tokens - 10, outputTokens: 10, totalTokens: tokens },
    costs: status === 200 ? { llm_total_token: tokens } : {},
    descriptors: [{ domain: "tokens", entries: [{ key: "tenant", value: tenant }], hitsAddendFrom: "llm_total_token" }],
    status,
    latencyMs: 120,
    stream: false,
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

Deno.test("tollgate aggregator's dashboard data shows the headroom per descriptor, the folded traffic and the top tenants", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  const rulesDir = await Deno.makeTempDir({ prefix: "tollgate-dashboard-" });
  await Deno.writeTextFile(`${rulesDir}/rules.yaml`, RULES);
  // Every count lands in the current hour's window: keep clear of an hour boundary.
  const toNextHour = 3_600_000 - (Date.now() % 3_600_000);
  if (toNextHour < 15_000) await new Promise((r) => setTimeout(r, toNextHour + 100));
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
    "dash-1",
    "--snapshot-interval",
    "3600",
  ]);
  await using _ = p;
  const listening = await p.waitForLog("Rate limit service listening");
  const admin = `http://${listening.admin}`;
  await pollUntil("/readyz to answer 200", async () => (await fetch(`${admin}/readyz`)).status === 200 || undefined);

  const nc = await connect({ servers: ns.url });
  try {
    const js = nc.jetstream();
    const events = [
      tokenEvent("acme", 400),
      tokenEvent("acme", 450),
      tokenEvent("globex", 100),
      tokenEvent("initech", 20, 502), // an error: counted as traffic, costs nothing
    ];
    for (const e of events) {
      await js.publish(usageEventSubject("tollgate.usage", e), encodeUsageEvent(e), { msgID: e.id });
    }
  } finally {
    await nc.close();
  }
  // Request-time hits the rate limit service adds itself (a request-count rule).
  for (let i = 0; i < 2; i++) {
    await callRls(String(listening.address), {
      domain: "requests",
      hitsAddend: 0,
      descriptors: [{ entries: [{ key: "tenant", value: "acme" }] }],
    });
  }

  const data = await pollUntil("the four usage events on the dashboard", async () => {
    const d = await (await fetch(`${admin}/dashboard/data?minutes=5`)).json() as DashboardData;
    return d.traffic.totals.requests === 4 ? d : undefined;
  }, { timeoutMs: 15_000 });
  assertEquals(data.role, "aggregator");
  assertEquals(data.info.replica, "dash-1");
  assertEquals(data.info.ready, "yes");
  const h = data.headroom!;
  assertEquals(h.limitedRules, 2);
  assertEquals([...h.domains].sort(), ["requests", "tokens"]);
  assertEquals(
    h.top.map((c) => [c.domain, c.descriptor, c.used, c.limit, c.remaining, c.unit]),
    [
      ["tokens", "tenant=acme", 850, 1000, 150, "hour"],
      ["requests", "tenant=acme", 2, 3, 1, "hour"],
      ["tokens", "tenant=globex", 100, 1000, 900, "hour"],
    ],
  );
  assert(h.top[0]!.windowEnd > data.now && h.top[0]!.windowEnd <= data.now + 3_600_000);

  const t = data.traffic;
  assertEquals([t.range.requests, t.range.tokens, t.range.errors], [4, 970, 1]);
  assertEquals(t.series.route.map((s) => [s.label, s.requests]), [["default/chat", 4]]);
  assertEquals(t.series.tenant.map((s) => [s.label, s.tokens]), [["acme", 850], ["globex", 100], ["initech", 20]]);
  assertEquals(data.tenantSource, "tenant");
  assertEquals(t.statusSource, "usage");
  assertEquals(t.errorTypes, [{ label: "HTTP 502", count: 1 }]);

  const page = await fetch(`${admin}/`);
  assertEquals(page.status, 200);
  assertMatch(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
  const html = await page.text();
  assertMatch(html, /<title>Tollgate · aggregator<\/title>/);
  assert(!/(src|href)="https?:/.test(html), "the page loads nothing from elsewhere");
  assertEquals(await fetch(`${admin}/dashboard`).then(async (r) => [r.status, (await r.text()).length]), [
    200,
    html.length,
  ]);
  p.child.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
  await Deno.remove(rulesDir, { recursive: true });
});

Deno.test("the admin port serves the dashboard only when given one, and keeps its other paths", async () => {
  const registry = new Registry();
  await using plain = await startAdmin({
    listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
    registry,
    notReadyReason: () => null,
  });
  const base = `http://127.0.0.1:${plain.address.port}`;
  assertEquals(await fetch(`${base}/`).then(async (r) => [r.status, await r.text()]), [
    404,
    "Not found: try /metrics, /healthz or /readyz\n",
  ]);
  await (await fetch(`${base}/dashboard/data`)).body?.cancel();

  const dashboard = new Dashboard({ role: "run", configRevision: () => 7 });
  await using withPage = await startAdmin({
    listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
    registry,
    notReadyReason: () => null,
    dashboard,
  });
  const url = `http://127.0.0.1:${withPage.address.port}`;
  const head = await fetch(`${url}/`, { method: "HEAD" });
  assertEquals([head.status, head.headers.get("content-type")], [200, "text/html; charset=utf-8"]);
  const d = await (await fetch(`${url}/dashboard/data`)).json() as DashboardData;
  assertEquals([d.role, d.config.revision, d.headroom, d.traffic.times.length], ["run", 7, null, 180]);
  assertEquals(
    (await fetch(`${url}/dashboard/data?minutes=5`).then((r) => r.json()) as DashboardData).traffic.times.length,
    30,
  );
  assertEquals(await fetch(`${url}/healthz`).then((r) => r.text()), "ok\n");
  assertEquals(await fetch(`${url}/dashboard`, { method: "POST" }).then(async (r) => [r.status, await r.text()]), [
    405,
    "Method not allowed\n",
  ]);
});
