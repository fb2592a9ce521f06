// End to end through the edge with the official OpenAI client: client → edge (router ext_proc, router, upstream
// ext_proc per attempt) → fake provider, with the real ExtProc server on a Unix socket.
import OpenAI from "openai";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FALLBACK_RETRY, startGateway } from "./support/gateway_fixture.ts";
import { chatCompletion, chatStream } from "./support/fake_upstream.ts";
import { startStallingExtProc } from "./support/stalling_extproc.ts";

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

Deno.test("a non-streaming chat goes through the edge to the provider and back", async () => {
  await using gw = await startGateway({
    upstreams: { openai: (r) => chatCompletion(JSON.parse(r.body).model, "hello from upstream") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  const res = await gw.openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(res.choices[0]!.message.content, "hello from upstream");
  const seen = gw.upstreams.openai!.seen[0]!;
  assertEquals([seen.method, seen.path], ["POST", "/v1/chat/completions"]);
  assertEquals(seen.headers.get("x-ai-eg-model"), "gpt-4o-mini");
  assertEquals(seen.headers.get("x-tollgate-request-id"), null);
  assertEquals(JSON.parse(seen.body).messages, [{ role: "user", content: "hi" }]);
  await until(() => gw.accessLog.length === 1, "the access log line");
  const log = gw.accessLog[0]!;
  assertEquals([log.status, log.model, log.backend, log.attempts, log.route], [
    200,
    "gpt-4o-mini",
    "default/openai",
    1,
    "route-gpt-4o-mini",
  ]);
  // Usage the provider reported, read by the router stream and carried in dynamic metadata.
  assertEquals(log.usage, { input_tokens: 5, output_tokens: 2, total_tokens: 7 });
  assertEquals(log.response_model, "gpt-4o-mini");
  assertEquals([gw.extproc.openStreams, gw.edge.activeRequests], [0, 0]);
});

Deno.test("a streaming chat arrives chunk by chunk", async () => {
  await using gw = await startGateway({
    upstreams: { openai: (r) => chatStream(JSON.parse(r.body).model, ["Hel", "lo", " there"]) },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  const stream = await gw.openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
    stream: true,
  });
  const parts: string[] = [];
  for await (const chunk of stream) parts.push(chunk.choices[0]?.delta.content ?? "");
  assertEquals(parts, ["Hel", "lo", " there"]);
  await until(() => gw.extproc.openStreams === 0 && gw.edge.activeRequests === 0, "streams to close");
});

Deno.test("the models list is answered by the gateway itself", async () => {
  await using gw = await startGateway({
    upstreams: { openai: () => new Response("unexpected", { status: 500 }) },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }, { model: "llama3", priorities: [["openai"]] }],
  });
  const models = [];
  for await (const m of gw.openai.models.list()) models.push(m.id);
  assertEquals(models, ["gpt-4o-mini", "llama3"]);
  assertEquals(gw.upstreams.openai!.seen.length, 0);
});

Deno.test("a malformed body gets 400 in OpenAI's error format", async () => {
  await using gw = await startGateway({
    upstreams: { openai: () => new Response("unexpected", { status: 500 }) },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  const raw = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"model": ',
  });
  assertEquals(raw.status, 400);
  const body = await raw.json();
  assertEquals(body.error.type, "invalid_request_error");
  assertMatch(body.error.message, /^The request body is not valid JSON/);
  try {
    // deno-lint-ignore no-explicit-any
    await gw.openai.chat.completions.create({ model: "gpt-4o-mini" } as any);
    throw new Error("expected a 400");
  } catch (e) {
    assert(e instanceof OpenAI.BadRequestError, String(e));
    assertEquals(e.message, "400 'messages' is required and must be an array");
  }
  assertEquals(gw.upstreams.openai!.seen.length, 0);
});

Deno.test("an unknown model gets 404 model_not_found", async () => {
  await using gw = await startGateway({
    upstreams: { openai: () => new Response("unexpected", { status: 500 }) },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  try {
    await gw.openai.chat.completions.create({ model: "gpt-9", messages: [{ role: "user", content: "hi" }] });
    throw new Error("expected a 404");
  } catch (e) {
    assert(e instanceof OpenAI.NotFoundError, String(e));
    assertEquals(e.code, "model_not_found");
  }
});

Deno.test("an upstream 500 falls back to the next priority backend", async () => {
  await using gw = await startGateway({
    upstreams: {
      primary: () => Response.json({ error: { message: "boom" } }, { status: 500 }),
      fallback: (r) => chatCompletion(JSON.parse(r.body).model, "from fallback"),
    },
    routes: [{ model: "gpt-4o-mini", priorities: [["primary"], ["fallback"]], retry: FALLBACK_RETRY }],
  });
  const res = await gw.openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(res.choices[0]!.message.content, "from fallback");
  assertEquals([gw.upstreams.primary!.seen.length, gw.upstreams.fallback!.seen.length], [1, 1]);
  // Both attempts carried the original body, translated afresh.
  assertEquals(gw.upstreams.fallback!.seen[0]!.body, gw.upstreams.primary!.seen[0]!.body);
  await until(() => gw.accessLog.length === 1, "the access log line");
  assertEquals([gw.accessLog[0]!.attempts, gw.accessLog[0]!.backend], [2, "default/fallback"]);
});

Deno.test("without a retry policy an upstream 500 reaches the client", async () => {
  await using gw = await startGateway({
    upstreams: { primary: () => Response.json({ error: { message: "boom", type: "server_error" } }, { status: 500 }) },
    routes: [{ model: "gpt-4o-mini", priorities: [["primary"]] }],
  });
  try {
    await gw.openai.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });
    throw new Error("expected a 500");
  } catch (e) {
    assert(e instanceof OpenAI.InternalServerError, String(e));
  }
});

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

for (const failureModeAllow of [false, true]) {
  Deno.test(`the ExtProc sidecar killed mid-request answers ${failureModeAllow ? "the upstream response (failure_mode_allow true)" : "500 (failure_mode_allow false)"}`, async () => {
    const upstreamReached = gate();
    const release = gate();
    await using gw = await startGateway({
      upstreams: {
        openai: async (r) => {
          upstreamReached.open();
          await release.wait;
          return chatCompletion(JSON.parse(r.body).model, "answer");
        },
      },
      routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
      routerExtProc: { failureModeAllow },
    });
    const pending = fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    });
    await upstreamReached.wait;
    await gw.extproc.close();
    release.open();
    const res = await pending;
    if (failureModeAllow) {
      assertEquals(res.status, 200);
      assertEquals((await res.json()).choices[0].message.content, "answer");
    } else {
      assertEquals(res.status, 500);
      await res.body?.cancel();
    }
    await until(() => gw.edge.activeRequests === 0, "the edge request to finish");
  });
}

