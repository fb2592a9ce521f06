import { assertEquals } from "../../test/support/assert.ts";
import type { ModelPolicyConfig } from "./config.ts";
import { applyReasoning, mayReceive, selectModel } from "./model_selection.ts";

const policy = (
  model: string,
  o: Partial<ModelPolicyConfig["pii"]> = {},
  contextWindow?: number,
): ModelPolicyConfig => ({
  model,
  ...(contextWindow === undefined ? {} : { contextWindow }),
  pii: { allowByDefault: true, allowed: [], denied: [], ...o },
});
const refs = [
  { model: "big", score: 0.9, reasoning: true },
  { model: "mid", score: 0.7, reasoning: false },
];
const policies = new Map([
  ["big", policy("big", { allowByDefault: false, allowed: ["email"] }, 1000)],
  ["mid", policy("mid", { denied: ["us_ssn"] })],
  ["fallback", policy("fallback", { denied: ["us_ssn", "credit_card"] })],
]);

Deno.test("mayReceive follows allow-by-default with denials, or an allow list", () => {
  assertEquals(mayReceive(undefined, ["us_ssn"]), true);
  assertEquals(mayReceive(policies.get("big"), ["email"]), true);
  assertEquals(mayReceive(policies.get("big"), ["email", "phone"]), false);
  assertEquals(mayReceive(policies.get("mid"), ["phone"]), true);
  assertEquals(mayReceive(policies.get("mid"), ["us_ssn"]), false);
});

Deno.test("selectModel takes the best model the PII allows, then the next, then the fallback", () => {
  const ctx = { estimatedTokens: 10, policies };
  assertEquals(selectModel(refs, "fallback", { ...ctx, piiTypes: [] }), {
    kind: "selected",
    model: "big",
    reasoning: true,
    skipped: [],
  });
  const phone = selectModel(refs, "fallback", { ...ctx, piiTypes: ["phone"] });
  assertEquals(phone, { kind: "selected", model: "mid", reasoning: false, skipped: [{ model: "big", why: "pii" }] });
  const ssnOnlyFallbackDenies = selectModel(refs, "fallback", { ...ctx, piiTypes: ["us_ssn"] });
  assertEquals(ssnOnlyFallbackDenies, { kind: "blocked", piiTypes: ["us_ssn"] });
  assertEquals(selectModel([], "other", { ...ctx, piiTypes: ["us_ssn"] }).kind, "selected");
});

Deno.test("selectModel skips a model whose context window the prompt outgrows", () => {
  const long = selectModel(refs, "fallback", { estimatedTokens: 5000, policies, piiTypes: [] });
  assertEquals(long, { kind: "selected", model: "mid", reasoning: false, skipped: [{ model: "big", why: "context" }] });
  const onlySmall = selectModel([refs[0]!], "big", { estimatedTokens: 5000, policies, piiTypes: [] });
  assertEquals(onlySmall.kind === "selected" && onlySmall.model, "big");
});

Deno.test("applyReasoning switches a chat-template family on or off and sets reasoning_effort only to reason", () => {
  const body = { model: "m", messages: [] };
  const qwen = { type: "chat_template_kwargs" as const, parameter: "enable_thinking" };
  assertEquals(applyReasoning(body, qwen, true, undefined), {
    ...body,
    chat_template_kwargs: { enable_thinking: true },
  });
  assertEquals(applyReasoning(body, qwen, false, undefined), {
    ...body,
    chat_template_kwargs: { enable_thinking: false },
  });
  const own = { ...body, chat_template_kwargs: { enable_thinking: false, x: 1 } };
  assertEquals(applyReasoning(own, qwen, true, undefined), own, "the client's own choice stands");
  const gpt = { type: "reasoning_effort" as const, parameter: "reasoning_effort" };
  assertEquals(applyReasoning(body, gpt, true, "high"), { ...body, reasoning_effort: "high" });
  assertEquals(applyReasoning(body, gpt, true, undefined), { ...body, reasoning_effort: "medium" });
  assertEquals(applyReasoning(body, gpt, false, "high"), body);
  assertEquals(applyReasoning(body, undefined, true, "high"), body);
});
