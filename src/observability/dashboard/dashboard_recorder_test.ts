import { assert, assertEquals } from "../../../test/support/assert.ts";
import { DashboardRecorder, OTHER, percentile } from "./dashboard_recorder.ts";
import { LabelTable } from "./label_table.ts";
import { type UsageEvent, usageEventId, usageEventTime } from "../../usage/usage_event.ts";

const BUCKET = 10_000;
/** A bucket boundary plus 5 s, so "now" sits in the middle of a bucket. */
const T = Math.floor(Date.UTC(2026, 0, 1, 12) / BUCKET) * BUCKET + 5_000;

function event(at: number, o: Partial<UsageEvent> & { input?: number; output?: number } = {}): UsageEvent {
  const { input, output, ...rest } = o;
  return {
    v: 1,
    id: usageEventId(at),
    time: usageEventTime(at),
    route: "default/chat",
    backend: "default/openai",
    models: { requested: "gpt-4o-mini" },
    tokens: { inputTokens: input ?? 3, outputTokens: output ?? 2 },
    costs: {},
    descriptors: [],
    status: 200,
    latencyMs: 40,
    stream: false,
    ...rest,
  };
}

function clock(start: number) {
  const c = { now: start };
  return { c, now: () => c.now };
}

Deno.test("DashboardRecorder counts each event in the 10-second bucket of its own time", () => {
  const { now } = clock(T);
  const r = new DashboardRecorder({ now });
  r.recordUsage(event(T));
  r.recordUsage(event(T - 4_000)); // same bucket
  r.recordUsage(event(T - 6_000)); // the bucket before
  r.recordUsage(event(T - 29 * 60_000)); // still inside the 30 minutes
  r.recordUsage(event(T - 31 * 60_000)); // too old: in the totals, in no bucket
  r.recordUsage(event(T + 60_000)); // ahead of the clock: counted now
  const v = r.view();
  assertEquals(v.times.length, 180);
  assertEquals(v.times.at(-1), T - 5_000);
  assertEquals(v.requests.at(-1), 3);
  assertEquals(v.requests.at(-2), 1);
  assertEquals(v.requests.reduce((a, b) => a + b), 5);
  assertEquals(v.range.requests, 5);
  assertEquals(v.range.tokens, 25);
  assertEquals(r.totals.requests, 6);
  assertEquals(r.totals.late, 1);
  const last5 = r.view({ rangeMs: 5 * 60_000 });
  assertEquals(last5.times.length, 30);
  assertEquals(last5.range.requests, 4, "the event 29 minutes ago is outside the last 5");
});

Deno.test("DashboardRecorder reuses a bucket's slot once the ring comes round, dropping what it held", () => {
  const { c, now } = clock(T);
  const r = new DashboardRecorder({ now, windowMs: 60_000 });
  r.recordUsage(event(T, { route: "default/old" }));
  c.now = T + 60_000; // the same slot, one lap later
  r.recordUsage(event(c.now, { route: "default/new" }));
  const v = r.view();
  assertEquals(v.times.length, 6);
  assertEquals(v.range.requests, 1);
  assertEquals(v.series.route.map((s) => s.label), ["default/new"]);
  // An event for the lapped bucket arriving late is too old for the window.
  r.recordUsage(event(T, { route: "default/old" }));
  assertEquals(r.view().range.requests, 1);
  assertEquals(r.totals.late, 1);
});

Deno.test("DashboardRecorder ranks the top labels per dimension and puts the rest in other, keeping totals exact", () => {
  const { now } = clock(T);
  const r = new DashboardRecorder({ now });
  // route-i gets i + 1 requests; spread over two buckets.
  for (let i = 0; i < 10; i++) {
    for (let n = 0; n <= i; n++) r.recordUsage(event(T - (n % 2) * BUCKET, { route: `default/route-${i}` }));
  }
  const v = r.view({ top: 3 });
  assertEquals(v.series.route.map((s) => [s.label, s.requests]), [
    ["default/route-9", 10],
    ["default/route-8", 9],
    ["default/route-7", 8],
    [OTHER, 55 - 27],
  ]);
  for (let i = 0; i < v.times.length; i++) {
    const stacked = v.series.route.reduce((s, x) => s + x.requestsSeries[i]!, 0);
    assertEquals(stacked, v.requests[i], `bucket ${i}: the stacked series add up to the bucket's requests`);
  }
  assertEquals(v.series.model.map((s) => [s.label, s.requests, s.tokens]), [["gpt-4o-mini", 55, 275]]);
});

Deno.test("DashboardRecorder ranks tenants by tokens and leaves requests without a tenant out of them", () => {
  const { now } = clock(T);
  const r = new DashboardRecorder({ now, tenantOf: (e) => e.tenant });
  r.recordUsage(event(T, { tenant: "acme", input: 1000, output: 0 }));
  r.recordUsage(event(T, { tenant: "globex", input: 1, output: 1 }));
  r.recordUsage(event(T, { tenant: "globex", input: 1, output: 1 }));
  r.recordUsage(event(T));
  const v = r.view();
  assertEquals(v.series.tenant.map((s) => [s.label, s.requests, s.tokens]), [["acme", 1, 1000], ["globex", 2, 4]]);
  assertEquals(v.range.requests, 4);
});

