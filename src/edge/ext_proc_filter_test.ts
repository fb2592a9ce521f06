import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { type ScriptStep, startScriptedExtProc } from "../../test/support/scripted_extproc.ts";
import {
  BodyMode,
  continueResponse,
  HeaderMode,
  headerMutation,
  immediateResponse,
  type ProcessingRequest,
  type ProcessingResponse,
  routerProcessingMode,
} from "../protocol/ext_proc.ts";
import { CommonResponse_ResponseStatus } from "../protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { ManualClock, systemClock } from "../observability/clock.ts";
import type { ExtProcFilterConfig } from "./config.ts";
import { ExtProcChannel, ExtProcFilterStream } from "./ext_proc_filter.ts";
import { HeaderList } from "./headers.ts";
import type { DynamicMetadata } from "./dynamic_metadata.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function config(target: string, o: Partial<ExtProcFilterConfig> = {}): ExtProcFilterConfig {
  return {
    target,
    processingMode: routerProcessingMode(),
    allowModeOverride: true,
    messageTimeoutMs: 5_000,
    failureModeAllow: false,
    receivingNamespaces: ["io.envoy.ai_gateway"],
    initialMetadata: { "x-tollgate-role": "router" },
    requestAttributes: [],
    ...o,
  };
}

/** Answers every message with CONTINUE of the matching type. */
const continueAll = (req: ProcessingRequest): ScriptStep => ({ reply: continueResponse(req.request!.$case) });

function requestHeaders(): HeaderList {
  return new HeaderList([[":method", "POST"], [":path", "/v1/chat/completions"], [":authority", "gw"], ["host", "gw"]]);
}

async function withStream(
  script: (req: ProcessingRequest, i: number) => ScriptStep,
  o: Partial<ExtProcFilterConfig>,
  fn: (s: ExtProcFilterStream, ctx: { metadata: DynamicMetadata; seen: () => ProcessingRequest[] }) => Promise<void>,
  clock = systemClock,
  attributes?: Record<string, unknown>,
): Promise<void> {
  await using proc = await startScriptedExtProc(script);
  const channel = new ExtProcChannel(proc.target);
  const metadata: DynamicMetadata = new Map();
  const s = new ExtProcFilterStream(channel, config(proc.target, o), {
    clock,
    metadata,
    ...(attributes ? { attributes } : {}),
  });
  try {
    await fn(s, { metadata, seen: () => proc.streams[0] ?? [] });
  } finally {
    s.close();
    channel.close();
  }
}

Deno.test("ExtProcFilterStream sends only the phases its processing mode asks for", async () => {
  const mode = { ...routerProcessingMode(), requestHeaderMode: HeaderMode.SKIP, responseBodyMode: BodyMode.NONE };
  await withStream(continueAll, { processingMode: mode }, async (s, { seen }) => {
    assertEquals((await s.onRequestHeaders(requestHeaders(), false)).kind, "continue");
    await s.onRequestBody(encoder.encode("{}"), true, requestHeaders());
    await s.onResponseHeaders(new HeaderList([[":status", "200"]]), false);
    assertEquals(s.sendsBody("response"), false);
    assertEquals(seen().map((r) => r.request?.$case), ["requestBody", "responseHeaders"]);
  });
});

Deno.test("ExtProcFilterStream applies header mutations under Envoy's default rules and counts the rejected ones", async () => {
  const mutation = headerMutation(
    {
      "x-added": "1",
      "x-envoy-original-path": "/evil",
      ":authority": "evil.example",
      host: "evil.example",
      ":path": "/v2",
    },
    [":method", "host", "x-drop"],
  );
  await withStream(
    () => ({ reply: continueResponse("requestHeaders", { headerMutation: mutation }) }),
    {},
    async (s) => {
      const h = requestHeaders();
      h.append("x-drop", "bye");
      const r = await s.onRequestHeaders(h, false);
      assertEquals(r.kind, "continue");
      assertEquals(h.get("x-added"), "1");
      assertEquals(h.get(":path"), "/v2");
      assertEquals([h.get(":authority"), h.get("host"), h.get(":method")], ["gw", "gw", "POST"]);
      assertEquals(h.get("x-envoy-original-path"), undefined);
      assertEquals(h.get("x-drop"), undefined);
      assertEquals(s.stats.rejectedHeaderMutations, 5);
    },
  );
});

