// Each backend schema end to end: official clients → edge → ExtProc (translation, credentials) → a local fake of
// the provider's native API, and back in the client's schema.
import { assertEquals } from "./support/assert.ts";
import { startGateway } from "./support/gateway_fixture.ts";
import { startFakeBedrock } from "./support/fake_bedrock.ts";
import Anthropic from "@anthropic-ai/sdk";

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`Timed out waiting for ${what}`);
}
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

Deno.test("GCP Vertex AI Gemini: generateContent and streamGenerateContent with a rotated bearer token", async () => {
  const dir = await Deno.makeTempDir();
  const tokenFile = `${dir}/token`;
  await Deno.writeTextFile(tokenFile, "ya29.first-token\n");
  const gemini = (text: string, extra: Record<string, unknown> = {}) => ({
    candidates: [{ content: { role: "model", parts: [{ text }] }, finishReason: "STOP", index: 0 }],
    usageMetadata: { promptTokenCount: 4, candidatesTokenCount: 2, totalTokenCount: 6 },
    modelVersion: "gemini-2.0-flash-001",
    ...extra,
  });
  await using gw = await startGateway({
    upstreams: {
      vertex: (r) => {
        if (r.path.includes(":streamGenerateContent")) {
          const first = {
            ...gemini("Hel"),
            candidates: [{ content: { role: "model", parts: [{ text: "Hel" }] }, index: 0 }],
          };
          const body = [first, gemini("lo")].map((e) => `data: ${JSON.stringify(e)}\r\n\r\n`).join("");
          return new Response(body, { headers: { "content-type": "text/event-stream" } });
        }
        return Response.json(gemini("Hello from Gemini"));
      },
    },
    routes: [{ model: "gemini-2.0-flash", priorities: [["vertex"]] }],
    backends: {
      vertex: {
        schema: { name: "GCPVertexAI" },
        location: { project: "my-project", region: "us-central1" },
        auth: { kind: "bearerFile", path: tokenFile },
      },
    },
  });
  const res = await gw.openai.chat.completions.create({
    model: "gemini-2.0-flash",
    messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }],
  });
  assertEquals(res.choices[0]!.message.content, "Hello from Gemini");
  assertEquals(res.usage?.total_tokens, 6);
  const seen = gw.upstreams.vertex!.seen[0]!;
  assertEquals(
    seen.path,
    "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
  );
  assertEquals(seen.headers.get("authorization"), "Bearer ya29.first-token");
  assertEquals(JSON.parse(seen.body).systemInstruction.parts[0].text, "be brief");

  const stream = await gw.openai.chat.completions.create({
    model: "gemini-2.0-flash",
    messages: [{ role: "user", content: "hi" }],
    stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  assertEquals(text, "Hello");
  assertEquals(
    gw.upstreams.vertex!.seen[1]!.path,
    "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
  );
  await Deno.remove(dir, { recursive: true });
});

const AWS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };

Deno.test("AWS Bedrock: Converse and ConverseStream, SigV4-signed requests verified by the fake Bedrock", async () => {
  await using bedrock = await startFakeBedrock({
    credentials: AWS,
    handlers: {
      converse: () => ({
        output: { message: { role: "assistant", content: [{ text: "Hello from Bedrock" }] } },
        stopReason: "end_turn",
        usage: { inputTokens: 9, outputTokens: 3, totalTokens: 12 },
      }),
      converseStream: () => [
        { event: "messageStart", payload: { role: "assistant" } },
        { event: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "Str" } } },
        { event: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "eamed" } } },
        { event: "contentBlockStop", payload: { contentBlockIndex: 0 } },
        { event: "messageStop", payload: { stopReason: "end_turn" } },
        { event: "metadata", payload: { usage: { inputTokens: 9, outputTokens: 2, totalTokens: 11 }, metrics: {} } },
      ],
    },
  });
  await using gw = await startGateway({
    upstreams: {},
    listening: { bedrock: bedrock.port },
    routes: [{ model: "anthropic.claude-3-haiku", priorities: [["bedrock"]] }],
    backends: {
      bedrock: {
        schema: { name: "AWSBedrock" },
        auth: { kind: "aws", region: "us-east-1", credentials: AWS },
      },
    },
  });
  const res = await gw.openai.chat.completions.create({
    model: "anthropic.claude-3-haiku",
    messages: [{ role: "system", content: "terse" }, { role: "user", content: "hi" }],
    max_tokens: 50,
  });
  assertEquals(res.choices[0]!.message.content, "Hello from Bedrock");
  assertEquals([res.usage?.prompt_tokens, res.usage?.completion_tokens], [9, 3]);
  assertEquals(bedrock.calls[0]!.path, "/model/anthropic.claude-3-haiku/converse");
  assertEquals((bedrock.calls[0]!.body as { system: unknown }).system, [{ text: "terse" }]);
  assertEquals(bedrock.rejected, []);

  const stream = await gw.openai.chat.completions.create({
    model: "anthropic.claude-3-haiku",
    messages: [{ role: "user", content: "hi" }],
    stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  assertEquals(text, "Streamed");
  assertEquals(bedrock.calls[1]!.operation, "converse-stream");
  assertEquals(bedrock.rejected, []);
});

