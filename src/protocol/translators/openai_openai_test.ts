import { assertEquals } from "../../../test/support/assert.ts";
import { openaiOpenAI } from "./openai_openai.ts";
import { openaiAzureOpenAI } from "./openai_azureopenai.ts";
import { runRequestVectors } from "./translator_vectors.ts";
import type { TranslateRequest } from "./translator.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("openaiOpenAI translates requests as the vectors say", () =>
  runRequestVectors("openai_openai", openaiOpenAI));
Deno.test("openaiAzureOpenAI translates requests as the vectors say", () =>
  runRequestVectors("openai_azureopenai", openaiAzureOpenAI));

function request(body: Record<string, unknown>, o: Partial<TranslateRequest> = {}): TranslateRequest {
  return {
    endpoint: "chatCompletions",
    body,
    rawBody: encoder.encode(JSON.stringify(body)),
    model: String(body.model),
    stream: body.stream === true,
    forceStreamUsage: false,
    backend: { name: "OpenAI" },
    ...o,
  };
}

const completion = {
  id: "c",
  object: "chat.completion",
  model: "gpt-4o-mini-2024-07-18",
  choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
  usage: {
    prompt_tokens: 11,
    completion_tokens: 3,
    total_tokens: 14,
    prompt_tokens_details: { cached_tokens: 4 },
    completion_tokens_details: { reasoning_tokens: 0 },
  },
};

Deno.test("the OpenAI response passes the body through and reads usage and the model", () => {
  const t = openaiOpenAI.response(request({ model: "gpt-4o-mini", messages: [] }));
  t.headers(200, new Map([["content-type", "application/json"]]));
  const bytes = encoder.encode(JSON.stringify(completion));
  assertEquals(t.body(bytes, true), bytes);
  assertEquals(t.usage, {
    inputTokens: 11,
    outputTokens: 3,
    totalTokens: 14,
    cachedInputTokens: 4,
    reasoningTokens: 0,
  });
  assertEquals(t.responseModel, "gpt-4o-mini-2024-07-18");
});

Deno.test("usage stays unset when the provider does not report it", () => {
  const t = openaiOpenAI.response(request({ model: "m", messages: [] }));
  t.headers(200, new Map([["content-type", "application/json"]]));
  t.body(encoder.encode(JSON.stringify({ ...completion, usage: undefined })), true);
  assertEquals(t.usage, {});
});

const streamText = [
  `data: {"id":"c","model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}],"usage":null}`,
  `data: {"id":"c","model":"m-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}`,
  `data: {"id":"c","model":"m-1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`,
  `data: [DONE]`,
].join("\n\n") + "\n\n";

function feed(t: ReturnType<typeof openaiOpenAI.response>, bytes: Uint8Array, byteAtATime: boolean): string {
  t.headers(200, new Map([["content-type", "text/event-stream"]]));
  if (!byteAtATime) return decoder.decode(t.body(bytes, true));
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    out += decoder.decode(t.body(bytes.subarray(i, i + 1), false), { stream: true });
  }
  return out + decoder.decode(t.body(new Uint8Array(0), true));
}

for (const byteAtATime of [false, true]) {
  Deno.test(`a stream the client asked usage for passes through unchanged${byteAtATime ? ", fed byte by byte" : ""}`, () => {
    const t = openaiOpenAI.response(
      request({ model: "m", messages: [], stream: true, stream_options: { include_usage: true } }, {
        forceStreamUsage: true,
      }),
    );
    assertEquals(feed(t, encoder.encode(streamText), byteAtATime), streamText);
    assertEquals(t.usage, { inputTokens: 5, outputTokens: 1, totalTokens: 6 });
  });

  Deno.test(`usage forced by costs is read but hidden from the client${byteAtATime ? ", fed byte by byte" : ""}`, () => {
    const t = openaiOpenAI.response(request({ model: "m", messages: [], stream: true }, { forceStreamUsage: true }));
    const out = feed(t, encoder.encode(streamText), byteAtATime);
    assertEquals(out.includes("usage"), false);
    assertEquals(out.includes("prompt_tokens"), false);
    assertEquals(out.endsWith("data: [DONE]\n\n"), true);
    assertEquals(out.split("\n\n").filter(Boolean).length, 3);
    assertEquals(t.usage, { inputTokens: 5, outputTokens: 1, totalTokens: 6 });
  });
}

Deno.test("a 2xx body that is not JSON becomes an OpenAI error for the client", () => {
  const t = openaiOpenAI.response(request({ model: "m", messages: [] }));
  t.headers(200, new Map([["content-type", "application/json"]]));
  const out = JSON.parse(decoder.decode(t.body(encoder.encode("<html>oops</html>"), true)));
  assertEquals(out.error.type, "server_error");
  assertEquals(typeof t.failure, "string");
});
