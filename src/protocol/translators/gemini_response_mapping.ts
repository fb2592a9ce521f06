// Vertex AI GenerateContentResponses to OpenAI chat completions and chunks. Pure: the stream mapping takes a state
// and returns the next one with the chunks to send. Vertex answers in proto3 JSON, which leaves out zero and empty
// fields: a candidate without "index" is candidate 0, and a usageMetadata without candidatesTokenCount reports 0.
// https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference#response
import { count, mergeUsage, type TokenUsage, usage } from "../usage.ts";
import { isObject, type JsonObject } from "./gemini_request_fields.ts";

export interface GeminiFunctionCall {
  readonly name: string;
  /** JSON text, as OpenAI's tool_calls carry arguments. */
  readonly args: string;
  readonly thoughtSignature?: string;
}

export interface GeminiCandidate {
  readonly index: number;
  /** The answer's text parts joined; thought summaries are not part of the answer. */
  readonly text: string;
  readonly calls: readonly GeminiFunctionCall[];
  readonly finishReason?: string;
  /** Vertex blocked the prompt: no candidates came, only promptFeedback.blockReason. */
  readonly blocked?: boolean;
}

export interface GeminiResponse {
  readonly candidates: readonly GeminiCandidate[];
  readonly usage?: TokenUsage;
  readonly modelVersion?: string;
  readonly createTime?: string;
  readonly responseId?: string;
}

/** Ids and times for a response that does not carry its own responseId and createTime. */
export interface ResponseIds {
  newId(): string;
  nowSeconds(): number;
}

export function readGeminiResponse(json: JsonObject): GeminiResponse {
  const raw = Array.isArray(json.candidates) ? json.candidates : [];
  const candidates = raw.flatMap((c, i) => (isObject(c) ? [readCandidate(c, i)] : []));
  const feedback = json.promptFeedback;
  const blocked = candidates.length === 0 && isObject(feedback) && typeof feedback.blockReason === "string";
  const reported = geminiUsage(json.usageMetadata);
  return {
    candidates: blocked ? [{ index: 0, text: "", calls: [], blocked: true }] : candidates,
    ...(reported ? { usage: reported } : {}),
    ...stringField(json, "modelVersion"),
    ...stringField(json, "createTime"),
    ...stringField(json, "responseId"),
  };
}

function stringField<K extends string>(o: JsonObject, key: K): { [P in K]?: string } {
  const v = o[key];
  return (typeof v === "string" && v !== "" ? { [key]: v } : {}) as { [P in K]?: string };
}

function readCandidate(c: JsonObject, position: number): GeminiCandidate {
  const content = isObject(c.content) ? c.content : {};
  const parts = (Array.isArray(content.parts) ? content.parts : []).filter(isObject);
  const text = parts.filter((p) => typeof p.text === "string" && p.thought !== true).map((p) => p.text).join("");
  const calls = parts.flatMap((p): GeminiFunctionCall[] => {
    const call = p.functionCall;
    if (!isObject(call) || typeof call.name !== "string") return [];
    const signature = typeof p.thoughtSignature === "string" ? { thoughtSignature: p.thoughtSignature } : {};
    return [{ name: call.name, args: JSON.stringify(isObject(call.args) ? call.args : {}), ...signature }];
  });
  const finish = typeof c.finishReason === "string" ? { finishReason: c.finishReason } : {};
  return { index: count(c.index) ?? position, text, calls, ...finish };
}

/** Undefined when the metadata holds no count (Vertex's early stream events may carry only trafficType). */
export function geminiUsage(meta: unknown): TokenUsage | undefined {
  if (!isObject(meta)) return undefined;
  const prompt = count(meta.promptTokenCount);
  const candidates = count(meta.candidatesTokenCount);
  const thoughts = count(meta.thoughtsTokenCount);
  const total = count(meta.totalTokenCount);
  const cached = count(meta.cachedContentTokenCount);
  if ([prompt, candidates, thoughts, total, cached].every((v) => v === undefined)) return undefined;
  // OpenAI's completion tokens include reasoning; Gemini counts thoughts apart from candidates. Once either is
  // reported, the other one missing is a proto3 zero.
  const output = candidates === undefined && thoughts === undefined ? undefined : (candidates ?? 0) + (thoughts ?? 0);
  return usage({
    inputTokens: prompt,
    outputTokens: output,
    totalTokens: total,
    cachedInputTokens: cached,
    reasoningTokens: thoughts,
  });
}

/** OpenAI's usage object; undefined when nothing was reported. Its three counts are required by the schema, so one
 * Vertex left out is written as the proto3 zero it stands for; the details appear only when reported. */
export function openAIUsage(u: TokenUsage): JsonObject | undefined {
  if (u.inputTokens === undefined && u.outputTokens === undefined && u.totalTokens === undefined) return undefined;
  const prompt = u.inputTokens ?? 0;
  const completion = u.outputTokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: u.totalTokens ?? prompt + completion,
    ...(u.cachedInputTokens !== undefined ? { prompt_tokens_details: { cached_tokens: u.cachedInputTokens } } : {}),
    ...(u.reasoningTokens !== undefined ? { completion_tokens_details: { reasoning_tokens: u.reasoningTokens } } : {}),
  };
}

const CONTENT_FILTER = new Set([
  "SAFETY",
  "RECITATION",
  "BLOCKLIST",
  "PROHIBITED_CONTENT",
  "SPII",
  "IMAGE_SAFETY",
  "IMAGE_PROHIBITED_CONTENT",
  "IMAGE_RECITATION",
  "MODEL_ARMOR",
]);

