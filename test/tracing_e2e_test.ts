// Tracing end to end: the official OpenAI client through the edge and the real ExtProc server, spans exported over
// OTLP/HTTP by the real exporter to a local receiver. A request span continues the client's trace; each upstream
// attempt is a child span whose trace context the upstream receives in traceparent. With tracing off, nothing is
// added.
import OpenAI from "openai";
import { assert, assertEquals } from "./support/assert.ts";
import { FALLBACK_RETRY, type Gateway, startGateway } from "./support/gateway_fixture.ts";
import { chatCompletion, startFakeUpstream } from "./support/fake_upstream.ts";
import { type ReceivedSpan, startOtlpReceiver } from "./support/otlp_receiver.ts";
import { TOLLGATE } from "./support/process.ts";
import { RequestTracing } from "../src/observability/tracing.ts";

const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN = "00f067aa0ba902b7";
const CLIENT_TRACEPARENT = `00-${TRACE_ID}-${CLIENT_SPAN}-01`;
const chat = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "hi" }] };

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function settled(gw: Gateway): Promise<void> {
  await until(() => gw.extproc.openStreams === 0 && gw.edge.activeRequests === 0, "every stream to close");
}

function byKind(spans: readonly ReceivedSpan[], kind: number): ReceivedSpan[] {
  return spans.filter((s) => s.kind === kind).sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano));
}

Deno.test("a fallback request is one server span continuing the client's trace, with a client span per attempt", async () => {
  await using receiver = await startOtlpReceiver();
  const tracing = new RequestTracing({ url: `${receiver.url}/v1/traces`, role: "test", scheduledDelayMillis: 20 });
  await using gw = await startGateway({
    observability: { tracing },
    upstreams: {
      primary: () => Response.json({ error: { message: "boom" } }, { status: 500 }),
      fallback: (r) => chatCompletion(JSON.parse(r.body).model, "from fallback"),
    },
    routes: [{ model: "gpt-4o-mini", priorities: [["primary"], ["fallback"]], retry: FALLBACK_RETRY }],
  });
  const res = await gw.openai.chat.completions.create(chat, { headers: { traceparent: CLIENT_TRACEPARENT } });
  assertEquals(res.choices[0]!.message.content, "from fallback");
  await settled(gw);
  await tracing.flush();
  const spans = await receiver.waitForSpans(3);
  await tracing.shutdown();
  assertEquals(spans.length, 3);
  assertEquals(receiver.contentTypes[0], "application/json");

  const [request] = byKind(spans, SERVER);
  assert(request, "a server span for the request");
  assertEquals([request.traceId, request.parentSpanId], [TRACE_ID, CLIENT_SPAN]);
  assertEquals(request.name, "chat gpt-4o-mini");
  assertEquals(request.resource["service.name"], "tollgate");
  assertEquals(request.attributes["gen_ai.operation.name"], "chat");
  assertEquals(request.attributes["gen_ai.provider.name"], "openai");
  assertEquals(request.attributes["gen_ai.request.model"], "gpt-4o-mini");
  assertEquals(request.attributes["gen_ai.response.model"], "gpt-4o-mini");
  assertEquals(request.attributes["gen_ai.usage.input_tokens"], 5);
  assertEquals(request.attributes["gen_ai.usage.output_tokens"], 2);
  assertEquals(request.attributes["http.response.status_code"], 200);
  assertEquals(request.attributes["tollgate.attempts"], 2);
  assertEquals(request.attributes["tollgate.backend"], "default/fallback");
  assertEquals([request.attributes["error.type"], request.status], [undefined, 0]);

  const attempts = byKind(spans, CLIENT);
  assertEquals(attempts.length, 2);
  for (const a of attempts) {
    assertEquals([a.traceId, a.parentSpanId], [TRACE_ID, request.spanId]);
    assert(a.startTimeUnixNano >= request.startTimeUnixNano && a.endTimeUnixNano <= request.endTimeUnixNano);
  }
  const [first, second] = attempts as [ReceivedSpan, ReceivedSpan];
  assertEquals(first.attributes["tollgate.backend"], "default/primary");
  assertEquals(first.attributes["tollgate.attempt"], 1);
  assertEquals([first.attributes["error.type"], first.status], ["retried", STATUS_ERROR]);
  assertEquals(second.attributes["tollgate.backend"], "default/fallback");
  assertEquals(second.attributes["tollgate.attempt"], 2);
  assertEquals(second.attributes["gen_ai.provider.name"], "openai");
  assertEquals(second.attributes["gen_ai.request.model"], "gpt-4o-mini");
  assertEquals(second.attributes["gen_ai.usage.output_tokens"], 2);
  assertEquals([second.attributes["error.type"], second.status], [undefined, 0]);
  assert(first.endTimeUnixNano <= second.startTimeUnixNano, "the retried attempt ends when the next one starts");

  // Each upstream received the trace context of its own attempt span, not the client's.
  assertEquals(gw.upstreams.primary!.seen[0]!.headers.get("traceparent"), `00-${TRACE_ID}-${first.spanId}-01`);
  assertEquals(gw.upstreams.fallback!.seen[0]!.headers.get("traceparent"), `00-${TRACE_ID}-${second.spanId}-01`);
});