Deno.test("ExtProcFilterStream fails the request on a disallowed mutation when disallow_is_error is set", async () => {
  const mutation = headerMutation({ "x-envoy-upstream-rq-timeout-ms": "1" });
  await withStream(
    () => ({ reply: continueResponse("requestHeaders", { headerMutation: mutation }) }),
    { mutationRules: { disallowIsError: true } },
    async (s) => {
      const r = await s.onRequestHeaders(requestHeaders(), false);
      assert(r.kind === "respond");
      assertEquals(r.reply.status, 500);
    },
  );
});

Deno.test("ExtProcFilterStream replaces the body with CONTINUE_AND_REPLACE and sends no body afterwards", async () => {
  await withStream(
    () => ({ reply: continueResponse("requestHeaders", { replace: true, body: encoder.encode('{"new":true}') }) }),
    {},
    async (s, { seen }) => {
      const r = await s.onRequestHeaders(requestHeaders(), false);
      assert(r.kind === "continue" && r.body !== undefined);
      assertEquals(decoder.decode(r.body), '{"new":true}');
      assertEquals(s.sendsBody("request"), false);
      assertEquals((await s.onRequestBody(encoder.encode("{}"), true, requestHeaders())).kind, "continue");
      assertEquals(seen().length, 1);
    },
  );
});

Deno.test("ExtProcFilterStream reports clear_route_cache on request phases only", async () => {
  await withStream(
    (req) => ({ reply: continueResponse(req.request!.$case, { clearRouteCache: true }) }),
    {},
    async (s) => {
      const r = await s.onRequestBody(encoder.encode("{}"), true, requestHeaders());
      assert(r.kind === "continue" && r.clearRouteCache);
      const rh = await s.onResponseHeaders(new HeaderList([[":status", "200"]]), false);
      assert(rh.kind === "continue" && !rh.clearRouteCache);
    },
  );
});

function withOverride(r: ProcessingResponse, responseBodyMode: BodyMode): ProcessingResponse {
  return { ...r, modeOverride: { ...routerProcessingMode(), responseBodyMode } };
}

Deno.test("ExtProcFilterStream honours mode_override on headers answers when allowed, and never on body answers", async () => {
  const script = (req: ProcessingRequest): ScriptStep => ({
    reply: withOverride(continueResponse(req.request!.$case), BodyMode.STREAMED),
  });
  await withStream(script, {}, async (s) => {
    await s.onRequestBody(encoder.encode("{}"), true, requestHeaders());
    assertEquals(s.streamsBody("response"), false);
    await s.onResponseHeaders(new HeaderList([[":status", "200"]]), false);
    assertEquals(s.streamsBody("response"), true);
  });
  await withStream(script, { allowModeOverride: false }, async (s) => {
    await s.onResponseHeaders(new HeaderList([[":status", "200"]]), false);
    assertEquals(s.streamsBody("response"), false);
  });
});

Deno.test("ExtProcFilterStream keeps dynamic metadata only for the receiving namespaces", async () => {
  const script = (req: ProcessingRequest): ScriptStep => ({
    reply: {
      ...continueResponse(req.request!.$case),
      dynamicMetadata: { "io.envoy.ai_gateway": { llm_total_token: 42 }, "other.namespace": { x: 1 } },
    },
  });
  await withStream(script, {}, async (s, { metadata }) => {
    await s.onResponseBody(encoder.encode("{}"), true, new HeaderList());
    assertEquals([...metadata.entries()], [["io.envoy.ai_gateway", { llm_total_token: 42 }]]);
  });
});

Deno.test("ExtProcFilterStream turns an immediate response into a local reply, dropping headers the rules forbid", async () => {
  const reply = immediateResponse({
    status: 418,
    body: "short and stout",
    contentType: "text/plain",
    headers: { "x-envoy-secret": "no", "x-ok": "yes" },
    details: "teapot",
  });
  await withStream(() => ({ reply }), {}, async (s) => {
    const r = await s.onRequestHeaders(requestHeaders(), false);
    assert(r.kind === "respond");
    assertEquals([r.reply.status, decoder.decode(r.reply.body), r.reply.details], [418, "short and stout", "teapot"]);
    assertEquals(r.reply.headers, [["content-type", "text/plain"], ["x-ok", "yes"]]);
  });
});

