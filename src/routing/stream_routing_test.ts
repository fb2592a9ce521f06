// The router stream machine with semantic routing: the request-body reply that Envoy re-routes on, the response
// headers, cancellation of routing calls, blocks in the client's format, and what reaches the cache.
import { createActor } from "xstate";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { type RouterInput, routerStreamMachine } from "../actors/router_stream.ts";
import type { StreamEmitted } from "../actors/envoy_events.ts";
import { buildSnapshot, modelInfo } from "../control/snapshot.ts";
import { type ProcessingResponse, routerProcessingMode } from "../protocol/ext_proc.ts";
import { bodyRequest, headersRequest } from "../protocol/ext_proc_request.ts";
import { toEnvoyEvent } from "../actors/envoy_events.ts";
import { ManualClock } from "../observability/clock.ts";
import type { CachedResponse, CacheQuery } from "./cache.ts";
import type { SemanticRouterConfig } from "./config.ts";
import type { RoutingServices } from "./router_engine.ts";

const decoder = new TextDecoder();

const ROUTER: SemanticRouterConfig = {
  name: "default/r",
  triggerModels: ["auto"],
  routeModels: [],
  defaultModel: "general",
  confidenceThreshold: 0.5,
  categories: [{ name: "math", models: [{ model: "reasoner", score: 1, reasoning: true }] }],
  classifier: { kind: "remote", url: "http://classifier.test/", timeoutMs: 1000 },
  keywordRules: [],
  embeddingRules: [],
  contextRules: [],
  decisions: [],
  models: [{
    model: "reasoner",
    reasoningFamily: "qwen3",
    pii: { allowByDefault: true, allowed: [], denied: ["us_ssn"] },
  }],
  reasoningFamilies: { qwen3: { type: "chat_template_kwargs", parameter: "enable_thinking" } },
  pii: { action: "block", types: ["us_ssn"], allow: [] },
  cache: {
    mode: "exact",
    threshold: 0.9,
    ttlMs: 60_000,
    maxEntries: 10,
    backend: "memory",
    bucket: "b",
    maxResponseBytes: 10_000,
  },
  debugHeaders: true,
};

interface Harness {
  readonly send: (e: ReturnType<typeof toEnvoyEvent>) => void;
  readonly replies: () => ProcessingResponse[];
  readonly actor: ReturnType<typeof createActor<typeof routerStreamMachine>>;
  readonly aborted: { count: number };
  readonly stored: { query: CacheQuery; response: CachedResponse }[];
}

function start(path = "/v1/chat/completions"): Harness {
  const aborted = { count: 0 };
  const stored: { query: CacheQuery; response: CachedResponse }[] = [];
  const routing: RoutingServices = {
    clock: new ManualClock(),
    // The classifier says math, unless the text asks it to hang until cancelled.
    fetch: (_u, init) =>
      new Promise((resolve, reject) => {
        const { text } = JSON.parse(String(init!.body));
        if (text !== "hang") return resolve(Response.json({ category: "math", confidence: 0.9 }));
        init!.signal!.addEventListener("abort", () => {
          aborted.count++;
          reject(new Error("aborted"));
        });
      }),
    createCache: () => ({
      lookup: () => Promise.resolve(undefined),
      store: (query, response) => {
        stored.push({ query, response });
        return Promise.resolve();
      },
    }),
  };
  const input: RouterInput = {
    streamId: "s1",
    snapshot: buildSnapshot(1, {
      models: ["auto", "general", "reasoner"].map((m) => modelInfo(m)),
      semanticRouters: [ROUTER],
    }),
    mode: routerProcessingMode(),
    maxBodyBytes: 1 << 20,
    routing,
  };
  const emitted: StreamEmitted[] = [];
  const actor = createActor(routerStreamMachine, { id: "s1", input });
  actor.on("*", (e) => emitted.push(e as StreamEmitted));
  actor.start();
  actor.send(toEnvoyEvent(headersRequest("requestHeaders", { ":method": "POST", ":path": path }, false))!);
  return {
    send: (e) => actor.send(e!),
    replies: () =>
      emitted.filter((e) => e.type === "reply").map((e) => (e as { response: ProcessingResponse }).response),
    actor,
    aborted,
    stored,
  };
}

