import { assert, assertEquals } from "../../test/support/assert.ts";
import {
  contentTokens,
  estimateTokens,
  MEDIA_PART,
  MESSAGE_OVERHEAD,
  REPLY_PRIMING,
  textTokens,
} from "./reservation_estimate.ts";

const options = { defaultOutputTokens: 1000 };
const chat = (body: Record<string, unknown>) => ({ endpoint: "chatCompletions" as const, body });

Deno.test("textTokens counts a token per 4 ASCII characters, rounded up, and one per other character", () => {
  assertEquals(textTokens(""), 0);
  assertEquals(textTokens("abcd"), 1);
  assertEquals(textTokens("abcde"), 2);
  assertEquals(textTokens("日本語"), 3);
  assertEquals(textTokens("héllo"), 2); // 4 ASCII → 1, é → 1
  assertEquals(textTokens("😀"), 1); // one surrogate pair is one character
});

Deno.test("estimateTokens prices a chat's messages with per-message overhead and uses max_tokens for the output", () => {
  const e = estimateTokens(
    chat({
      model: "gpt-4o",
      max_tokens: 50,
      messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hello there" }],
    }),
    options,
  );
  // Strings and keys: role 1, system 2, content 2, "be brief" 2; role 1, user 1, content 2, "hello there" 3.
  assertEquals(e, { inputTokens: 2 * MESSAGE_OVERHEAD + 14 + REPLY_PRIMING, outputTokens: 50 });
});

Deno.test("estimateTokens prefers max_completion_tokens, multiplies by n, and falls back to the default", () => {
  const messages = [{ role: "user", content: "hi" }];
  assertEquals(
    estimateTokens(chat({ messages, max_completion_tokens: 30, max_tokens: 99, n: 2 }), options).outputTokens,
    60,
  );
  assertEquals(estimateTokens(chat({ messages }), options).outputTokens, 1000);
  // A value that is not a count is not a limit the provider would honour: the default applies.
  assertEquals(estimateTokens(chat({ messages, max_tokens: "lots" }), options).outputTokens, 1000);
  assertEquals(
    estimateTokens(chat({ messages, max_tokens: 5000 }), { ...options, maxOutputTokens: 800 }).outputTokens,
    800,
  );
});

Deno.test("estimateTokens counts an image part as a fixed cost, not its base64 bytes", () => {
  const image = { type: "image_url", image_url: { url: `data:image/png;base64,${"A".repeat(400_000)}` } };
  const e = estimateTokens(
    chat({ messages: [{ role: "user", content: [{ type: "text", text: "what is it" }, image] }] }),
    options,
  );
  assert(e.inputTokens < MEDIA_PART + 50, `${e.inputTokens} tokens`);
  assert(e.inputTokens >= MEDIA_PART, `${e.inputTokens} tokens`);
});

Deno.test("estimateTokens reads Anthropic's system, messages and max_tokens", () => {
  const e = estimateTokens({
    endpoint: "messages",
    body: { system: "sys", max_tokens: 64, messages: [{ role: "user", content: "abcdefgh" }] },
  }, options);
  assertEquals(e, { inputTokens: 1 + MESSAGE_OVERHEAD + 1 + 1 + 2 + 2 + REPLY_PRIMING, outputTokens: 64 });
});

Deno.test("estimateTokens gives embeddings no output and counts token-id prompts one token an id", () => {
  assertEquals(estimateTokens({ endpoint: "embeddings", body: { input: ["abcd", "efgh"] } }, options), {
    inputTokens: 2,
    outputTokens: 0,
  });
  assertEquals(
    estimateTokens({ endpoint: "completions", body: { prompt: [1, 2, 3], max_tokens: 7, best_of: 3 } }, options),
    { inputTokens: 3, outputTokens: 21 },
  );
});

Deno.test("contentTokens walks a deeply nested body without overflowing the stack", () => {
  let v: unknown = "abcd";
  for (let i = 0; i < 200_000; i++) v = [v];
  assertEquals(contentTokens(v), 1);
});
