import { assert, assertEquals } from "../../test/support/assert.ts";
import { assembleChatStream, renderCachedReply } from "./cached_reply.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const completion = {
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "Canberra" }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
};
const cached = { body: encoder.encode(JSON.stringify(completion)), contentType: "application/json" };

Deno.test("renderCachedReply keeps JSON for a non-streaming client", () => {
  assertEquals(renderCachedReply(cached, false), cached);
});

Deno.test("renderCachedReply renders SSE chunks ending with [DONE], and they assemble back to the answer", () => {
  const sse = renderCachedReply(cached, true);
  assertEquals(sse.contentType, "text/event-stream");
  const text = decoder.decode(sse.body);
  assert(text.endsWith("data: [DONE]\n\n"), text);
  const events = text.trim().split("\n\n").map((e) => e.slice("data: ".length));
  const first = JSON.parse(events[0]!);
  assertEquals(first.object, "chat.completion.chunk");
  assertEquals(first.choices[0].delta, { role: "assistant", content: "Canberra" });
  assertEquals(JSON.parse(events[1]!).choices[0].finish_reason, "stop");
  const back = JSON.parse(decoder.decode(assembleChatStream(sse.body)!));
  assertEquals(back.choices[0].message, { role: "assistant", content: "Canberra" });
  assertEquals(back.object, "chat.completion");
});

Deno.test("assembleChatStream joins content and tool call fragments, and carries usage", () => {
  const chunk = (delta: unknown, finish: string | null = null, extra = {}) =>
    `data: ${
      JSON.stringify({
        id: "c",
        object: "chat.completion.chunk",
        created: 2,
        model: "m",
        choices: [{ index: 0, delta, finish_reason: finish }],
        ...extra,
      })
    }\n\n`;
  const sse = chunk({ role: "assistant", content: "Hel" }) + chunk({ content: "lo" }) +
    chunk({ tool_calls: [{ index: 0, id: "t1", type: "function", function: { name: "get", arguments: '{"a":' } }] }) +
    chunk({ tool_calls: [{ index: 0, function: { arguments: "1}" } }] }, "tool_calls") +
    `data: ${JSON.stringify({ id: "c", choices: [], usage: { total_tokens: 9 } })}\n\n` + "data: [DONE]\n\n";
  const out = JSON.parse(decoder.decode(assembleChatStream(encoder.encode(sse))!));
  assertEquals(out.choices[0].message.content, "Hello");
  assertEquals(out.choices[0].message.tool_calls, [{
    id: "t1",
    type: "function",
    function: { name: "get", arguments: '{"a":1}' },
  }]);
  assertEquals(out.choices[0].finish_reason, "tool_calls");
  assertEquals(out.usage, { total_tokens: 9 });
});

Deno.test("assembleChatStream refuses a stream cut short or carrying an error", () => {
  const part = `data: ${
    JSON.stringify({ id: "c", choices: [{ index: 0, delta: { content: "x" }, finish_reason: null }] })
  }\n\n`;
  assertEquals(assembleChatStream(encoder.encode(part)), undefined);
  assertEquals(assembleChatStream(encoder.encode(`data: {"error":{"message":"boom"}}\n\ndata: [DONE]\n\n`)), undefined);
  assertEquals(assembleChatStream(encoder.encode("data: not json\n\ndata: [DONE]\n\n")), undefined);
});
