// What every translator of the Anthropic Messages family shares. The Anthropic API, Bedrock's InvokeModel and Vertex
// AI's rawPredict all take the same Messages body and answer with the same message JSON and stream events; only the
// framing differs (anthropic_backends.ts). This file holds the vocabulary: stream events, usage, stop reasons, errors.
import type { TokenUsage } from "../usage.ts";
import type { ClientError } from "./translator.ts";
import { count, usage } from "../usage.ts";

export type Json = Record<string, unknown>;

export function isJsonObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const utf8 = new TextDecoder();

/** The bytes of several chunks, in order. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A JSON value from bytes, or undefined when they are not JSON. */
export function parseJson(bytes: Uint8Array | string): unknown {
  try {
    return JSON.parse(typeof bytes === "string" ? bytes : utf8.decode(bytes));
  } catch {
    return undefined;
  }
}

/** One Anthropic stream event (message_start, content_block_delta, ..., error), already parsed. */
export interface AnthropicEvent {
  readonly type: string;
  readonly data: Json;
  /** The event's JSON as received, for clients that get the event itself. */
  readonly raw: string;
}

/** Counts as Anthropic reports them (message JSON, message_start, message_delta), before they become TokenUsage. */
export interface AnthropicUsageReport {
  readonly input?: number;
  readonly output?: number;
  readonly cacheRead?: number;
  readonly cacheCreation?: number;
  readonly thinking?: number;
}

export function readAnthropicUsage(u: unknown): AnthropicUsageReport {
  if (!isJsonObject(u)) return {};
  const details = isJsonObject(u.output_tokens_details) ? u.output_tokens_details : {};
  const out: Record<string, number> = {};
  const fields: [keyof AnthropicUsageReport, unknown][] = [
    ["input", u.input_tokens],
    ["output", u.output_tokens],
    ["cacheRead", u.cache_read_input_tokens],
    ["cacheCreation", u.cache_creation_input_tokens],
    ["thinking", details.thinking_tokens],
  ];
  for (const [k, v] of fields) {
    const n = count(v);
    if (n !== undefined) out[k] = n;
  }
  return out;
}

/** message_delta counts are cumulative, so a later report replaces an earlier one field by field. */
export function mergeAnthropicUsage(earlier: AnthropicUsageReport, later: AnthropicUsageReport): AnthropicUsageReport {
  return { ...earlier, ...later };
}

/**
 * Anthropic's input_tokens leaves out the tokens read from or written to the prompt cache; the prompt really was
 * input + cache_read + cache_creation tokens. Like Envoy AI Gateway (ExtractTokenUsageFromExplicitCaching), input
 * and total count all three, and the cache parts are kept apart for cost attribution. Without input_tokens the
 * input stays unset rather than being guessed from the cache parts.
 */
export function tokenUsageOf(r: AnthropicUsageReport): TokenUsage {
  const input = r.input === undefined ? undefined : r.input + (r.cacheRead ?? 0) + (r.cacheCreation ?? 0);
  return usage({
    inputTokens: input,
    outputTokens: r.output,
    totalTokens: input !== undefined && r.output !== undefined ? input + r.output : undefined,
    cachedInputTokens: r.cacheRead,
    cacheCreationInputTokens: r.cacheCreation,
    reasoningTokens: r.thinking,
  });
}

/** OpenAI's usage object, with only what was reported; undefined when neither side of the count is known. */
export function openAIUsageOf(r: AnthropicUsageReport): Json | undefined {
  const u = tokenUsageOf(r);
  if (u.inputTokens === undefined && u.outputTokens === undefined) return undefined;
  return {
    ...(u.inputTokens !== undefined ? { prompt_tokens: u.inputTokens } : {}),
    ...(u.outputTokens !== undefined ? { completion_tokens: u.outputTokens } : {}),
    ...(u.totalTokens !== undefined ? { total_tokens: u.totalTokens } : {}),
    // OpenAI's cached_tokens are cache reads; cache writes have no OpenAI field.
    ...(u.cachedInputTokens !== undefined ? { prompt_tokens_details: { cached_tokens: u.cachedInputTokens } } : {}),
    ...(u.reasoningTokens !== undefined ? { completion_tokens_details: { reasoning_tokens: u.reasoningTokens } } : {}),
  };
}

const FINISH_REASONS: Readonly<Record<string, string>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  // A server tool (web search) paused a long turn; the turn ended for this response, as Envoy AI Gateway maps it.
  pause_turn: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
};

/** OpenAI's finish_reason for Anthropic's stop_reason; an unknown reason ends the turn normally. */
export function finishReasonOf(stopReason: unknown): string {
  return (typeof stopReason === "string" ? FINISH_REASONS[stopReason] : undefined) ?? "stop";
}

const ERROR_STATUS: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
};

/** The HTTP status an Anthropic error type stands for (a mid-stream error event carries no status of its own). */
export function statusOfAnthropicError(type: unknown): number {
  return (typeof type === "string" ? ERROR_STATUS[type] : undefined) ?? 500;
}

/** Whether a body already is Anthropic's error envelope {"type":"error","error":{"type","message"}}. */
export function isAnthropicErrorBody(v: unknown): v is { type: "error"; error: { type: string; message: string } } {
  return isJsonObject(v) && v.type === "error" && isJsonObject(v.error) && typeof v.error.type === "string" &&
    typeof v.error.message === "string";
}

/**
 * The message of an upstream error body, whichever family member sent it: Anthropic {"error":{"message"}},
 * Bedrock {"message"} (its type travels in x-amzn-errortype), Vertex {"error":{"code","message","status"}} or a
 * one-element array of it, or plain text.
 */
export function upstreamErrorMessage(bytes: Uint8Array, status: number): string {
  const json = parseJson(bytes);
  const first = Array.isArray(json) ? json[0] : json;
  if (isJsonObject(first)) {
    const nested = isJsonObject(first.error) ? first.error.message : undefined;
    for (const m of [nested, first.message, first.Message]) if (typeof m === "string" && m !== "") return m;
  }
  const text = utf8.decode(bytes).trim();
  if (json === undefined && text !== "") return text.length > 500 ? `${text.slice(0, 500)}…` : text;
  return `The upstream answered with status ${status}`;
}

/** The client's request is malformed for its own API (400). */
export function malformed(message: string, param?: string): ClientError {
  return { status: 400, message, ...(param !== undefined ? { param } : {}) };
}

/** The client's request is valid but the backend cannot express it (422). */
export function inexpressible(backend: string, message: string, param?: string): ClientError {
  return {
    status: 422,
    message: `Cannot translate request for "${backend}": ${message}`,
    ...(param !== undefined ? { param } : {}),
  };
}

/** For the mapping helpers, whose successful results never carry a numeric `status`. */
export function isFailure(x: unknown): x is ClientError {
  return isJsonObject(x) && typeof x.status === "number" && typeof x.message === "string";
}
