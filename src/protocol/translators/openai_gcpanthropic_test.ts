import { openaiGcpAnthropicTranslator } from "./openai_gcpanthropic.ts";
import { assertRequestNeverThrows, runRequestVectors, runResponseVectors, TEST_NOW } from "./anthropic_vectors.ts";

const translator = openaiGcpAnthropicTranslator(TEST_NOW);

Deno.test("openaiGcpAnthropic translates every request vector in testdata/translators/openai_gcpanthropic", async () => {
  await runRequestVectors("openai_gcpanthropic", translator, "chatCompletions");
});

Deno.test("openaiGcpAnthropic translates every Vertex AI answer in testdata, whole and byte by byte", async () => {
  await runResponseVectors("openai_gcpanthropic", translator, "chatCompletions");
});

Deno.test("openaiGcpAnthropic.request never throws on arbitrary JSON object bodies (property)", () => {
  assertRequestNeverThrows(translator, {
    model: "claude-sonnet-4-5@20250929",
    backend: { name: "GCPAnthropic" },
    location: { project: "p", region: "us-east5" },
  }, "chatCompletions");
});