Deno.test("a processor that does not answer within message_timeout gets 504", async () => {
  await using stalling = await startStallingExtProc();
  await using gw = await startGateway({
    upstreams: { openai: () => chatCompletion("gpt-4o-mini", "never") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
    routerTarget: stalling.target,
    routerExtProc: { messageTimeoutMs: 100 },
  });
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [] }),
  });
  assertEquals(res.status, 504);
  await res.body?.cancel();
  assertEquals(stalling.received.count, 1);
  assertEquals(gw.upstreams.openai!.seen.length, 0);
  await until(() => gw.accessLog.length === 1, "the access log line");
  assertEquals(gw.accessLog[0]!.response_code_details, "ext_proc_error_message_timeout");
});

Deno.test("a client disconnecting mid-stream leaves no stream open on either side", async () => {
  const words = Array.from({ length: 200 }, (_, i) => `w${i} `);
  let cancelled = { count: 0 };
  await using gw = await startGateway({
    upstreams: {
      openai: (r, ctx) => {
        cancelled = ctx.cancelled;
        return chatStream(JSON.parse(r.body).model, words, { pauseMs: 20, cancelled: ctx.cancelled });
      },
    },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  const abort = new AbortController();
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], stream: true }),
    signal: abort.signal,
  });
  const reader = res.body!.getReader();
  await reader.read();
  await reader.read();
  abort.abort();
  await until(() => cancelled.count === 1, "the upstream stream to be cancelled");
  await until(() => gw.edge.activeRequests === 0 && gw.extproc.openStreams === 0, "streams to close on both sides");
});

