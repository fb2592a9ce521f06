import { createActor } from "xstate";
import { assertEquals } from "../../test/support/assert.ts";
import { routerStreamMachine } from "./router_stream.ts";
import { type StreamEmitted, toEnvoyEvent } from "./envoy_events.ts";
import { type ProcessingResponse, routerProcessingMode } from "../protocol/ext_proc.ts";
import { bodyRequest, headersRequest } from "../protocol/ext_proc_request.ts";
import { buildSnapshot, modelInfo } from "../control/snapshot.ts";
import { compileCosts } from "../usage/costs.ts";
import type { UsageEvent } from "../usage/usage_event.ts";

const costs = compileCosts([
  { route: "default/chat", metadataKey: "llm_total_token", type: "TotalToken" },
  { route: "default/chat", metadataKey: "weighted", type: "CEL", cel: "input_tokens + output_tokens * 3u" },
]);
if (!costs.ok) throw new Error("test costs do not compile");

const snapshot = buildSnapshot(3, {
  models: [modelInfo("gpt-4o-mini")],
  backends: [{ name: "default/openai", schema: { name: "OpenAI" } }],
  backendRefs: [{ id: "ref", backend: "default/openai", route: "default/chat" }],
  routeCosts: new Map([["default/chat", costs.costs]]),
  rateLimits: new Map([["edge-route", {
    domain: "ai-gateway",
    entries: [{
      actions: [{ kind: "requestHeaders", headerName: "x-user-id", descriptorKey: "user", skipIfAbsent: false }],
      applyOnStreamDone: true,
      hitsAddend: { metadata: { namespace: "io.envoy.ai_gateway", key: "llm_total_token" } },
    }],
  }]]),
});

function run(status: string) {
  const emitted: StreamEmitted[] = [];
  let clock = 1_767_225_600_000;
  const actor = createActor(routerStreamMachine, {
    id: "r",
    input: { streamId: "s", snapshot, mode: routerProcessingMode(), maxBodyBytes: 1 << 20, now: () => (clock += 10) },
  });
  actor.on("*", (e) => emitted.push(e as StreamEmitted));
  actor.start();
  const send = (r: Parameters<typeof toEnvoyEvent>[0]) => actor.send(toEnvoyEvent(r)!);
  send(headersRequest("requestHeaders", { ":method": "POST", ":path": "/v1/chat/completions", "x-user-id": "alice" }));
  send(bodyRequest("requestBody", `{"model":"gpt-4o-mini","messages":[]}`));
  actor.send({ type: "attempt.started", backend: "default/openai", backendRef: "ref", route: "edge-route" });
  send(headersRequest("responseHeaders", { ":status": status, "content-type": "application/json" }));
  send(bodyRequest(
    "responseBody",
    JSON.stringify({
      model: "gpt-4o-mini-2024",
      choices: [],
      usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 },
    }),
  ));
  const replies = emitted.filter((e) => e.type === "reply").map((e) =>
    (e as { response: ProcessingResponse }).response
  );
  const usage = emitted.filter((e) => e.type === "usage").map((e) => (e as { event: UsageEvent }).event);
  return { replies, usage };
}

Deno.test("a 2xx response writes its costs to dynamic metadata and publishes one usage event with its descriptors", () => {
  const { replies, usage } = run("200");
  assertEquals(replies.at(-1)!.dynamicMetadata, {
    "io.envoy.ai_gateway": {
      model: "gpt-4o-mini",
      response_model: "gpt-4o-mini-2024",
      backend: "default/openai",
      input_tokens: 10,
      output_tokens: 4,
      total_tokens: 14,
      llm_total_token: 14,
      weighted: 22,
    },
  });
  assertEquals(usage.length, 1);
  const e = usage[0]!;
  assertEquals([e.route, e.backend, e.status, e.stream], ["default/chat", "default/openai", 200, false]);
  assertEquals(e.models, { requested: "gpt-4o-mini", responded: "gpt-4o-mini-2024" });
  assertEquals(e.tokens, { inputTokens: 10, outputTokens: 4, totalTokens: 14 });
  assertEquals(e.costs, { llm_total_token: 14, weighted: 22 });
  assertEquals(e.descriptors, [{ domain: "ai-gateway", entries: [{ key: "user", value: "alice" }], hitsAddend: 14 }]);
  assertEquals(e.latencyMs > 0, true);
});

Deno.test("an error response is not billed: no costs and no descriptors, but still one usage event", () => {
  const { usage } = run("500");
  assertEquals([usage.length, usage[0]!.status], [1, 500]);
  assertEquals([usage[0]!.costs, usage[0]!.descriptors], [{}, []]);
});
