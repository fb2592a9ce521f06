// Each backend schema end to end: official clients → edge → ExtProc (translation, credentials) → a local fake of
// the provider's native API, and back in the client's schema.
import { assertEquals } from "./support/assert.ts";
import { startGateway } from "./support/gateway_fixture.ts";
import { chatCompletion } from "./support/fake_upstream.ts";

Deno.test("Azure OpenAI: deployment path, api-version, api-key and model override", async () => {
  await using gw = await startGateway({
    upstreams: { azure: (r) => chatCompletion("gpt-4o-2024-08-06", `deployment path ${r.path}`) },
    routes: [{ model: "gpt-4o", priorities: [["azure"]], overrides: { azure: "prod-gpt4o" } }],
    backends: {
      azure: {
        schema: { name: "AzureOpenAI", version: "2025-01-01-preview" },
        auth: { kind: "header", header: "api-key", value: "azure-secret" },
      },
    },
  });
  const res = await gw.openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
  const seen = gw.upstreams.azure!.seen[0]!;
  assertEquals(seen.path, "/openai/deployments/prod-gpt4o/chat/completions?api-version=2025-01-01-preview");
  assertEquals(seen.headers.get("api-key"), "azure-secret");
  assertEquals(seen.headers.get("authorization"), null);
  assertEquals(JSON.parse(seen.body).model, "prod-gpt4o");
  assertEquals(res.choices[0]!.message.content, `deployment path ${seen.path}`);
  assertEquals(res.model, "gpt-4o-2024-08-06");
});

Deno.test("OpenAI embeddings pass through to an OpenAI-compatible backend", async () => {
  await using gw = await startGateway({
    upstreams: {
      openai: () =>
        Response.json({
          object: "list",
          data: [{ object: "embedding", index: 0, embedding: [0.1, 0.2] }],
          model: "text-embedding-3-small",
          usage: { prompt_tokens: 2, total_tokens: 2 },
        }),
    },
    routes: [{ model: "text-embedding-3-small", priorities: [["openai"]] }],
  });
  const res = await gw.openai.embeddings.create({
    model: "text-embedding-3-small",
    input: "hello",
    encoding_format: "float",
  });
  assertEquals(res.data[0]!.embedding, [0.1, 0.2]);
  assertEquals(gw.upstreams.openai!.seen[0]!.path, "/v1/embeddings");
});

