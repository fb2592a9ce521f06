import Anthropic from "@anthropic-ai/sdk";
import { assertEquals } from "../../../test/support/assert.ts";
import { anthropicAnthropic } from "./anthropic_anthropic.ts";
import {
  assertRequestNeverThrows,
  feed,
  readFixture,
  runRequestVectors,
  runResponseVectors,
  translateRequest,
} from "./anthropic_vectors.ts";
import { isClientError } from "./translator.ts";

const backend = { name: "Anthropic" } as const;

Deno.test("anthropicAnthropic translates every request vector in testdata/translators/anthropic_anthropic", async () => {
  await runRequestVectors("anthropic_anthropic", anthropicAnthropic, "messages");
});

Deno.test("anthropicAnthropic passes every upstream answer in testdata through, whole and byte by byte", async () => {
  await runResponseVectors("anthropic_anthropic", anthropicAnthropic, "messages");
});

Deno.test("anthropicAnthropic.request never throws on arbitrary JSON object bodies (property)", () => {
  assertRequestNeverThrows(anthropicAnthropic, { model: "claude-sonnet-4-5", backend }, "messages");
});

Deno.test("the Anthropic SDK reads a stream passed through anthropicAnthropic", async () => {
  const client = new Anthropic({
    apiKey: "test",
    baseURL: "http://gateway.test",
    maxRetries: 0,
    fetch: async (_url: string | URL | Request, init?: RequestInit) => {
      const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
      const r = translateRequest(
        { model: String(body.model), stream: body.stream === true, backend, body },
        "messages",
      );
      const upstream = anthropicAnthropic.request(r);
      if (isClientError(upstream)) throw new Error(upstream.message);
      const answer = await readFixture("anthropic_anthropic", "../openai_anthropic/upstream_tool_stream.sse");
      const fed = feed(anthropicAnthropic, r, 200, { "content-type": "text/event-stream" }, [answer]);
      return new Response(fed.body, { headers: { "content-type": "text/event-stream", ...fed.headers } });
    },
  });
  const message = await client.messages.stream({
    model: "claude-opus-4-7",
    max_tokens: 1024,
    messages: [{ role: "user", content: "Weather in Paris and Rome?" }],
  }).finalMessage();
  assertEquals(message.stop_reason, "tool_use");
  assertEquals(message.content.map((b) => b.type === "tool_use" ? b.input : b.type === "text" ? b.text : b.type), [
    "Let me check.",
    { city: "Paris" },
    { city: "Rome" },
  ]);
  assertEquals(message.usage.output_tokens, 64);
});