Deno.test("DashboardRecorder keeps memory bounded: 10,000 distinct tenants a bucket hold at most the table size", () => {
  const { c, now } = clock(T);
  const r = new DashboardRecorder({ now, windowMs: 60_000, labelsPerBucket: 8 });
  let tokens = 0;
  for (let b = 0; b < 12; b++) { // two laps of the 6-bucket ring
    c.now = T + b * BUCKET;
    for (let i = 0; i < 10_000; i++) {
      // A heavy tenant comes back every 100 events; the rest are seen once.
      const tenant = i % 100 === 0 ? "heavy" : `t-${b}-${i}`;
      const input = tenant === "heavy" ? 50 : 1;
      tokens += input + 2;
      r.recordUsage(event(c.now, { tenant, input, route: `default/r-${i}`, models: { requested: `m-${i}` } }));
    }
  }
  // 6 buckets × 5 tables (route, model, backend, tenant, error types) × (8 labels + other).
  assert(r.cells <= 6 * 5 * 9, `cells: ${r.cells}`);
  const v = r.view({ top: 3 });
  assertEquals(v.range.requests, 60_000);
  assertEquals(v.series.tenant.reduce((s, x) => s + x.tokens, 0), v.range.tokens);
  assertEquals(v.series.tenant[0]!.label, "heavy", "a label that keeps coming back keeps its own row");
  assertEquals(v.series.tenant[0]!.requests, 600);
  assertEquals(r.totals.tokens, tokens);
});

Deno.test("LabelTable evicts its smallest label into other when full", () => {
  const t = new LabelTable(2);
  const add = (label: string, tokens: number) =>
    t.add(label, { requests: 1, tokens, inputTokens: tokens, outputTokens: 0, errors: 0 });
  add("a", 10);
  add("b", 1);
  add("c", 5); // evicts b
  add("a", 10);
  assertEquals([...t.entries()].map(([l, c]) => [l, c.requests, c.tokens]), [["a", 2, 20], ["c", 1, 5], [
    "other",
    1,
    1,
  ]]);
  assertEquals(t.size, 3);
  assertEquals(t.total().tokens, 26);
});

Deno.test("DashboardRecorder takes status classes and error types from the edge once it feeds responses", () => {
  const { now } = clock(T);
  const r = new DashboardRecorder({ now });
  r.recordUsage(event(T, { status: 503 }));
  let v = r.view();
  assertEquals(v.statusSource, "usage");
  assertEquals(v.statusClasses["5xx"].at(-1), 1);
  assertEquals(v.errorTypes, [{ label: "HTTP 503", count: 1 }]);
  r.recordResponse({ status: 200, details: "via_upstream" });
  r.recordResponse({ status: 429, details: "request_rate_limited" });
  r.recordResponse({ status: 429, details: "request_rate_limited" });
  r.recordResponse({ status: 404, details: "route_not_found" });
  v = r.view();
  assertEquals(v.statusSource, "edge");
  assertEquals([v.statusClasses["2xx"].at(-1), v.statusClasses["4xx"].at(-1)], [1, 3]);
  assertEquals(v.range.errors, 3);
  assertEquals(v.errorTypes.slice(0, 2), [
    { label: "429 request_rate_limited", count: 2 },
    { label: "404 route_not_found", count: 1 },
  ]);
  assertEquals([r.totals.responses, r.totals.responseErrors, r.totals.errors], [4, 3, 1]);
});

Deno.test("DashboardRecorder counts total tokens as input plus output when the provider gives no total", () => {
  const { now } = clock(T);
  const r = new DashboardRecorder({ now });
  r.recordUsage(event(T, { tokens: { inputTokens: 7 } }));
  r.recordUsage(event(T, { tokens: { inputTokens: 1, outputTokens: 1, totalTokens: 5 } }));
  r.recordUsage(event(T, { tokens: {} }));
  const v = r.view();
  assertEquals([v.range.tokens, v.inputTokens.at(-1), v.outputTokens.at(-1)], [12, 8, 1]);
});

Deno.test("percentile interpolates inside the latency histogram's bins", () => {
  assertEquals(percentile([0, 0, 0], 0.5), null);
  // 10 requests in (10, 25] ms: the median is half way through that bin.
  const bins = new Array(14).fill(0);
  bins[2] = 10;
  assertEquals(percentile(bins, 0.5), 17.5);
  bins[13] = 90; // above the last bound: reported as the bound
  assertEquals(percentile(bins, 0.95), 60_000);
});

Deno.test("DashboardRecorder refuses a window that is not a whole number of buckets", () => {
  let message = "";
  try {
    new DashboardRecorder({ bucketMs: 10_000, windowMs: 15_000 });
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(message, "Invalid dashboard window 15000 ms: expected a multiple of 10000");
});
