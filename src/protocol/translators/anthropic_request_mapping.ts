// An OpenAI chat completion request → an Anthropic Messages body (with "model"; the backend framing decides where
// the model goes). Parameters are mapped by a table of rules, one per OpenAI field, so what is mapped, refused or
// ignored is readable in one place. A value Anthropic cannot express is a 422, never a silent clamp.
import type { ClientError } from "./translator.ts";
import type { Json } from "./anthropic_messages.ts";
import { inexpressible, isFailure, isJsonObject, malformed } from "./anthropic_messages.ts";
import type { MessageTarget } from "./anthropic_message_mapping.ts";
import { mapMessages } from "./anthropic_message_mapping.ts";

/**
 * Anthropic requires max_tokens; OpenAI clients often leave it out, meaning "as much as the model allows". We send
 * 4096 then: the largest output every Claude model accepts (the Claude 3 family stops at 4096), and LiteLLM's default
 * for the same gap. A longer answer ends with finish_reason "length", which tells the client to ask for more.
 */
export const DEFAULT_MAX_TOKENS = 4096;

type Rule = (value: unknown, t: MessageTarget) => Json | ClientError;

const ranged = (name: string, min: number, max: number, anthropicMax: number, field: string): Rule => (v, t) => {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    return malformed(`'${name}' must be a number from ${min} to ${max}`, name);
  }
  if (v > anthropicMax) {
    return inexpressible(t.backend, `${name} ${v} is above Anthropic's maximum ${anthropicMax}`, name);
  }
  return { [field]: v };
};

const refused = (name: string, why: string): Rule => (_v, t) => inexpressible(t.backend, why, name);

/**
 * OpenAI fields with a rule. Fields not listed are not sent: the sampling hints Anthropic has no counterpart for
 * (presence_penalty, frequency_penalty, logit_bias, seed), service tiers, store, metadata, prediction and
 * reasoning_effort, which Anthropic's own OpenAI compatibility layer documents as ignored too
 * (https://docs.anthropic.com/en/api/openai-sdk). reasoning_effort has no documented mapping to a thinking budget;
 * clients that want extended thinking send Anthropic's `thinking` object, which that layer also accepts.
 */
const RULES: Readonly<Record<string, Rule>> = {
  temperature: ranged("temperature", 0, 2, 1, "temperature"),
  top_p: ranged("top_p", 0, 1, 1, "top_p"),
  top_k: (v) =>
    Number.isInteger(v) && (v as number) >= 0
      ? { top_k: v }
      : malformed("'top_k' must be a non-negative integer", "top_k"),
  stop: (v) => {
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) {
      return malformed("'stop' must be a string or an array of strings", "stop");
    }
    return list.length === 0 ? {} : { stop_sequences: list };
  },
  n: (v, t) => {
    if (!Number.isInteger(v) || (v as number) < 1) return malformed("'n' must be a positive integer", "n");
    return v === 1 ? {} : inexpressible(t.backend, "Anthropic answers with one choice; n must be 1", "n");
  },
  user: (v) => {
    if (typeof v !== "string") return malformed("'user' must be a string", "user");
    return v === "" ? {} : { metadata: { user_id: v } };
  },
  response_format: (v, t) => responseFormat(v, t),
  thinking: (v) => isJsonObject(v) ? { thinking: v } : malformed("'thinking' must be an object", "thinking"),
  logprobs: (v, t) => v === false ? {} : inexpressible(t.backend, "Anthropic does not return logprobs", "logprobs"),
  top_logprobs: refused("top_logprobs", "Anthropic does not return logprobs"),
  audio: refused("audio", "Anthropic models do not produce audio"),
  modalities: (v, t) =>
    Array.isArray(v) && v.every((m) => m === "text")
      ? {}
      : inexpressible(t.backend, "Anthropic models only produce text", "modalities"),
  functions: refused("functions", "the deprecated functions field is not supported; send tools"),
  function_call: refused("function_call", "the deprecated function_call field is not supported; send tool_choice"),
};

