import { anthropicGcpAnthropic } from "./anthropic_gcpanthropic.ts";
import { assertRequestNeverThrows, runRequestVectors, runResponseVectors } from "./anthropic_vectors.ts";

Deno.test("anthropicGcpAnthropic translates every request vector in testdata/translators/anthropic_gcpanthropic", async () => {
  await runRequestVectors("anthropic_gcpanthropic", anthropicGcpAnthropic, "messages");
});

Deno.test("anthropicGcpAnthropic translates every Vertex AI answer in testdata, whole and byte by byte", async () => {
  await runResponseVectors("anthropic_gcpanthropic", anthropicGcpAnthropic, "messages");
});

Deno.test("anthropicGcpAnthropic.request never throws on arbitrary JSON object bodies (property)", () => {
  assertRequestNeverThrows(anthropicGcpAnthropic, {
    model: "claude-sonnet-4-5@20250929",
    backend: { name: "GCPAnthropic" },
    location: { project: "p", region: "us-east5" },
  }, "messages");
});