Deno.test("ExtProcFilterStream continues without the processor after a clean close by the server", async () => {
  await withStream(() => ({ close: "ok" }), {}, async (s, { seen }) => {
    assertEquals((await s.onRequestHeaders(requestHeaders(), false)).kind, "continue");
    assertEquals((await s.onRequestBody(encoder.encode("{}"), true, requestHeaders())).kind, "continue");
    assertEquals(seen().length, 1);
  });
});

for (const failureModeAllow of [false, true]) {
  Deno.test(`ExtProcFilterStream on a gRPC error ${failureModeAllow ? "continues (failure_mode_allow)" : "answers 500"}`, async () => {
    await withStream(() => ({ fail: grpc.status.UNAVAILABLE }), { failureModeAllow }, async (s) => {
      const r = await s.onRequestHeaders(requestHeaders(), false);
      if (failureModeAllow) assertEquals(r.kind, "continue");
      else assert(r.kind === "respond" && r.reply.status === 500);
    });
  });
}

Deno.test("ExtProcFilterStream treats an answer of the wrong type as a failure", async () => {
  await withStream(() => ({ reply: continueResponse("responseHeaders") }), {}, async (s) => {
    const r = await s.onRequestHeaders(requestHeaders(), false);
    assert(r.kind === "respond" && r.reply.status === 500);
    assert(s.stats.failure?.startsWith("Out-of-order response"));
  });
});

Deno.test("ExtProcFilterStream closes the stream on a spurious answer and fails the next phase", async () => {
  const script = (req: ProcessingRequest, i: number): ScriptStep =>
    i === 0 ? { reply: [continueResponse(req.request!.$case), continueResponse("requestBody")] } : continueAll(req);
  await withStream(script, {}, async (s) => {
    assertEquals((await s.onRequestHeaders(requestHeaders(), false)).kind, "continue");
    // Wait (bounded) for the spurious message to arrive over the network.
    for (let i = 0; i < 200 && s.stats.failure === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    const r = await s.onRequestBody(encoder.encode("{}"), true, requestHeaders());
    assert(r.kind === "respond" && r.reply.status === 500, JSON.stringify(r));
    assertEquals(s.stats.failure, "Spurious response from the external processor");
  });
});

Deno.test("ExtProcFilterStream answers 504 when message_timeout passes on the injected clock", async () => {
  const clock = new ManualClock();
  await withStream(() => ({ silence: true }), { messageTimeoutMs: 200 }, async (s) => {
    const pending = s.onRequestHeaders(requestHeaders(), false);
    clock.advance(199);
    clock.advance(1);
    const r = await pending;
    assert(r.kind === "respond");
    assertEquals([r.reply.status, r.reply.details], [504, "ext_proc_error_message_timeout"]);
  }, clock);
});

Deno.test("ExtProcFilterStream sends its initial metadata and the request attributes with the request headers", async () => {
  await using proc = await startScriptedExtProc(continueAll);
  const channel = new ExtProcChannel(proc.target);
  const s = new ExtProcFilterStream(
    channel,
    config(proc.target, { initialMetadata: { "x-tollgate-role": "upstream" } }),
    {
      clock: systemClock,
      metadata: new Map(),
      attributes: { "xds.route_name": "r1" },
    },
  );
  await s.onRequestHeaders(requestHeaders(), true);
  s.close();
  channel.close();
  assertEquals(proc.metadata[0]!.get("x-tollgate-role"), ["upstream"]);
  assertEquals(proc.streams[0]![0]!.attributes, { "envoy.filters.http.ext_proc": { "xds.route_name": "r1" } });
  assertEquals(
    proc.streams[0]![0]!.request?.$case === "requestHeaders" && proc.streams[0]![0]!.request.value.endOfStream,
    true,
  );
});

Deno.test("ExtProcFilterStream reports CONTINUE_AND_REPLACE on a body answer as a failure", async () => {
  const bad = continueResponse("requestBody");
  (bad.response!.value as { response: { status: number } }).response.status =
    CommonResponse_ResponseStatus.CONTINUE_AND_REPLACE;
  await withStream(() => ({ reply: bad }), {}, async (s) => {
    const r = await s.onRequestBody(encoder.encode("{}"), true, requestHeaders());
    assert(r.kind === "respond" && r.reply.status === 500);
  });
});