/** json_schema maps to Anthropic's structured outputs (output_config.format); a model without them answers 400. */
function responseFormat(v: unknown, t: MessageTarget): Json | ClientError {
  if (!isJsonObject(v) || typeof v.type !== "string") {
    return malformed("'response_format' must be an object with a type", "response_format");
  }
  if (v.type === "text") return {};
  if (v.type === "json_schema") {
    const schema = isJsonObject(v.json_schema) ? v.json_schema.schema : undefined;
    if (!isJsonObject(schema)) {
      return malformed("'response_format.json_schema.schema' must be an object", "response_format.json_schema");
    }
    return { output_config: { format: { type: "json_schema", schema } } };
  }
  return inexpressible(
    t.backend,
    `response_format ${JSON.stringify(v.type)} has no Anthropic counterpart`,
    "response_format",
  );
}

function maxTokens(body: Readonly<Json>): number | ClientError {
  const name = body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
  const v = body[name];
  if (v == null) return DEFAULT_MAX_TOKENS;
  if (!Number.isInteger(v) || (v as number) < 1) return malformed(`'${name}' must be a positive integer`, name);
  return v as number;
}

function tools(body: Readonly<Json>, t: MessageTarget): Json | ClientError {
  const out: Json = {};
  if (body.tools != null) {
    if (!Array.isArray(body.tools)) return malformed("'tools' must be an array", "tools");
    const mapped: Json[] = [];
    for (const [i, tool] of body.tools.entries()) {
      const p = `tools[${i}]`;
      if (!isJsonObject(tool)) return malformed(`${p} must be an object`, p);
      if (tool.type !== "function") return inexpressible(t.backend, `${p} has type ${JSON.stringify(tool.type)}`, p);
      const fn = tool.function;
      if (!isJsonObject(fn) || typeof fn.name !== "string") return malformed(`${p}.function.name must be a string`, p);
      if (fn.parameters != null && !isJsonObject(fn.parameters)) {
        return malformed(`${p}.function.parameters must be an object`, p);
      }
      mapped.push({
        name: fn.name,
        ...(typeof fn.description === "string" ? { description: fn.description } : {}),
        input_schema: fn.parameters ?? { type: "object", properties: {} },
      });
    }
    if (mapped.length > 0) out.tools = mapped;
  }
  const choice = toolChoice(body.tool_choice, t);
  if (isFailure(choice)) return choice;
  const parallel = body.parallel_tool_calls;
  if (parallel != null && typeof parallel !== "boolean") {
    return malformed("'parallel_tool_calls' must be a boolean", "parallel_tool_calls");
  }
  // OpenAI allows parallel calls unless told otherwise; Anthropic's switch lives on tool_choice, which has no
  // such switch when it is "none".
  const effective = choice ?? (parallel === false && out.tools ? { type: "auto" } : undefined);
  if (effective) {
    out.tool_choice = parallel === false && effective.type !== "none"
      ? { ...effective, disable_parallel_tool_use: true }
      : effective;
  }
  return out;
}

function toolChoice(v: unknown, t: MessageTarget): Json | undefined | ClientError {
  if (v == null) return undefined;
  if (v === "auto") return { type: "auto" };
  if (v === "required") return { type: "any" };
  if (v === "none") return { type: "none" };
  const fn = isJsonObject(v) ? v.function : undefined;
  if (isJsonObject(v) && v.type === "function" && isJsonObject(fn) && typeof fn.name === "string") {
    return { type: "tool", name: fn.name };
  }
  if (isJsonObject(v) && v.type === "allowed_tools") {
    return inexpressible(t.backend, "tool_choice allowed_tools has no Anthropic counterpart", "tool_choice");
  }
  return malformed(`'tool_choice' must be "auto", "required", "none" or a function choice`, "tool_choice");
}

/** The Anthropic Messages body for an OpenAI chat request, "model" included and "stream" left to the framing. */
export function openAIChatToAnthropic(body: Readonly<Json>, model: string, t: MessageTarget): Json | ClientError {
  const max = maxTokens(body);
  if (isFailure(max)) return max;
  const conversation = mapMessages(body.messages, t);
  if (isFailure(conversation)) return conversation;
  const { system, messages } = conversation;
  const mappedTools = tools(body, t);
  if (isFailure(mappedTools)) return mappedTools;
  const out: Json = {
    model,
    max_tokens: max,
    ...(system.length === 1 ? { system: system[0]!.text } : system.length > 1 ? { system } : {}),
    messages,
    ...mappedTools,
  };
  for (const [name, rule] of Object.entries(RULES)) {
    const v = body[name];
    if (v === undefined || v === null) continue;
    const mapped = rule(v, t);
    if (isFailure(mapped)) return mapped;
    Object.assign(out, mapped);
  }
  return out;
}