Deno.test("failed requests' spans carry error.type; a request without traceparent starts a new trace", async () => {
  await using receiver = await startOtlpReceiver();
  const tracing = new RequestTracing({ url: `${receiver.url}/v1/traces`, role: "test", scheduledDelayMillis: 20 });
  await using gw = await startGateway({
    observability: { tracing },
    upstreams: { broken: () => Response.json({ error: { message: "boom", type: "server_error" } }, { status: 500 }) },
    routes: [{ model: "gpt-4o-mini", priorities: [["broken"]] }],
  });
  await gw.openai.chat.completions.create(chat).catch(() => {});
  await gw.openai.chat.completions.create({ ...chat, model: "no-such-model" }).catch(() => {});
  await settled(gw);
  await tracing.flush();
  const spans = await receiver.waitForSpans(3);
  await tracing.shutdown();

  const [failed, unknown] = byKind(spans, SERVER) as [ReceivedSpan, ReceivedSpan];
  // A root span of a new trace, whose id the upstream received.
  assertEquals(failed.parentSpanId, "");
  assertEquals([failed.attributes["error.type"], failed.attributes["http.response.status_code"]], ["500", 500]);
  assertEquals(failed.status, STATUS_ERROR);
  const [attempt] = byKind(spans, CLIENT) as [ReceivedSpan];
  assertEquals([attempt.parentSpanId, attempt.attributes["error.type"], attempt.status], [
    failed.spanId,
    "500",
    STATUS_ERROR,
  ]);
  assertEquals(gw.upstreams.broken!.seen[0]!.headers.get("traceparent"), `00-${failed.traceId}-${attempt.spanId}-01`);
  // Refused by the gateway before any attempt: no client span; a 4xx leaves a server span's status unset.
  assertEquals(unknown.name, "chat");
  assertEquals([unknown.attributes["error.type"], unknown.attributes["http.response.status_code"]], ["404", 404]);
  assertEquals(unknown.status, 0);
  assert(unknown.traceId !== failed.traceId, "each request without a traceparent is its own trace");
  assertEquals(tracing.openRequests, 0);
});

Deno.test("with tracing off the upstream gets no traceparent, and a client's own passes through unchanged", async () => {
  await using gw = await startGateway({
    upstreams: { openai: (r) => chatCompletion(JSON.parse(r.body).model, "hello") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  assertEquals(gw.extproc.observer.traceAttempt, undefined);
  await gw.openai.chat.completions.create(chat);
  await gw.openai.chat.completions.create(chat, { headers: { traceparent: CLIENT_TRACEPARENT } });
  const [plain, traced] = gw.upstreams.openai!.seen;
  assertEquals(plain!.headers.get("traceparent"), null);
  assertEquals(plain!.headers.get("tracestate"), null);
  assertEquals(traced!.headers.get("traceparent"), CLIENT_TRACEPARENT);
});

Deno.test("tollgate run --otlp-endpoint exports spans and sends traceparent upstream", async () => {
  await using receiver = await startOtlpReceiver();
  await using upstream = await startFakeUpstream((r) => chatCompletion(JSON.parse(r.body).model, "from provider"));
  const listen = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listen.addr as Deno.NetAddr).port;
  listen.close();
  const child = new Deno.Command(TOLLGATE, {
    args: ["run", "--listen", `127.0.0.1:${port}`, "--admin", "off", "--access-log", "off"].concat([
      "--otlp-endpoint",
      receiver.url,
    ]),
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      OPENAI_API_KEY: "sk-upstream",
      OPENAI_BASE_URL: `http://127.0.0.1:${upstream.port}/v1`,
      OTEL_SERVICE_NAME: "gateway-under-test",
    },
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  while (!banner.includes("Try it:")) {
    const { value, done } = await stderr.read();
    if (done) throw new Error(`tollgate run exited early:\n${banner}`);
    banner += value;
  }
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "client", maxRetries: 0 });
  await openai.chat.completions.create(chat, { headers: { traceparent: CLIENT_TRACEPARENT } });
  // SIGTERM drains and flushes the spans still batched.
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0);
  await stderr.cancel();
  const spans = await receiver.waitForSpans(2);
  const [request] = byKind(spans, SERVER) as [ReceivedSpan];
  const [attempt] = byKind(spans, CLIENT) as [ReceivedSpan];
  assertEquals([request.traceId, request.parentSpanId], [TRACE_ID, CLIENT_SPAN]);
  assertEquals(request.resource["service.name"], "gateway-under-test");
  assertEquals(request.resource["tollgate.role"], "run");
  assertEquals(attempt.parentSpanId, request.spanId);
  assertEquals(upstream.seen[0]!.headers.get("traceparent"), `00-${TRACE_ID}-${attempt.spanId}-01`);
});
