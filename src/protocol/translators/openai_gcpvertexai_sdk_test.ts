// The official openai SDK as the client of the translated responses: what Tollgate answers must read as OpenAI's.
import OpenAI from "openai";
import { assert, assertEquals } from "../../../test/support/assert.ts";

const DIR = new URL("../../../testdata/translators/openai_gcpvertexai/", import.meta.url);

function sdkOver(bytes: string, contentType: string): OpenAI {
  return new OpenAI({
    apiKey: "x",
    baseURL: "http://x",
    maxRetries: 0,
    fetch: () => Promise.resolve(new Response(bytes, { headers: { "content-type": contentType } })),
  });
}

async function clientFile(name: string): Promise<string> {
  return await Deno.readTextFile(new URL(`client/${name}`, DIR));
}

Deno.test("the openai SDK reads the translated stream: text, finish reason and usage", async () => {
  const client = sdkOver(await clientFile("stream_text.sse"), "text/event-stream");
  const stream = await client.chat.completions.create({
    model: "gemini-2.5-flash",
    messages: [{ role: "user", content: "hi" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  const finish: (string | null)[] = [];
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.delta.content ?? "";
      if (c.finish_reason) finish.push(c.finish_reason);
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assertEquals(text, "Hello, world! Nice to meet you – 😀");
  assertEquals(finish, ["stop"]);
  assertEquals(usage, { prompt_tokens: 5, completion_tokens: 11, total_tokens: 16 });
});

Deno.test("the openai SDK assembles the translated streamed tool calls", async () => {
  const client = sdkOver(await clientFile("stream_tool_call.sse"), "text/event-stream");
  const runner = client.chat.completions.stream({
    model: "gemini-2.5-flash",
    messages: [{ role: "user", content: "hi" }],
  });
  const completion = await runner.finalChatCompletion();
  const choice = completion.choices[0]!;
  assertEquals(choice.finish_reason, "tool_calls");
  assertEquals(choice.message.content, "Let me check.");
  const calls = (choice.message.tool_calls ?? []).map((c) =>
    c.type === "function" ? [c.function.name, c.function.arguments] : []
  );
  assertEquals(calls, [["get_weather", '{"city":"Paris"}'], ["get_time", "{}"]]);
});

Deno.test("the openai SDK reads the translated completion and raises the translated errors", async () => {
  const completion = await sdkOver(await clientFile("tool_calls.json"), "application/json").chat.completions.create({
    model: "gemini-2.5-pro",
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(completion.usage?.total_tokens, 119);
  assertEquals(completion.choices[0]?.message.tool_calls?.length, 3);

  const broken = sdkOver(await clientFile("stream_error_midway.sse"), "text/event-stream");
  const stream = await broken.chat.completions.create({ model: "m", messages: [], stream: true });
  let raised: unknown;
  try {
    for await (const _ of stream) { /* drained until the error event */ }
  } catch (e) {
    raised = e;
  }
  assert(raised instanceof OpenAI.APIError, `expected an APIError, got ${raised}`);
  assertEquals(raised.message, "Internal error encountered. (INTERNAL)");
});
