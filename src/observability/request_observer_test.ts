import { createActor } from "xstate";
import { Registry } from "prom-client";
import { assertEquals } from "../../test/support/assert.ts";
import { routerStreamMachine } from "../actors/router_stream.ts";
import { routerProcessingMode } from "../protocol/ext_proc.ts";
import { bodyRequest, headersRequest } from "../protocol/ext_proc_request.ts";
import { toEnvoyEvent } from "../actors/envoy_events.ts";
import { defaultSnapshot } from "../control/snapshot.ts";
import { ExtProcMetrics } from "./extproc_metrics.ts";
import { RequestObserver } from "./request_observer.ts";
import { silentLogger } from "./logger.ts";

function router() {
  const actor = createActor(routerStreamMachine, {
    input: {
      streamId: "req-1",
      snapshot: defaultSnapshot(["gpt-4o-mini"]),
      mode: routerProcessingMode(),
      maxBodyBytes: 1 << 20,
    },
  });
  actor.start();
  return actor;
}

const chat = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });
const headers = (h: Record<string, string>) => toEnvoyEvent(headersRequest("requestHeaders", h, false))!;

async function durations(registry: Registry) {
  const { values } = await registry.getSingleMetric("gen_ai_server_request_duration_seconds")!.get();
  return values.filter((v) => (v as { metricName?: string }).metricName?.endsWith("_count"))
    .map((v) => [v.labels.gen_ai_request_model, v.labels.error_type, v.value]);
}

function observer(registry: Registry) {
  return new RequestObserver({ registry, extproc: new ExtProcMetrics(registry), logger: silentLogger() });
}

Deno.test("a router stream stopped before it finished (Envoy cancelled it) is counted as aborted", async () => {
  const registry = new Registry();
  const o = observer(registry);
  const r = router();
  r.send(headers({ ":method": "POST", ":path": "/v1/chat/completions" }));
  r.send(toEnvoyEvent(bodyRequest("requestBody", chat, true))!);
  r.stop();
  o.routerClosed("req-1", r);
  assertEquals(await durations(registry), [["gpt-4o-mini", "aborted", 1]]);
});

Deno.test("a router stream that completed is counted with its status; /v1/models is not a GenAI operation", async () => {
  const registry = new Registry();
  const o = observer(registry);
  const r = router();
  r.send(headers({ ":method": "POST", ":path": "/v1/chat/completions" }));
  r.send(toEnvoyEvent(bodyRequest("requestBody", chat, true))!);
  r.send(toEnvoyEvent(headersRequest("responseHeaders", { ":status": "200" }, false))!);
  r.send(toEnvoyEvent(bodyRequest("responseBody", `{"choices":[]}`, true))!);
  r.stop();
  o.routerClosed("req-1", r);
  const models = router();
  models.send(headers({ ":method": "GET", ":path": "/v1/models" }));
  models.stop();
  o.routerClosed("req-2", models);
  assertEquals(await durations(registry), [["gpt-4o-mini", undefined, 1]]);
  // No usage in the answer: no token observation (never a fake 0).
  const tokens = await registry.getSingleMetric("gen_ai_client_token_usage")!.get();
  assertEquals(tokens.values.length, 0);
});
