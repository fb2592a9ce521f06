// OpenAI's usage object → TokenUsage. Shared by every translator whose backend answers in OpenAI's shape.
import { count, type TokenUsage, usage } from "../usage.ts";

export function openAIUsage(u: unknown): TokenUsage {
  if (typeof u !== "object" || u === null) return {};
  const o = u as Record<string, unknown>;
  const prompt = o.prompt_tokens_details as Record<string, unknown> | undefined;
  const completion = o.completion_tokens_details as Record<string, unknown> | undefined;
  return usage({
    inputTokens: count(o.prompt_tokens),
    outputTokens: count(o.completion_tokens),
    totalTokens: count(o.total_tokens),
    cachedInputTokens: count(prompt?.cached_tokens),
    reasoningTokens: count(completion?.reasoning_tokens),
  });
}
