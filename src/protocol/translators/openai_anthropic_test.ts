import OpenAI from "openai";
import { assertEquals } from "../../../test/support/assert.ts";
import { openaiAnthropicTranslator } from "./openai_anthropic.ts";
import {
  assertRequestNeverThrows,
  feed,
  readFixture,
  runRequestVectors,
  runResponseVectors,
  TEST_NOW,
  translateRequest,
} from "./anthropic_vectors.ts";
import type { Translator } from "./translator.ts";
import { isClientError } from "./translator.ts";

const translator = openaiAnthropicTranslator(TEST_NOW);
const model = "claude-sonnet-4-5";
const backend = { name: "Anthropic" } as const;

Deno.test("openaiAnthropic translates every request vector in testdata/translators/openai_anthropic", async () => {
  await runRequestVectors("openai_anthropic", translator, "chatCompletions");
});

Deno.test("openaiAnthropic translates every upstream answer in testdata, whole and byte by byte", async () => {
  await runResponseVectors("openai_anthropic", translator, "chatCompletions");
});

Deno.test("openaiAnthropic.request never throws on arbitrary JSON object bodies (property)", () => {
  assertRequestNeverThrows(translator, { model, backend }, "chatCompletions");
});

/**
 * An OpenAI SDK whose requests go through the translator and are answered by an upstream capture, so the SDK reads
 * exactly what the gateway would send it.
 */
function sdkAgainst(t: Translator, upstreamFile: string, upstreamStatus = 200): OpenAI {
  return new OpenAI({
    apiKey: "test",
    baseURL: "http://gateway.test/v1",
    maxRetries: 0,
    fetch: async (_url: string | URL | Request, init?: RequestInit) => {
      const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
      const r = translateRequest(
        { model: String(body.model), stream: body.stream === true, backend, body },
        "chatCompletions",
      );
      const upstream = t.request(r);
      if (isClientError(upstream)) throw new Error(upstream.message);
      const fed = feed(t, r, upstreamStatus, {}, [
        await readFixture("openai_anthropic", upstreamFile),
      ]);
      return new Response(fed.body, { status: upstreamStatus, headers: fed.headers });
    },
  });
}

Deno.test("the openai SDK reads a translated chat completion", async () => {
  const client = sdkAgainst(translator, "upstream_tool_use.json");
  const completion = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Weather?" }] });
  const message = completion.choices[0]!.message;
  assertEquals(message.content, "Checking.");
  assertEquals(completion.choices[0]!.finish_reason, "tool_calls");
  assertEquals(message.tool_calls?.[0], {
    id: "toolu_1",
    type: "function",
    function: { name: "weather", arguments: `{"city":"Paris"}` },
  });
  assertEquals(completion.usage?.total_tokens, 80);
});

Deno.test("the openai SDK's stream helper assembles translated tool-call chunks into the final completion", async () => {
  const client = sdkAgainst(translator, "upstream_tool_stream.sse");
  const stream = client.chat.completions.stream({
    model,
    messages: [{ role: "user", content: "Weather in Paris and Rome?" }],
    stream_options: { include_usage: true },
  });
  const final = await stream.finalChatCompletion();
  const choice = final.choices[0]!;
  assertEquals(choice.finish_reason, "tool_calls");
  assertEquals(choice.message.content, "Let me check.");
  assertEquals(
    choice.message.tool_calls?.map((c) => c.type === "function" ? [c.id, c.function.name, c.function.arguments] : []),
    [["toolu_1", "weather", `{"city": "Paris"}`], ["toolu_2", "weather", `{"city": "Rome"}`]],
  );
});

Deno.test("the openai SDK reads translated text chunks and the usage chunk", async () => {
  const client = sdkAgainst(translator, "upstream_text_stream.sse");
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "Hi" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assertEquals(text, "Hello, wörld 👋");
  assertEquals(usage, {
    prompt_tokens: 30,
    completion_tokens: 7,
    total_tokens: 37,
    prompt_tokens_details: { cached_tokens: 20 },
  });
});

Deno.test("the openai SDK raises a translated mid-stream error and an upstream error status", async () => {
  const streamed = await sdkAgainst(translator, "upstream_error_stream.sse").chat.completions.create({
    model,
    messages: [{ role: "user", content: "Hi" }],
    stream: true,
  });
  let error: unknown;
  try {
    for await (const _ of streamed) { /* drain */ }
  } catch (e) {
    error = e;
  }
  assertEquals(error instanceof OpenAI.APIError && error.message, "Overloaded");
  const limited = sdkAgainst(translator, "upstream_rate_limited.json", 429);
  error = undefined;
  try {
    await limited.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }] });
  } catch (e) {
    error = e;
  }
  assertEquals(error instanceof OpenAI.RateLimitError && error.message.endsWith("per-minute rate limit"), true);
});