Deno.test("a request body over the limit gets 413 without reaching the processor or the provider", async () => {
  await using gw = await startGateway({
    upstreams: { openai: () => chatCompletion("gpt-4o-mini", "never") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
    maxRequestBodyBytes: 1000,
  });
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x".repeat(5000) }] }),
  });
  assertEquals(res.status, 413);
  await res.body?.cancel();
  assertEquals(gw.upstreams.openai!.seen.length, 0);
});

Deno.test("a connection failure on the primary falls back to the next priority", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  await using gw = await startGateway({
    upstreams: { fallback: (r) => chatCompletion(JSON.parse(r.body).model, "from fallback") },
    routes: [{
      model: "gpt-4o-mini",
      priorities: [["fallback"], ["fallback"]],
      retry: { ...FALLBACK_RETRY, retryOn: ["connect-failure"] },
    }],
  });
  // Point priority 0 at a port nobody listens on.
  const config = gw.edge.config;
  gw.edge.setConfig({
    ...config,
    clusters: config.clusters.map((c) => ({
      ...c,
      priorities: [[{ ...c.priorities[0]![0]!, port: deadPort }], c.priorities[1]!],
    })),
  });
  const res = await gw.openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(res.choices[0]!.message.content, "from fallback");
  await until(() => gw.accessLog.length === 1, "the access log line");
  assertEquals(gw.accessLog[0]!.attempts, 2);
});

Deno.test("a per-try timeout moves on to the next attempt", async () => {
  let calls = 0;
  await using gw = await startGateway({
    upstreams: {
      slow: async (r) => {
        calls++;
        if (calls === 1) await new Promise((resolve) => setTimeout(resolve, 500));
        return chatCompletion(JSON.parse(r.body).model, `answer ${calls}`);
      },
    },
    routes: [{
      model: "gpt-4o-mini",
      priorities: [["slow"]],
      retry: { ...FALLBACK_RETRY, retryOn: ["reset"], perTryTimeoutMs: 100, previousPriorities: false },
    }],
  });
  const res = await gw.openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(res.choices[0]!.message.content, "answer 2");
});

Deno.test("a slow client never makes the edge buffer a whole stream: the upstream is read only as fast as the client reads", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  const total = 1024; // 64 MiB if read to the end
  let produced = 0;
  let cancelled = false;
  await using gw = await startGateway({
    upstreams: {
      openai: () =>
        new Response(
          new ReadableStream<Uint8Array>({
            pull(c) {
              if (produced >= total) return c.close();
              produced++;
              c.enqueue(chunk);
            },
            cancel() {
              cancelled = true;
            },
          }, { highWaterMark: 0 }),
          { headers: { "content-type": "text/event-stream" } },
        ),
    },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  const abort = new AbortController();
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], stream: true }),
    signal: abort.signal,
  });
  const reader = res.body!.getReader();
  let read = 0;
  while (read < 256 * 1024) read += (await reader.read()).value!.length;
  // The client stops reading; whatever the proxy pulls now can only fill socket buffers, never the whole stream.
  await new Promise((r) => setTimeout(r, 500));
  const stalled = produced;
  await new Promise((r) => setTimeout(r, 300));
  assertEquals(produced, stalled, "the upstream kept being read while the client was not reading");
  assert(produced * chunk.length < 16 * 1024 * 1024, `read ${produced} chunks of the upstream for ${read} bytes sent`);
  abort.abort();
  await until(() => cancelled && gw.edge.activeRequests === 0 && gw.extproc.openStreams === 0, "everything to close");
});

Deno.test("a buffered response body over the buffer limit gets 500 instead of growing the proxy's memory", async () => {
  await using gw = await startGateway({
    upstreams: { openai: () => Response.json({ choices: [], filler: "x".repeat(4000) }) },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
    maxRequestBodyBytes: 1000,
  });
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [] }),
  });
  assertEquals(res.status, 500);
  await res.body?.cancel();
  await until(() => gw.accessLog.length === 1, "the access log line");
  assertEquals(gw.accessLog[0]!.response_code_details, "response_payload_too_large");
});
