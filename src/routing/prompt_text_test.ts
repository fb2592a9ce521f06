import { assertEquals } from "../../test/support/assert.ts";
import { estimateTokens, promptText } from "./prompt_text.ts";

Deno.test("promptText reads the last user turn, guarded text and the conversation of a chat", () => {
  const t = promptText("chatCompletions", {
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", content: "First question" },
      { role: "assistant", content: "An answer" },
      {
        role: "user",
        content: [{ type: "text", text: "Second" }, { type: "image_url", image_url: {} }, {
          type: "text",
          text: "part",
        }],
      },
    ],
  });
  assertEquals(t.query, "Second\npart");
  assertEquals(t.guarded, "Be brief.\nFirst question\nSecond\npart");
  assertEquals(t.conversation, "system: Be brief.\nuser: First question\nassistant: An answer\nuser: Second\npart");
  assertEquals(t.estimatedTokens, estimateTokens("Be brief.\nFirst question\nAn answer\nSecond\npart"));
});

Deno.test("promptText reads Anthropic's system and tool results, and completions' prompt", () => {
  const m = promptText("messages", {
    system: [{ type: "text", text: "Rules" }],
    messages: [{ role: "user", content: [{ type: "tool_result", content: [{ type: "text", text: "42" }] }] }],
  });
  assertEquals([m.query, m.guarded], ["42", "Rules\n42"]);
  assertEquals(promptText("completions", { prompt: ["a", "b"] }).query, "a\nb");
  assertEquals(promptText("chatCompletions", { messages: "nonsense" }).query, "");
});
