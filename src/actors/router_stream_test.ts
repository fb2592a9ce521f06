import { createActor } from "xstate";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { type RouterInput, routerStreamMachine } from "./router_stream.ts";
import { BodyMode, HeaderMode, type ProcessingResponse, routerProcessingMode } from "../protocol/ext_proc.ts";
import { bodyRequest, headersRequest } from "../protocol/ext_proc_request.ts";
import { type EnvoyEvent, type StreamEmitted, toEnvoyEvent } from "./envoy_events.ts";
import { defaultSnapshot } from "../control/snapshot.ts";
import { HeaderValueOption_HeaderAppendAction } from "../protocol/gen/envoy/config/core/v3/base.ts";

const decoder = new TextDecoder();

function start(overrides: Partial<RouterInput> = {}) {
  const emitted: StreamEmitted[] = [];
  const actor = createActor(routerStreamMachine, {
    id: "stream-1",
    input: {
      streamId: "req-1",
      snapshot: defaultSnapshot(["gpt-4o-mini"]),
      mode: routerProcessingMode(),
      maxBodyBytes: 1024,
      ...overrides,
    },
  });
  actor.on("*", (e) => emitted.push(e as StreamEmitted));
  actor.start();
  const send = (e: EnvoyEvent) => actor.send(e);
  const replies = () =>
    emitted.filter((e) => e.type === "reply").map((e) => (e as { response: ProcessingResponse }).response);
  return { actor, emitted, send, replies };
}

const ev = (r: ReturnType<typeof headersRequest>) => toEnvoyEvent(r)!;
const chatHeaders = { ":method": "POST", ":path": "/v1/chat/completions?x=1" };
const reqHeaders = (h: Record<string, string> = chatHeaders, eos = false) =>
  ev(headersRequest("requestHeaders", h, eos));
const reqBody = (b: string, eos = true) => ev(bodyRequest("requestBody", b, eos));
const respHeaders = (eos = false) => ev(headersRequest("responseHeaders", { ":status": "200" }, eos));
const respBody = (b: string, eos = true) => ev(bodyRequest("responseBody", b, eos));
const chat = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], ...extra });

function immediate(r: ProcessingResponse | undefined) {
  assert(r?.response?.$case === "immediateResponse", `expected an immediate response, got ${r?.response?.$case}`);
  const v = r.response.value;
  return { status: v.status?.code as number, body: JSON.parse(decoder.decode(v.body)), details: v.details };
}

function setHeaders(r: ProcessingResponse | undefined) {
  const v = r?.response?.value as {
    response?: {
      headerMutation?: { setHeaders: { header?: { key: string; rawValue: Uint8Array }; appendAction: number }[] };
    };
  };
  return v.response?.headerMutation?.setHeaders ?? [];
}

Deno.test("routerStreamMachine answers a non-streaming chat lifecycle phase by phase and ends done", () => {
  const s = start();
  s.send(reqHeaders());
  s.send(reqBody(chat()));
  s.send(respHeaders());
  s.send(respBody(`{"choices":[]}`));
  assertEquals(s.replies().map((r) => r.response?.$case), [
    "requestHeaders",
    "requestBody",
    "responseHeaders",
    "responseBody",
  ]);
  const snap = s.actor.getSnapshot();
  assertEquals(snap.value, "done");
  assertEquals(snap.output?.outcome, "done");
  assertEquals(snap.output?.model, "gpt-4o-mini");
  assertEquals(snap.output?.responseStatus, 200);
});

