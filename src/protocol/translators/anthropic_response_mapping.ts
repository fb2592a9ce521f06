// An Anthropic message (the answer of a non-streamed request) → an OpenAI chat.completion with one choice: text
// blocks joined into content, tool_use blocks into tool_calls with their input as a JSON string, thinking blocks
// into reasoning_content, stop_reason into finish_reason, usage as reported.
import type { AnthropicUsageReport, Json } from "./anthropic_messages.ts";
import { finishReasonOf, isJsonObject, openAIUsageOf, readAnthropicUsage } from "./anthropic_messages.ts";

export interface MappedCompletion {
  readonly completion: Json;
  readonly usage: AnthropicUsageReport;
  /** The model the message names, if it does. */
  readonly model: string | undefined;
}

/** Undefined when the JSON is not an Anthropic message. */
export function anthropicMessageToOpenAI(
  message: unknown,
  fallbackModel: string,
  created: number,
): MappedCompletion | undefined {
  if (!isJsonObject(message) || message.type !== "message" || !Array.isArray(message.content)) return undefined;
  const text: string[] = [];
  const thinking: string[] = [];
  const toolCalls: Json[] = [];
  for (const block of message.content) {
    if (!isJsonObject(block)) continue;
    if (block.type === "text" && typeof block.text === "string") text.push(block.text);
    else if (block.type === "thinking" && typeof block.thinking === "string") thinking.push(block.thinking);
    else if (block.type === "tool_use") {
      toolCalls.push({
        id: block.id,
        type: "function",
        function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
      });
    }
  }
  const usage = readAnthropicUsage(message.usage);
  const model = typeof message.model === "string" ? message.model : undefined;
  const openAIUsage = openAIUsageOf(usage);
  const completion: Json = {
    id: message.id,
    object: "chat.completion",
    created,
    model: model ?? fallbackModel,
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: text.length > 0 ? text.join("") : null,
        refusal: null,
        ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        ...(thinking.length > 0 ? { reasoning_content: thinking.join("") } : {}),
      },
      logprobs: null,
      finish_reason: finishReasonOf(message.stop_reason),
    }],
    ...(openAIUsage !== undefined ? { usage: openAIUsage } : {}),
  };
  return { completion, usage, model };
}
