import { Registry } from "prom-client";
import { throws } from "node:assert/strict";
import { assertEquals } from "../../test/support/assert.ts";
import { GenAiMetrics } from "./genai_metrics.ts";
import { BoundedLabel } from "./bounded_label.ts";
import { registerConfigRevision } from "./config_metrics.ts";
import type { RequestFacts } from "./request_facts.ts";

const facts: RequestFacts = {
  operation: "chat",
  provider: "anthropic",
  route: "default/chat",
  backend: "default/anthropic",
  originalModel: "claude",
  requestModel: "claude-sonnet",
  responseModel: "claude-sonnet-20250101",
  usage: { inputTokens: 100, outputTokens: 11 },
  stream: true,
  status: 200,
  errorType: undefined,
  startedAt: 1_000,
  endedAt: 3_000,
  ttftMs: 500,
  attempts: 1,
  tenant: undefined,
};

async function sample(registry: Registry, name: string, suffix: string, labels: Record<string, string> = {}) {
  const { values } = await registry.getSingleMetric(name)!.get();
  return values
    .filter((v) => (v as { metricName?: string }).metricName === name + suffix)
    .filter((v) => Object.entries(labels).every(([k, want]) => (v.labels as Record<string, unknown>)[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

Deno.test("time per output token is the time after the first token spread over the tokens after the first", async () => {
  const registry = new Registry();
  new GenAiMetrics(registry).record(facts);
  // (2 s - 0.5 s) / (11 - 1) tokens.
  assertEquals(await sample(registry, "gen_ai_server_time_per_output_token_seconds", "_sum"), 0.15);
  assertEquals(await sample(registry, "gen_ai_server_time_to_first_token_seconds", "_sum"), 0.5);
  assertEquals(await sample(registry, "gen_ai_server_request_duration_seconds", "_sum"), 2);
  assertEquals(await sample(registry, "gen_ai_client_token_usage", "_sum", { gen_ai_token_type: "input" }), 100);
});

Deno.test("a failed or unstreamed request records no time to first token; an unreported count records nothing", async () => {
  const registry = new Registry();
  const m = new GenAiMetrics(registry);
  m.record({ ...facts, errorType: "500", status: 500, usage: {} });
  m.record({ ...facts, stream: false, ttftMs: undefined, usage: { outputTokens: 1 } });
  assertEquals(await sample(registry, "gen_ai_server_time_to_first_token_seconds", "_count"), 0);
  assertEquals(await sample(registry, "gen_ai_server_time_per_output_token_seconds", "_count"), 0);
  assertEquals(await sample(registry, "gen_ai_client_token_usage", "_count"), 1);
  assertEquals(await sample(registry, "gen_ai_server_request_duration_seconds", "_count", { error_type: "500" }), 1);
});

Deno.test("model labels keep their first values and record later ones as _OTHER", async () => {
  const registry = new Registry();
  const m = new GenAiMetrics(registry, { modelCap: 2 });
  for (const model of ["a", "b", "c", "d", "a"]) m.record({ ...facts, originalModel: model });
  const { values } = await registry.getSingleMetric("gen_ai_server_request_duration_seconds")!.get();
  const counts = values.filter((v) => (v as { metricName?: string }).metricName?.endsWith("_count"))
    .map((v) => [v.labels.gen_ai_original_model, v.value]);
  assertEquals(counts.sort(), [["_OTHER", 2], ["a", 2], ["b", 1]]);
});

Deno.test("a bounded label admits `cap` distinct values", () => {
  const l = new BoundedLabel(2, "other");
  assertEquals(["x", "y", "z", "x", "y", "w"].map((v) => l.of(v)), ["x", "y", "other", "x", "y", "other"]);
  assertEquals(l.size, 2);
  throws(() => new BoundedLabel(-1, "other"), RangeError);
});

Deno.test("tollgate_config_revision reads the revision at scrape time, and is registered once per registry", async () => {
  const registry = new Registry();
  let revision = 3;
  registerConfigRevision(registry, () => revision);
  registerConfigRevision(registry, () => 99);
  assertEquals((await registry.getSingleMetric("tollgate_config_revision")!.get()).values[0]!.value, 3);
  revision = 4;
  const text = await registry.metrics();
  assertEquals(text.split("\n").filter((l) => l.startsWith("tollgate_config_revision")), [
    "tollgate_config_revision 4",
  ]);
});