Deno.test("routerStreamMachine sets the model, original path and request id, overwriting client copies", () => {
  const s = start();
  s.send(reqHeaders({ ...chatHeaders, "x-ai-eg-model": "evil" }));
  s.send(reqBody(chat()));
  const set = setHeaders(s.replies()[1]);
  const byKey = Object.fromEntries(set.map((h) => [h.header!.key, decoder.decode(h.header!.rawValue)]));
  assertEquals(byKey, {
    "x-ai-eg-model": "gpt-4o-mini",
    "x-ai-eg-original-path": "/v1/chat/completions?x=1",
    "x-tollgate-request-id": "req-1",
  });
  for (const h of set) assertEquals(h.appendAction, HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
  const body = s.replies()[1]!.response!.value as { response?: { clearRouteCache: boolean } };
  assertEquals(body.response?.clearRouteCache, true);
  assertEquals(s.replies()[1]!.modeOverride, undefined);
});

Deno.test("routerStreamMachine switches the response body to STREAMED for a streaming request and answers every chunk", () => {
  const s = start();
  s.send(reqHeaders());
  s.send(reqBody(chat({ stream: true })));
  assertEquals(s.replies()[1]!.modeOverride, undefined);
  s.send(respHeaders());
  // Envoy honours mode_override only in answer to a headers message.
  assertEquals(s.replies()[2]!.modeOverride?.responseBodyMode, BodyMode.STREAMED);
  s.send(respBody("data: {}\n\n", false));
  s.send(respBody("data: {}\n\n", false));
  assertEquals(s.actor.getSnapshot().value, "responseBody");
  s.send(respBody("data: [DONE]\n\n", true));
  assertEquals(s.replies().filter((r) => r.response?.$case === "responseBody").length, 3);
  assertEquals(s.actor.getSnapshot().value, "done");
});

Deno.test("routerStreamMachine rejects a malformed body with 400 in OpenAI's error format", () => {
  const s = start();
  s.send(reqHeaders());
  s.send(reqBody("{not json"));
  const r = immediate(s.replies()[1]);
  assertEquals(r.status, 400);
  assertEquals(r.body.error.type, "invalid_request_error");
  assert(String(r.body.error.message).startsWith("The request body is not valid JSON"));
  assertEquals(s.actor.getSnapshot().value, "failed");
  assertEquals(s.actor.getSnapshot().output?.outcome, "rejected");
});

const badBodies: Array<[string, string, string | null]> = [
  ["[]", "The request body must be a JSON object", null],
  [`{"messages":[]}`, "'model' is required and must be a non-empty string", "model"],
  [`{"model":"gpt-4o-mini"}`, "'messages' is required and must be an array", "messages"],
  [`{"model":"a\\r\\nx-evil: 1","messages":[]}`, "'model' must be printable ASCII of at most 256 characters", "model"],
  [`{"model":"gpt-4o-mini","messages":[],"stream":"yes"}`, "'stream' must be a boolean", "stream"],
];
for (const [body, message, param] of badBodies) {
  Deno.test(`routerStreamMachine answers 400 for ${body}`, () => {
    const s = start();
    s.send(reqHeaders());
    s.send(reqBody(body));
    const r = immediate(s.replies()[1]);
    assertEquals([r.status, r.body.error.message, r.body.error.param], [400, message, param]);
  });
}

Deno.test("routerStreamMachine answers 404 model_not_found for a model the gateway does not serve", () => {
  const s = start();
  s.send(reqHeaders());
  s.send(reqBody(chat({ model: "gpt-9" })));
  const r = immediate(s.replies()[1]);
  assertEquals([r.status, r.body.error.code], [404, "model_not_found"]);
});

Deno.test("routerStreamMachine answers 404 for an unknown path and 405 for a wrong method at the headers phase", () => {
  const a = start();
  a.send(reqHeaders({ ":method": "POST", ":path": "/v1/nope" }));
  const r = immediate(a.replies()[0]);
  assertEquals(r.status, 404);
  assert(String(r.body.error.message).includes("/v1/nope"));
  const b = start();
  b.send(reqHeaders({ ":method": "GET", ":path": "/v1/chat/completions" }));
  assertEquals(immediate(b.replies()[0]).status, 405);
});

Deno.test("routerStreamMachine answers GET /v1/models locally from the configured list", () => {
  const s = start();
  s.send(reqHeaders({ ":method": "GET", ":path": "/v1/models" }, true));
  const r = immediate(s.replies()[0]);
  assertEquals(r.status, 200);
  assertEquals(r.body.object, "list");
  assertEquals(r.body.data.map((m: { id: string }) => m.id), ["gpt-4o-mini"]);
  assertEquals(s.actor.getSnapshot().value, "done");
});

Deno.test("routerStreamMachine rejects a POST whose headers end the stream (no body) with 400", () => {
  const s = start();
  s.send(reqHeaders(chatHeaders, true));
  assertEquals(immediate(s.replies()[0]).status, 400);
});

Deno.test("routerStreamMachine accumulates a body sent in chunks and answers each chunk", () => {
  const s = start();
  s.send(reqHeaders());
  const body = chat();
  s.send(reqBody(body.slice(0, 10), false));
  s.send(reqBody(body.slice(10), true));
  assertEquals(s.replies().map((r) => r.response?.$case), ["requestHeaders", "requestBody", "requestBody"]);
  assertEquals(
    decoder.decode(setHeaders(s.replies()[2]).find((h) => h.header?.key === "x-ai-eg-model")!.header!.rawValue),
    "gpt-4o-mini",
  );
});

Deno.test("routerStreamMachine answers 413 when a chunked body passes the cap", () => {
  const s = start({ maxBodyBytes: 16 });
  s.send(reqHeaders());
  s.send(reqBody("x".repeat(10), false));
  s.send(reqBody("x".repeat(10), true));
  assertEquals(immediate(s.replies()[2]).status, 413);
});

Deno.test("routerStreamMachine treats a body before the headers as a protocol violation", () => {
  const s = start();
  s.send(reqBody(chat()));
  assertEquals(s.replies().length, 0);
  const v = s.emitted.find((e) => e.type === "violation");
  assertEquals(v, { type: "violation", message: "Protocol violation: received requestBody while in requestHeaders" });
  assertEquals(s.actor.getSnapshot().output?.outcome, "protocol");
});

Deno.test("routerStreamMachine treats a second request headers message as a protocol violation", () => {
  const s = start();
  s.send(reqHeaders());
  s.send(reqHeaders());
  assertEquals(s.actor.getSnapshot().output?.outcome, "protocol");
});

Deno.test("routerStreamMachine ends aborted, without replying, when Envoy closes mid-request", () => {
  const s = start();
  s.send(reqHeaders());
  s.send({ type: "envoy.closed" });
  assertEquals(s.replies().length, 1);
  assertEquals(s.actor.getSnapshot().output?.failure, { kind: "aborted", phase: "requestBody" });
  assertEquals(s.actor.getSnapshot().status, "done");
});

Deno.test("routerStreamMachine follows a mode without response headers: the body comes straight after routing", () => {
  const s = start({ mode: { ...routerProcessingMode(), responseHeaderMode: HeaderMode.SKIP } });
  s.send(reqHeaders());
  s.send(reqBody(chat()));
  s.send(respBody("{}"));
  assertEquals(s.replies().map((r) => r.response?.$case), ["requestHeaders", "requestBody", "responseBody"]);
  assertEquals(s.actor.getSnapshot().value, "done");
});

Deno.test("routerStreamMachine finishes after the response headers when no response body is sent", () => {
  const s = start({ mode: { ...routerProcessingMode(), responseBodyMode: BodyMode.NONE } });
  s.send(reqHeaders());
  s.send(reqBody(chat({ stream: true })));
  s.send(respHeaders());
  assertEquals(s.replies()[2]!.modeOverride, undefined);
  assertEquals(s.actor.getSnapshot().value, "done");
});

Deno.test("routerStreamMachine answers response trailers when the mode sends them", () => {
  const s = start({ mode: { ...routerProcessingMode(), responseTrailerMode: HeaderMode.SEND } });
  s.send(reqHeaders());
  s.send(reqBody(chat()));
  s.send(respHeaders());
  s.send(respBody("{}", true));
  assertEquals(s.actor.getSnapshot().value, "responseBody");
  s.send(
    toEnvoyEvent({
      request: { $case: "responseTrailers", value: { trailers: { headers: [] } } },
      metadataContext: undefined,
      attributes: {},
      observabilityMode: false,
    })!,
  );
  assertEquals(s.replies().at(-1)!.response?.$case, "responseTrailers");
  assertEquals(s.actor.getSnapshot().value, "done");
});

Deno.test("routerStreamMachine counts the upstream attempts of its request", () => {
  const s = start();
  s.send(reqHeaders());
  s.send(reqBody(chat()));
  s.actor.send({ type: "attempt.started", backend: undefined, backendRef: undefined });
  s.actor.send({ type: "attempt.started", backend: undefined, backendRef: undefined });
  s.send(respHeaders(true));
  assertEquals(s.actor.getSnapshot().output?.attempts, 2);
});

Deno.test("routerStreamMachine streams the response body when the upstream answers with an event stream", () => {
  const s = start();
  s.send(reqHeaders());
  s.send(reqBody(chat()));
  s.send(ev(headersRequest("responseHeaders", { ":status": "200", "content-type": "text/event-stream" })));
  assertEquals(s.replies()[2]!.modeOverride?.responseBodyMode, BodyMode.STREAMED);
});

Deno.test("routerStreamMachine answers 415 for a body that is not declared JSON", () => {
  const s = start();
  s.send(reqHeaders({ ...chatHeaders, "content-type": "application/x-www-form-urlencoded" }));
  const r = immediate(s.replies()[0]);
  assertEquals([r.status, r.body.error.code], [415, "unsupported_media_type"]);
  const ok = start();
  ok.send(reqHeaders({ ...chatHeaders, "content-type": "application/json; charset=utf-8" }));
  assertEquals(ok.replies()[0]!.response?.$case, "requestHeaders");
});

Deno.test("routerStreamMachine answers errors on Anthropic paths in Anthropic's format", () => {
  const s = start();
  s.send(reqHeaders({ ":method": "POST", ":path": "/anthropic/v1/messages" }));
  s.send(reqBody("{oops"));
  const r = immediate(s.replies()[1]);
  assertEquals([r.status, r.body.type, r.body.error.type], [400, "error", "invalid_request_error"]);
});