/** Unknown reasons (OTHER, MALFORMED_FUNCTION_CALL, ...) end the turn without a filter: "stop". */
export function finishReason(c: GeminiCandidate, hadToolCalls: boolean): string | null {
  if (c.blocked || (c.finishReason !== undefined && CONTENT_FILTER.has(c.finishReason))) return "content_filter";
  if (c.finishReason === "MAX_TOKENS") return "length";
  if (c.finishReason === undefined) return null;
  return hadToolCalls ? "tool_calls" : "stop";
}

function seconds(createTime: string | undefined): number | undefined {
  const ms = createTime === undefined ? NaN : Date.parse(createTime);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

function toolCall(base: string, choice: number, n: number, call: GeminiFunctionCall): Record<string, unknown> {
  return {
    id: `call_${base}_${choice}_${n}`,
    type: "function",
    function: { name: call.name, arguments: call.args },
    ...(call.thoughtSignature !== undefined
      ? { extra_content: { google: { thought_signature: call.thoughtSignature } } }
      : {}),
  };
}

export function toChatCompletion(r: GeminiResponse, requestModel: string, ids: ResponseIds): JsonObject {
  const base = r.responseId ?? ids.newId();
  const choices = r.candidates.map((c) => ({
    index: c.index,
    message: {
      role: "assistant",
      content: c.text === "" ? null : c.text,
      ...(c.calls.length > 0 ? { tool_calls: c.calls.map((call, n) => toolCall(base, c.index, n, call)) } : {}),
    },
    logprobs: null,
    finish_reason: finishReason(c, c.calls.length > 0),
  }));
  const u = r.usage ? openAIUsage(r.usage) : undefined;
  return {
    id: `chatcmpl-${base}`,
    object: "chat.completion",
    created: seconds(r.createTime) ?? ids.nowSeconds(),
    model: r.modelVersion ?? requestModel,
    choices,
    ...(u ? { usage: u } : {}),
  };
}

export interface StreamContext {
  readonly requestModel: string;
  /** The client asked for stream_options.include_usage (a forced usage report stays hidden from it). */
  readonly includeUsage: boolean;
  readonly ids: ResponseIds;
}

interface ChoiceState {
  readonly toolCalls: number;
  readonly finished: boolean;
}

export interface StreamState {
  readonly base?: string;
  readonly created?: number;
  readonly model?: string;
  readonly choices: ReadonlyMap<number, ChoiceState>;
  /** Vertex repeats usageMetadata on every event; the later counts win. */
  readonly usage: TokenUsage;
}

export const initialStreamState: StreamState = { choices: new Map(), usage: {} };

export function streamEvent(
  s: StreamState,
  r: GeminiResponse,
  ctx: StreamContext,
): { readonly state: StreamState; readonly chunks: readonly JsonObject[] } {
  const base = s.base ?? r.responseId ?? ctx.ids.newId();
  const created = s.created ?? seconds(r.createTime) ?? ctx.ids.nowSeconds();
  const model = r.modelVersion ?? s.model ?? ctx.requestModel;
  const head = { id: `chatcmpl-${base}`, object: "chat.completion.chunk", created, model };
  const tail = ctx.includeUsage ? { usage: null } : {};
  const chunk = (index: number, delta: JsonObject, finish: string | null) => ({
    ...head,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
    ...tail,
  });
  const choices = new Map(s.choices);
  const chunks: JsonObject[] = [];
  for (const c of r.candidates) {
    const before = choices.get(c.index);
    if (before?.finished) continue;
    if (!before) chunks.push(chunk(c.index, { role: "assistant", content: "" }, null));
    const toolCalls = before?.toolCalls ?? 0;
    const delta = {
      ...(c.text !== "" ? { content: c.text } : {}),
      ...(c.calls.length > 0
        ? {
          tool_calls: c.calls.map((call, k) => ({
            index: toolCalls + k,
            ...toolCall(base, c.index, toolCalls + k, call),
          })),
        }
        : {}),
    };
    if (Object.keys(delta).length > 0) chunks.push(chunk(c.index, delta, null));
    const after = { toolCalls: toolCalls + c.calls.length, finished: false };
    const finish = finishReason(c, after.toolCalls > 0);
    if (finish !== null) chunks.push(chunk(c.index, {}, finish));
    choices.set(c.index, { ...after, finished: finish !== null });
  }
  const merged = r.usage ? mergeUsage(s.usage, r.usage) : s.usage;
  return { state: { base, created, model, choices, usage: merged }, chunks };
}

/** The end of the upstream stream: the usage chunk, or why the stream is incomplete. */
export function streamEnd(
  s: StreamState,
  ctx: StreamContext,
): { readonly chunks: readonly JsonObject[]; readonly failure?: string } {
  const open = [...s.choices.values()].some((c) => !c.finished);
  if (s.choices.size === 0 || open) {
    return { chunks: [], failure: "GCP Vertex AI's stream ended before every candidate had a finish reason" };
  }
  const u = ctx.includeUsage ? openAIUsage(s.usage) : undefined;
  if (!u) return { chunks: [] };
  const id = `chatcmpl-${s.base}`;
  return {
    chunks: [{ id, object: "chat.completion.chunk", created: s.created, model: s.model, choices: [], usage: u }],
  };
}

/** The message of a Vertex error body: {"error": {code, message, status}}, or a one-element array of it (what
 * streamGenerateContent answers before it starts streaming). */
export function vertexErrorMessage(json: unknown): string | undefined {
  const body = Array.isArray(json) && json.length === 1 ? json[0] : json;
  const error = isObject(body) ? body.error : undefined;
  if (!isObject(error)) return undefined;
  const message = typeof error.message === "string" && error.message !== "" ? error.message : "no message";
  return typeof error.status === "string" ? `${message} (${error.status})` : message;
}
