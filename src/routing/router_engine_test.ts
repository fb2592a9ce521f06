import { assert, assertEquals } from "../../test/support/assert.ts";
import { ManualClock } from "../observability/clock.ts";
import type { SemanticRouterConfig } from "./config.ts";
import { type RoutingOutcome, type RoutingRequest, SemanticRouterEngine } from "./router_engine.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

function config(o: Partial<SemanticRouterConfig> = {}): SemanticRouterConfig {
  return {
    name: "default/r",
    triggerModels: ["auto"],
    routeModels: ["named"],
    defaultModel: "general",
    confidenceThreshold: 0.5,
    categories: [
      { name: "math", models: [{ model: "reasoner", score: 1, reasoning: true }] },
      { name: "chat", models: [{ model: "small", score: 1, reasoning: false }] },
    ],
    classifier: { kind: "remote", url: "http://classifier.test/classify", timeoutMs: 100 },
    keywordRules: [],
    embeddingRules: [],
    contextRules: [],
    decisions: [],
    models: [],
    reasoningFamilies: {},
    debugHeaders: true,
    ...o,
  };
}

/** Remote classifier answers from a table: text → [category, confidence]; anything else is a 500. */
function services(table: Record<string, [string, number]>, calls: string[] = []) {
  return {
    clock: new ManualClock(),
    fetch: (url: string | URL | Request, init?: RequestInit) => {
      calls.push(String(url));
      const { text } = JSON.parse(String(init!.body));
      const hit = table[text];
      if (!hit) return Promise.resolve(new Response("boom", { status: 500 }));
      return Promise.resolve(Response.json({ category: hit[0], confidence: hit[1] }));
    },
  };
}

const request = (content: string, o: Partial<RoutingRequest> = {}): RoutingRequest => ({
  endpoint: "chatCompletions",
  model: "auto",
  stream: false,
  body: { model: o.model ?? "auto", messages: [{ role: "user", content }] },
  headers: new Map([["x-tollgate-debug", "true"]]),
  ...o,
});

const routed = (o: RoutingOutcome) => {
  assert(o.kind === "routed", `expected routed, got ${o.kind}`);
  return o;
};

Deno.test("a confident category picks its best model; the body gets the model", async () => {
  const engine = new SemanticRouterEngine(config(), services({ "2+2?": ["math", 0.9] }));
  const o = routed(await engine.route(request("2+2?"), new AbortController().signal));
  assertEquals(o.model, "reasoner");
  assertEquals(o.body?.model, "reasoner");
  assertEquals(o.headers["x-tollgate-category"], "math");
  assertEquals(o.headers["x-tollgate-confidence"], "0.900");
  assertEquals(o.headers["x-tollgate-routing-reason"], "category:math");
});

Deno.test("low confidence and classifier errors fall back to the default model with the reason recorded", async () => {
  const engine = new SemanticRouterEngine(config(), services({ "hmm": ["chat", 0.3] }));
  const low = routed(await engine.route(request("hmm"), new AbortController().signal));
  assertEquals([low.model, low.headers["x-tollgate-routing-reason"]], ["general", "low_confidence:chat(0.300)"]);
  assertEquals(low.headers["x-tollgate-category"], undefined);
  const failed = routed(await engine.route(request("unknown to the classifier"), new AbortController().signal));
  assertEquals(failed.model, "general");
  assertEquals(
    failed.headers["x-tollgate-routing-reason"],
    "classifier_error: The classifier at http://classifier.test/classify answered 500",
  );
  assertEquals(failed.headers["x-tollgate-confidence"], undefined);
});

Deno.test("a request naming a model of a routing-enabled route falls back to that model", async () => {
  const engine = new SemanticRouterEngine(config(), services({}));
  const o = routed(await engine.route(request("anything", { model: "named" }), new AbortController().signal));
  assertEquals([o.model, o.body], ["named", undefined]);
  assertEquals([engine.routes("auto"), engine.routes("named"), engine.routes("other")], [
    "trigger",
    "route",
    undefined,
  ]);
});

Deno.test("debug headers appear only when asked for and allowed", async () => {
  const engine = new SemanticRouterEngine(config(), services({ q: ["math", 0.9] }));
  const quiet = routed(await engine.route(request("q", { headers: new Map() }), new AbortController().signal));
  assertEquals(quiet.headers["x-tollgate-signals"], undefined);
  const off = new SemanticRouterEngine(config({ debugHeaders: false }), services({ q: ["math", 0.9] }));
  assertEquals(
    routed(await off.route(request("q"), new AbortController().signal)).headers["x-tollgate-signals"],
    undefined,
  );
});

Deno.test("the PII guard blocks with 403 pii_detected and never echoes the value", async () => {
  const engine = new SemanticRouterEngine(
    config({ pii: { action: "block", types: [], allow: [] } }),
    services({}),
  );
  const o = await engine.route(request("mail me at jane@example.com"), new AbortController().signal);
  assert(o.kind === "blocked");
  assertEquals([o.error.status, o.error.code], [403, "pii_detected"]);
  assert(!o.error.message.includes("jane@"), o.error.message);
  const allowed = new SemanticRouterEngine(
    config({ pii: { action: "block", types: [], allow: ["jane@example.com"] } }),
    services({ "mail me at jane@example.com": ["chat", 0.9] }),
  );
  assertEquals(
    (await allowed.route(request("mail me at jane@example.com"), new AbortController().signal)).kind,
    "routed",
  );
});