const chat = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: "auto", messages: [{ role: "user", content }], ...extra });

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}

function mutation(r: ProcessingResponse) {
  const common = (r.response?.value as {
    response?: {
      headerMutation?: { setHeaders: { header?: { key: string; rawValue: Uint8Array } }[] };
      bodyMutation?: { mutation?: { $case: string; value: Uint8Array } };
      clearRouteCache: boolean;
    };
  }).response!;
  const headers = Object.fromEntries(
    (common.headerMutation?.setHeaders ?? []).map((h) => [h.header!.key, decoder.decode(h.header!.rawValue)]),
  );
  const body = common.bodyMutation?.mutation?.$case === "body"
    ? decoder.decode(common.bodyMutation.mutation.value)
    : undefined;
  return { headers, body, clearRouteCache: common.clearRouteCache };
}

Deno.test("the request body reply carries the chosen model in header and body, and clears the route cache", async () => {
  const h = start();
  const raw = chat("integrate x");
  h.send(toEnvoyEvent(bodyRequest("requestBody", raw, true)));
  await settle();
  const m = mutation(h.replies().at(-1)!);
  assertEquals(m.headers["x-ai-eg-model"], "reasoner");
  assertEquals(m.clearRouteCache, true);
  const body = JSON.parse(m.body!);
  assertEquals([body.model, body.chat_template_kwargs], ["reasoner", { enable_thinking: true }]);
  assertEquals(m.headers["content-length"], String(new TextEncoder().encode(m.body!).length));
  assertEquals((h.actor.getSnapshot().context.route as { model: string }).model, "reasoner");

  // The response headers carry the decision; a complete 2xx JSON answer goes to the cache.
  h.send(
    toEnvoyEvent(headersRequest("responseHeaders", { ":status": "200", "content-type": "application/json" }, false)),
  );
  const rh = mutation(h.replies().at(-1)!);
  assertEquals([rh.headers["x-tollgate-selected-model"], rh.headers["x-tollgate-category"]], ["reasoner", "math"]);
  const answer = JSON.stringify({
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content: "x^2/2" }, finish_reason: "stop" }],
  });
  h.send(toEnvoyEvent(bodyRequest("responseBody", answer, true)));
  await settle();
  assertEquals(h.stored.length, 1);
  assertEquals(decoder.decode(h.stored[0]!.response.body), answer);
  assertEquals(h.actor.getSnapshot().status, "done");
});

Deno.test("an error answer is not cached", async () => {
  const h = start();
  h.send(toEnvoyEvent(bodyRequest("requestBody", chat("integrate y"), true)));
  await settle();
  h.send(toEnvoyEvent(headersRequest("responseHeaders", { ":status": "500" }, false)));
  h.send(toEnvoyEvent(bodyRequest("responseBody", `{"error":{"message":"boom"}}`, true)));
  await settle();
  assertEquals(h.stored.length, 0);
});

Deno.test("Envoy closing the stream while routing waits on the classifier cancels the call", async () => {
  const h = start();
  h.send(toEnvoyEvent(bodyRequest("requestBody", chat("hang"), true)));
  await settle();
  assertEquals(h.actor.getSnapshot().value, "selecting");
  h.actor.send({ type: "envoy.closed" });
  await settle();
  assertEquals(h.aborted.count, 1);
  assertEquals(h.actor.getSnapshot().output?.outcome, "aborted");
});

Deno.test("a guard block answers 403 in the client's own error format", async () => {
  const h = start("/anthropic/v1/messages");
  h.send(toEnvoyEvent(bodyRequest("requestBody", chat("my ssn is 123-45-6789", { max_tokens: 10 }), true)));
  await settle();
  const r = h.replies().at(-1)!;
  assert(r.response?.$case === "immediateResponse");
  assertEquals(r.response.value.status?.code, 403);
  assertEquals(JSON.parse(decoder.decode(r.response.value.body)), {
    type: "error",
    error: { type: "invalid_request_error", message: "The request was blocked: it contains personal data (us_ssn)" },
  });
  assertEquals(h.actor.getSnapshot().output?.outcome, "rejected");
});
