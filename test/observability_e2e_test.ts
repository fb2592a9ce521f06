// Metrics end to end: requests from the official OpenAI client through the edge and the real ExtProc server to fake
// providers, then the registry read the way Prometheus would scrape it. The GenAI metrics follow the OpenTelemetry
// semantic conventions (docs/observability.md); the token counts must equal what the fake provider reported.
import { Registry } from "prom-client";
import { assert, assertEquals } from "./support/assert.ts";
import { FALLBACK_RETRY, type Gateway, startGateway } from "./support/gateway_fixture.ts";
import { chatCompletion } from "./support/fake_upstream.ts";
import { FakeRls, rlsResponse } from "./support/fake_rls_server.ts";
import { EdgeMetrics } from "../src/edge/edge_metrics.ts";
import { RateLimitResponse_Code } from "../src/protocol/gen/envoy/service/ratelimit/v3/rls.ts";

type Labels = Readonly<Record<string, string | number>>;

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** Every request is over on both sides (the metrics are recorded as the router stream closes). */
async function settled(gw: Gateway): Promise<void> {
  await until(() => gw.extproc.openStreams === 0 && gw.edge.activeRequests === 0, "every stream to close");
}

/** The samples of one metric whose labels include `labels` (for a histogram, name its _sum, _count or _bucket). */
async function samples(registry: Registry, sample: string, labels: Labels = {}) {
  const base = sample.replace(/_(sum|count|bucket)$/, "");
  const metric = registry.getSingleMetric(base) ?? registry.getSingleMetric(sample);
  if (!metric) throw new Error(`No metric ${sample} in the registry`);
  const { values } = await metric.get();
  return values.filter((v) =>
    ((v as { metricName?: string }).metricName ?? base) === sample &&
    Object.entries(labels).every(([k, want]) => String((v.labels as Labels)[k]) === String(want))
  );
}

async function value(registry: Registry, sample: string, labels: Labels = {}): Promise<number> {
  return (await samples(registry, sample, labels)).reduce((sum, v) => sum + v.value, 0);
}

const chat = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "hi" }] };

Deno.test("a chat through the edge records token usage and duration with the GenAI conventions' labels", async () => {
  const registry = new Registry();
  await using gw = await startGateway({
    registry,
    upstreams: { openai: (r) => chatCompletion(JSON.parse(r.body).model, "hello") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]], overrides: { openai: "gpt-4o-mini-2024-07-18" } }],
  });
  await gw.openai.chat.completions.create(chat);
  await gw.openai.chat.completions.create(chat);
  await settled(gw);
  const labels = {
    gen_ai_operation_name: "chat",
    gen_ai_provider_name: "openai",
    gen_ai_original_model: "gpt-4o-mini",
    gen_ai_request_model: "gpt-4o-mini-2024-07-18",
    gen_ai_response_model: "gpt-4o-mini-2024-07-18",
    ai_backend: "default/openai",
  };
  // The fake provider reports 5 prompt and 2 completion tokens per answer.
  const input = { ...labels, gen_ai_token_type: "input" };
  const output = { ...labels, gen_ai_token_type: "output" };
  assertEquals(await value(registry, "gen_ai_client_token_usage_count", input), 2);
  assertEquals(await value(registry, "gen_ai_client_token_usage_sum", input), 10);
  assertEquals(await value(registry, "gen_ai_client_token_usage_count", output), 2);
  assertEquals(await value(registry, "gen_ai_client_token_usage_sum", output), 4);
  // The conventions' advised boundaries: 5 tokens fall in le=16 and not in le=4.
  assertEquals(await value(registry, "gen_ai_client_token_usage_bucket", { ...input, le: 4 }), 0);
  assertEquals(await value(registry, "gen_ai_client_token_usage_bucket", { ...input, le: 16 }), 2);
  const durations = await samples(registry, "gen_ai_server_request_duration_seconds_count", labels);
  assertEquals(durations.map((d) => [d.value, "error_type" in d.labels]), [[2, false]]);
  // Not streamed: no time to first token.
  assertEquals(await value(registry, "gen_ai_server_time_to_first_token_seconds_count"), 0);
  assertEquals(await value(registry, "tollgate_extproc_request_attempts_sum"), 2);
  const text = await registry.metrics();
  assert(text.includes("# TYPE gen_ai_client_token_usage histogram"), "token usage is a histogram");
  assert(text.includes("# TYPE gen_ai_server_request_duration_seconds histogram"), "duration is a histogram");
  assert(!/tenant=/.test(text), "no tenant label unless configured");
});