Deno.test("a remote jailbreak classifier that is down fails open or closed as configured", async () => {
  // Nothing listens on the discard port: the classifier is down.
  const remote = { url: "http://127.0.0.1:9/", timeoutMs: 100 };
  const open = new SemanticRouterEngine(
    config({ jailbreak: { threshold: 0.5, remote: { ...remote, failureMode: "open" } } }),
    services({ "hello": ["chat", 0.9] }),
  );
  const passed = routed(await open.route(request("hello"), new AbortController().signal));
  assert(passed.headers["x-tollgate-signals"]!.includes("jailbreak_classifier_unavailable"));
  const closed = new SemanticRouterEngine(
    config({ jailbreak: { threshold: 0.5, remote: { ...remote, failureMode: "closed" } } }),
    services({ "hello": ["chat", 0.9] }),
  );
  const o = await closed.route(request("hello"), new AbortController().signal);
  assert(o.kind === "blocked");
  assertEquals([o.error.status, o.error.code], [503, "guard_unavailable"]);
});

Deno.test("the cache answers a stored question, as SSE for a stream, and no-store leaves it alone", async () => {
  const cache = {
    mode: "exact" as const,
    threshold: 0.9,
    ttlMs: 60_000,
    maxEntries: 10,
    backend: "memory" as const,
    bucket: "b",
    maxResponseBytes: 1000,
  };
  const engine = new SemanticRouterEngine(config({ cache }), services({ "capital?": ["chat", 0.9] }));
  const first = routed(await engine.route(request("capital?"), new AbortController().signal));
  assertEquals(first.headers["x-tollgate-cache"], "miss");
  const store = first.cacheStore!;
  const answer = {
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content: "Paris" }, finish_reason: "stop" }],
  };
  store.writer.send({
    type: "store",
    query: store.query,
    response: { body: encoder.encode(JSON.stringify(answer)), contentType: "application/json" },
  });
  // The writer stores asynchronously (hashing is async): give it its turns.
  let hit: RoutingOutcome | undefined;
  for (let i = 0; i < 50 && hit?.kind !== "cached"; i++) {
    await new Promise((r) => setTimeout(r, 1));
    hit = await engine.route(request("capital?"), new AbortController().signal);
  }
  assert(hit?.kind === "cached", `expected a hit, got ${hit?.kind}`);
  assertEquals(JSON.parse(decoder.decode(hit.reply.body)).choices[0].message.content, "Paris");
  const sse = await engine.route(
    request("capital?", {
      stream: true,
      body: { model: "auto", stream: true, messages: [{ role: "user", content: "capital?" }] },
    }),
    new AbortController().signal,
  );
  assert(sse.kind === "cached" && sse.reply.contentType === "text/event-stream");
  // Other parameters make another question.
  const hotter = await engine.route(
    request("capital?", { body: { model: "auto", temperature: 1, messages: [{ role: "user", content: "capital?" }] } }),
    new AbortController().signal,
  );
  assertEquals(hotter.kind, "routed");
  const noStore = routed(
    await engine.route(
      request("capital?", { headers: new Map([["cache-control", "no-store"]]) }),
      new AbortController().signal,
    ),
  );
  assertEquals([noStore.cacheStore, noStore.headers["x-tollgate-cache"]], [undefined, undefined]);
});

Deno.test("tools are trimmed to top-k only when tool_choice is auto", async () => {
  const engine = new SemanticRouterEngine(
    config({ toolSelection: { topK: 1 } }),
    services({ "weather in Paris": ["chat", 0.9] }),
  );
  const tools = [
    { type: "function", function: { name: "send_email", description: "Send an email" } },
    { type: "function", function: { name: "get_weather", description: "Weather for a city" } },
  ];
  const body = { model: "auto", tools, messages: [{ role: "user", content: "weather in Paris" }] };
  const o = routed(await engine.route(request("weather in Paris", { body }), new AbortController().signal));
  assertEquals((o.body!.tools as typeof tools).map((t) => t.function.name), ["get_weather"]);
  const forced = routed(
    await engine.route(
      request("weather in Paris", { body: { ...body, tool_choice: "required" } }),
      new AbortController().signal,
    ),
  );
  assertEquals((forced.body!.tools as typeof tools).length, 2);
});

Deno.test("routing rejects with the stream's reason when the stream is cancelled mid-call", async () => {
  const engine = new SemanticRouterEngine(config(), {
    clock: new ManualClock(),
    // Like fetch: rejects at once on a signal already aborted, else when it aborts.
    fetch: (_u, init) =>
      new Promise((_r, reject) => {
        if (init!.signal!.aborted) reject(new Error("aborted"));
        init!.signal!.addEventListener("abort", () => reject(new Error("aborted")));
      }),
  });
  const controller = new AbortController();
  const pending = engine.route(request("slow"), controller.signal).catch((e) => e);
  controller.abort(new Error("stream closed"));
  assertEquals(((await pending) as Error).message, "stream closed");
});
