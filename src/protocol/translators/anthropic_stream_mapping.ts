// Anthropic stream events → OpenAI chat.completion.chunk objects, one event at a time. Pure: each step takes the
// state and an event and returns the new state with the chunks to send; the response translator owns the bytes.
//
// message_start → the role chunk; text_delta → content; tool_use block start → a tool call with its index, id and
// name, then input_json_delta → argument fragments at that index; thinking_delta → reasoning_content (the field
// OpenAI-compatible servers use for reasoning text; the client asked for thinking by sending `thinking`);
// message_delta → the finish chunk, plus its cumulative usage; message_stop → the end; error → the error.
import type { AnthropicEvent, AnthropicUsageReport, Json } from "./anthropic_messages.ts";
import {
  finishReasonOf,
  isJsonObject,
  mergeAnthropicUsage,
  openAIUsageOf,
  readAnthropicUsage,
  statusOfAnthropicError,
} from "./anthropic_messages.ts";

export interface OpenAIStreamState {
  /** The message id, once message_start gave it. */
  readonly id: string;
  /** The model the provider named in message_start, if it did. */
  readonly reportedModel: string | undefined;
  readonly fallbackModel: string;
  readonly created: number;
  readonly usage: AnthropicUsageReport;
  /** OpenAI tool_calls index of each Anthropic content block (by block index) that is a tool_use. */
  readonly toolIndexOf: Readonly<Record<number, number>>;
  readonly toolCount: number;
  readonly finishSent: boolean;
  /** message_stop arrived: nothing more will come. */
  readonly stopped: boolean;
  /** An error event arrived. */
  readonly error: { readonly status: number; readonly message: string } | undefined;
}

export interface OpenAIStreamStep {
  readonly state: OpenAIStreamState;
  readonly chunks: readonly Json[];
}

export function initialOpenAIStreamState(model: string, created: number): OpenAIStreamState {
  return {
    id: "",
    reportedModel: undefined,
    fallbackModel: model,
    created,
    usage: {},
    toolIndexOf: {},
    toolCount: 0,
    finishSent: false,
    stopped: false,
    error: undefined,
  };
}

function chunk(s: OpenAIStreamState, delta: Json, finishReason: string | null = null): Json {
  return {
    id: s.id,
    object: "chat.completion.chunk",
    created: s.created,
    model: s.reportedModel ?? s.fallbackModel,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
}

/** The last chunk of a stream whose client asked for usage: no choices, the whole request's usage. */
export function usageChunk(s: OpenAIStreamState): Json | undefined {
  const usage = openAIUsageOf(s.usage);
  if (usage === undefined) return undefined;
  return {
    id: s.id,
    object: "chat.completion.chunk",
    created: s.created,
    model: s.reportedModel ?? s.fallbackModel,
    choices: [],
    usage,
  };
}

const nothing = (state: OpenAIStreamState): OpenAIStreamStep => ({ state, chunks: [] });

export function stepOpenAIStream(s: OpenAIStreamState, e: AnthropicEvent): OpenAIStreamStep {
  const d = e.data;
  switch (e.type) {
    case "message_start": {
      const m = isJsonObject(d.message) ? d.message : {};
      const state = {
        ...s,
        id: typeof m.id === "string" ? m.id : s.id,
        reportedModel: typeof m.model === "string" ? m.model : s.reportedModel,
        usage: mergeAnthropicUsage(s.usage, readAnthropicUsage(m.usage)),
      };
      return { state, chunks: [chunk(state, { role: "assistant", content: "" })] };
    }
    case "content_block_start":
      return blockStart(s, d);
    case "content_block_delta":
      return blockDelta(s, d);
    case "message_delta": {
      const delta = isJsonObject(d.delta) ? d.delta : {};
      const state = { ...s, usage: mergeAnthropicUsage(s.usage, readAnthropicUsage(d.usage)) };
      if (typeof delta.stop_reason !== "string" || s.finishSent) return nothing(state);
      return { state: { ...state, finishSent: true }, chunks: [chunk(state, {}, finishReasonOf(delta.stop_reason))] };
    }
    case "message_stop": {
      const state = { ...s, stopped: true, finishSent: true };
      return { state, chunks: s.finishSent ? [] : [chunk(s, {}, "stop")] };
    }
    case "error": {
      const error = isJsonObject(d.error) ? d.error : {};
      const message = typeof error.message === "string" ? error.message : "The upstream stream failed";
      return nothing({ ...s, error: { status: statusOfAnthropicError(error.type), message } });
    }
    default:
      // ping, content_block_stop and events added after this was written carry nothing for an OpenAI client.
      return nothing(s);
  }
}

function blockStart(s: OpenAIStreamState, d: Json): OpenAIStreamStep {
  const block = isJsonObject(d.content_block) ? d.content_block : {};
  if (block.type === "text" && typeof block.text === "string" && block.text !== "") {
    return { state: s, chunks: [chunk(s, { content: block.text })] };
  }
  if (block.type !== "tool_use" || typeof d.index !== "number") return nothing(s);
  const index = s.toolCount;
  const input = isJsonObject(block.input) && Object.keys(block.input).length > 0 ? JSON.stringify(block.input) : "";
  const state = { ...s, toolIndexOf: { ...s.toolIndexOf, [d.index]: index }, toolCount: index + 1 };
  const call = { index, id: block.id, type: "function", function: { name: block.name, arguments: input } };
  return { state, chunks: [chunk(state, { tool_calls: [call] })] };
}

function blockDelta(s: OpenAIStreamState, d: Json): OpenAIStreamStep {
  const delta = isJsonObject(d.delta) ? d.delta : {};
  if (delta.type === "text_delta" && typeof delta.text === "string") {
    return { state: s, chunks: [chunk(s, { content: delta.text })] };
  }
  if (delta.type === "thinking_delta" && typeof delta.thinking === "string") {
    return { state: s, chunks: [chunk(s, { reasoning_content: delta.thinking })] };
  }
  const index = typeof d.index === "number" ? s.toolIndexOf[d.index] : undefined;
  if (delta.type === "input_json_delta" && index !== undefined && typeof delta.partial_json === "string") {
    if (delta.partial_json === "") return nothing(s);
    return { state: s, chunks: [chunk(s, { tool_calls: [{ index, function: { arguments: delta.partial_json } }] })] };
  }
  return nothing(s);
}