Deno.test("a streamed chat records time to first token and time per output token", async () => {
  const registry = new Registry();
  await using gw = await startGateway({
    registry,
    upstreams: { openai: (r) => sseWithUsage(JSON.parse(r.body).model, ["Hel", "lo", " there"], 7, 4) },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  const stream = await gw.openai.chat.completions.create({
    ...chat,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  assertEquals(text, "Hello there");
  await settled(gw);
  const labels = { gen_ai_operation_name: "chat", gen_ai_request_model: "gpt-4o-mini" };
  assertEquals(await value(registry, "gen_ai_client_token_usage_sum", { ...labels, gen_ai_token_type: "input" }), 7);
  assertEquals(await value(registry, "gen_ai_client_token_usage_sum", { ...labels, gen_ai_token_type: "output" }), 4);
  assertEquals(await value(registry, "gen_ai_server_time_to_first_token_seconds_count", labels), 1);
  assertEquals(await value(registry, "gen_ai_server_time_per_output_token_seconds_count", labels), 1);
  const ttft = await value(registry, "gen_ai_server_time_to_first_token_seconds_sum", labels);
  const total = await value(registry, "gen_ai_server_request_duration_seconds_sum", labels);
  const tpot = await value(registry, "gen_ai_server_time_per_output_token_seconds_sum", labels);
  assert(ttft > 0 && ttft <= total, `time to first token ${ttft} s within the request's ${total} s`);
  // (duration - time to first token) spread over the 3 tokens after the first.
  assertEquals(Math.round(tpot * 3 * 1e6), Math.round((total - ttft) * 1e6));
});

Deno.test("failed requests are counted with error.type: provider 500, unknown model, malformed body, unreachable upstream", async () => {
  const registry = new Registry();
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  await using gw = await startGateway({
    registry,
    upstreams: { broken: () => Response.json({ error: { message: "boom", type: "server_error" } }, { status: 500 }) },
    listening: { dead: deadPort },
    routes: [
      { model: "gpt-4o-mini", priorities: [["broken"]] },
      { model: "gpt-dead", priorities: [["dead"]] },
    ],
  });
  const status = async (p: Promise<unknown>) => await p.then(() => 200, (e: { status?: number }) => e.status);
  assertEquals(await status(gw.openai.chat.completions.create(chat)), 500);
  assertEquals(await status(gw.openai.chat.completions.create({ ...chat, model: "no-such-model" })), 404);
  const malformed = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{not json",
  });
  await malformed.body?.cancel();
  assertEquals(malformed.status, 400);
  assertEquals(await status(gw.openai.chat.completions.create({ ...chat, model: "gpt-dead" })), 503);
  await settled(gw);
  const count = (labels: Labels) => value(registry, "gen_ai_server_request_duration_seconds_count", labels);
  assertEquals(
    await count({ error_type: "500", gen_ai_provider_name: "openai", gen_ai_request_model: "gpt-4o-mini" }),
    1,
  );
  // Refused by the gateway: no provider was involved, and an unknown model is not a label value.
  const notFound = await samples(registry, "gen_ai_server_request_duration_seconds_count", { error_type: "404" });
  assertEquals(notFound.map((s) => [s.value, s.labels.gen_ai_operation_name, s.labels.gen_ai_provider_name]), [
    [1, "chat", undefined],
  ]);
  assertEquals(await count({ error_type: "400", gen_ai_operation_name: "chat" }), 1);
  // The edge answered 503 itself after routing: the router stream ended before any response reached it.
  assertEquals(await count({ error_type: "aborted", gen_ai_request_model: "gpt-dead" }), 1);
  assertEquals(await count({}), 4);
  // A failed request has no tokens to report.
  assertEquals(await value(registry, "gen_ai_client_token_usage_count"), 0);
});

Deno.test("the edge counts requests by route and status, upstream attempts, retries and its own replies", async () => {
  const registry = new Registry();
  await using gw = await startGateway({
    registry,
    edgeMetrics: new EdgeMetrics(registry),
    upstreams: {
      primary: () => Response.json({ error: { message: "boom" } }, { status: 500 }),
      fallback: (r) => chatCompletion(JSON.parse(r.body).model, "from fallback"),
    },
    routes: [{ model: "gpt-4o-mini", priorities: [["primary"], ["fallback"]], retry: FALLBACK_RETRY }],
  });
  await gw.openai.chat.completions.create(chat);
  await gw.openai.chat.completions.create({ ...chat, model: "no-such-model" }).catch(() => {});
  await settled(gw);
  const route = "route-gpt-4o-mini";
  assertEquals(await value(registry, "tollgate_edge_requests_total", { route, code: 200, code_class: "2xx" }), 1);
  assertEquals(await value(registry, "tollgate_edge_requests_total", { route: "", code: 404, code_class: "4xx" }), 1);
  assertEquals(await value(registry, "tollgate_edge_upstream_attempts_total", { route, result: "5xx" }), 1);
  assertEquals(await value(registry, "tollgate_edge_upstream_attempts_total", { route, result: "2xx" }), 1);
  assertEquals(await value(registry, "tollgate_edge_upstream_retries_total", { route }), 1);
  assertEquals(await value(registry, "tollgate_edge_request_duration_seconds_count", { route, code_class: "2xx" }), 1);
  assertEquals(await value(registry, "tollgate_edge_requests_active"), 0);
  // The model_not_found answer came from the router-level ext_proc filter, not from an upstream.
  assertEquals(await value(registry, "tollgate_edge_local_replies_total"), 1);
  // The sidecar saw the fallback too: two attempts for one request, answered by the fallback backend.
  assertEquals(await value(registry, "tollgate_extproc_request_attempts_sum"), 2);
  assertEquals(
    await value(registry, "gen_ai_server_request_duration_seconds_count", { ai_backend: "default/fallback" }),
    1,
  );
});

Deno.test("a request the ratelimit filter refuses is counted as rate limited", async () => {
  const registry = new Registry();
  await using rls = await FakeRls.start(() => rlsResponse({ overallCode: RateLimitResponse_Code.OVER_LIMIT }));
  await using gw = await startGateway({
    registry,
    edgeMetrics: new EdgeMetrics(registry),
    upstreams: { openai: (r) => chatCompletion(JSON.parse(r.body).model, "hello") },
    routes: [{
      model: "gpt-4o-mini",
      priorities: [["openai"]],
      rateLimits: [{
        actions: [{ kind: "genericKey", descriptorKey: "rule", descriptorValue: "everyone" }],
        applyOnStreamDone: false,
      }],
    }],
    rateLimit: { target: rls.target },
  });
  const err = await gw.openai.chat.completions.create(chat).catch((e: { status?: number }) => e);
  assertEquals((err as { status?: number }).status, 429);
  await settled(gw);
  const route = "route-gpt-4o-mini";
  assertEquals(await value(registry, "tollgate_edge_rate_limited_total", { route }), 1);
  assertEquals(await value(registry, "tollgate_edge_requests_total", { route, code: 429 }), 1);
  assertEquals(await value(registry, "tollgate_edge_upstream_attempts_total"), 0);
  assertEquals(gw.upstreams.openai!.seen.length, 0);
});

Deno.test("with a tenant header configured, tenants become a label with a cap on distinct values", async () => {
  const registry = new Registry();
  const tenant = { header: "x-user-id", cap: 1 };
  await using gw = await startGateway({
    registry,
    observability: { metricsTenant: tenant },
    edgeMetrics: new EdgeMetrics(registry, { tenant }),
    upstreams: { openai: (r) => chatCompletion(JSON.parse(r.body).model, "hello") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  for (const user of ["alice", "bob", "carol", "alice"]) {
    await gw.openai.chat.completions.create(chat, { headers: { "x-user-id": user } });
  }
  await gw.openai.chat.completions.create(chat);
  await settled(gw);
  const input = (tenant?: string) =>
    samples(registry, "gen_ai_client_token_usage_sum", { gen_ai_token_type: "input" }).then((s) =>
      s.filter((v) => v.labels.tenant === tenant).reduce((sum, v) => sum + v.value, 0)
    );
  assertEquals([await input("alice"), await input("other"), await input(undefined)], [10, 10, 5]);
  const edge = await samples(registry, "tollgate_edge_requests_total", { code: 200 });
  assertEquals(
    edge.map((s) => [s.labels.tenant, s.value]).sort(),
    [["alice", 2], ["other", 2], [undefined, 1]].sort(),
  );
});

/** An OpenAI SSE chat stream that ends with a usage chunk, as include_usage asks. */
function sseWithUsage(model: string, words: readonly string[], prompt: number, completion: number): Response {
  const chunk = (delta: unknown, extra: Record<string, unknown> = {}) =>
    `data: ${
      JSON.stringify({
        id: "c1",
        object: "chat.completion.chunk",
        created: 1,
        model,
        choices: delta === null ? [] : [{ index: 0, delta, finish_reason: null }],
        ...extra,
      })
    }\n\n`;
  const events = [
    ...words.map((w, i) => chunk(i === 0 ? { role: "assistant", content: w } : { content: w })),
    chunk(null, { usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } }),
    "data: [DONE]\n\n",
  ];
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      const next = events.shift();
      if (next === undefined) return c.close();
      // A pause before each event, so the first byte comes measurably before the last.
      await new Promise((r) => setTimeout(r, 5));
      c.enqueue(encoder.encode(next));
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}