Deno.test("AWS Bedrock refuses a request signed with the wrong secret, and the client sees the error", async () => {
  await using bedrock = await startFakeBedrock({ credentials: AWS, handlers: { converse: () => ({}) } });
  await using gw = await startGateway({
    upstreams: {},
    listening: { bedrock: bedrock.port },
    routes: [{ model: "m", priorities: [["bedrock"]] }],
    backends: {
      bedrock: {
        schema: { name: "AWSBedrock" },
        auth: { kind: "aws", region: "us-east-1", credentials: { ...AWS, secretAccessKey: "wrong" } },
      },
    },
  });
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
  });
  assertEquals(res.status, 403);
  const body = await res.json();
  assertEquals(typeof body.error.message, "string");
  assertEquals(bedrock.rejected.length, 1);
});

function anthropicMessage(text: string) {
  return {
    id: "msg_01",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5-20250929",
    content: [{ type: "text", text }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 4 },
  };
}

function anthropicStream(words: readonly string[]): Response {
  const events: [string, unknown][] = [
    ["message_start", {
      type: "message_start",
      message: { ...anthropicMessage(""), content: [], usage: { input_tokens: 12, output_tokens: 1 } },
    }],
    ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
    ...words.map((w): [string, unknown] => [
      "content_block_delta",
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: w } },
    ]),
    ["content_block_stop", { type: "content_block_stop", index: 0 }],
    ["message_delta", {
      type: "message_delta",
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { output_tokens: 4 },
    }],
    ["message_stop", { type: "message_stop" }],
  ];
  const body = events.map(([e, d]) => `event: ${e}\ndata: ${JSON.stringify(d)}\n\n`).join("");
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

Deno.test("Anthropic as a backend for the OpenAI client: x-api-key, /v1/messages, answers back in OpenAI's shape", async () => {
  await using gw = await startGateway({
    upstreams: {
      anthropic: (
        r,
      ) => (JSON.parse(r.body).stream
        ? anthropicStream(["Hi ", "there"])
        : Response.json(anthropicMessage("Hello from Claude"))),
    },
    routes: [{ model: "claude-sonnet-4-5", priorities: [["anthropic"]] }],
    backends: {
      anthropic: {
        schema: { name: "Anthropic" },
        auth: { kind: "header", header: "x-api-key", value: "sk-ant-secret" },
      },
    },
  });
  const res = await gw.openai.chat.completions.create({
    model: "claude-sonnet-4-5",
    messages: [{ role: "system", content: "be kind" }, { role: "user", content: "hi" }],
  });
  assertEquals(res.choices[0]!.message.content, "Hello from Claude");
  assertEquals(res.choices[0]!.finish_reason, "stop");
  const seen = gw.upstreams.anthropic!.seen[0]!;
  assertEquals(seen.path, "/v1/messages");
  assertEquals(seen.headers.get("x-api-key"), "sk-ant-secret");
  assertEquals(seen.headers.get("authorization"), null);
  assertEquals(JSON.parse(seen.body).system, "be kind");
  const stream = await gw.openai.chat.completions.create({
    model: "claude-sonnet-4-5",
    messages: [{ role: "user", content: "hi" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assertEquals(text, "Hi there");
  assertEquals([usage?.prompt_tokens, usage?.completion_tokens], [12, 4]);
});

Deno.test("the Anthropic SDK through the gateway: /anthropic/v1/messages passes through to Anthropic, streaming included", async () => {
  await using gw = await startGateway({
    upstreams: {
      anthropic: (
        r,
      ) => (JSON.parse(r.body).stream
        ? anthropicStream(["Stre", "amed"])
        : Response.json(anthropicMessage("Native hello"))),
    },
    routes: [{ model: "claude-sonnet-4-5", priorities: [["anthropic"]] }],
    backends: {
      anthropic: {
        schema: { name: "Anthropic" },
        auth: { kind: "header", header: "x-api-key", value: "sk-ant-secret" },
      },
    },
  });
  const client = new Anthropic({ baseURL: `${gw.url}/anthropic`, apiKey: "client-key", maxRetries: 0 });
  const msg = await client.messages.create({
    model: "claude-sonnet-4-5",
    max_tokens: 100,
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(msg.content[0]?.type === "text" ? msg.content[0].text : "", "Native hello");
  assertEquals(gw.upstreams.anthropic!.seen[0]!.headers.get("x-api-key"), "sk-ant-secret");
  const final = await client.messages.stream({
    model: "claude-sonnet-4-5",
    max_tokens: 100,
    messages: [{ role: "user", content: "hi" }],
  }).finalMessage();
  assertEquals(final.content[0]?.type === "text" ? final.content[0].text : "", "Streamed");
  assertEquals(final.usage.output_tokens, 4);
  await until(() => gw.accessLog.length === 2, "two access log lines");
  // Anthropic reports input and output; the total is their sum, as Envoy AI Gateway records it.
  assertEquals(gw.accessLog[1]!.usage, { input_tokens: 12, output_tokens: 4, total_tokens: 16 });
  try {
    await client.messages.create({ model: "nope", max_tokens: 1, messages: [{ role: "user", content: "hi" }] });
    throw new Error("expected a 404");
  } catch (e) {
    assertEquals(e instanceof Anthropic.NotFoundError, true, String(e));
  }
});
