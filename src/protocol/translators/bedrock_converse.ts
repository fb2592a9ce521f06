// OpenAI chat completion request → Bedrock Converse request, plus what every Bedrock runtime operation shares (the
// /model/{id}/... path, the error answer). https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
//
// Each OpenAI parameter either maps onto Converse, is validated and knowingly dropped (a hint with no effect on the
// output: seed, user, metadata, store, service_tier), or is refused with 422 when it would change the answer and
// Bedrock cannot honour it (n > 1, logprobs, penalties, JSON modes...). Unknown fields are ignored, as OpenAI does.
import { clientErrorBody } from "./translator.ts";
import type { ClientError } from "./translator.ts";

type Json = Record<string, unknown>;

export type ContentBlock =
  | { readonly text: string }
  | { readonly image: { readonly format: string; readonly source: { readonly bytes: string } } }
  | { readonly toolUse: { readonly toolUseId: string; readonly name: string; readonly input: unknown } }
  | { readonly toolResult: { readonly toolUseId: string; readonly content: readonly { readonly text: string }[] } };

export interface ConverseMessage {
  readonly role: "user" | "assistant";
  readonly content: ContentBlock[];
}

export interface ConverseRequest {
  readonly messages: readonly ConverseMessage[];
  readonly system?: readonly { readonly text: string }[];
  readonly inferenceConfig?: InferenceConfig;
  readonly toolConfig?: { readonly tools: readonly Json[]; readonly toolChoice?: Json };
  readonly additionalModelRequestFields?: Json;
}

interface InferenceConfig {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stopSequences?: string[];
}

const PREFIX = "Cannot translate request for AWS Bedrock: ";

/** The upstream path of a Bedrock runtime operation; model ids (ARNs included) are one encoded path segment. */
export function bedrockModelPath(
  model: string,
  operation: "converse" | "converse-stream" | "invoke",
): string | ClientError {
  if (model === "") return { status: 400, message: `${PREFIX}model is empty`, param: "model" };
  try {
    return `/model/${encodeURIComponent(model)}/${operation}`;
  } catch {
    return { status: 400, message: `${PREFIX}model is not a valid model id`, param: "model" };
  }
}

/** Bedrock runtime's error answer ({"message"}, its type in x-amzn-errortype) in OpenAI's error envelope. */
export function bedrockErrorBody(status: number, headers: ReadonlyMap<string, string>, body: Uint8Array): Uint8Array {
  let message: unknown;
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(body));
    if (isObject(parsed)) message = parsed.message ?? parsed.Message;
  } catch {
    message = undefined;
  }
  const type = headers.get("x-amzn-errortype")?.split(":")[0];
  const fallback = `AWS Bedrock answered HTTP ${status}${type ? ` (${type})` : ""}`;
  return clientErrorBody("openai", status, typeof message === "string" && message !== "" ? message : fallback);
}

/** The Converse request for an OpenAI chat body, or the reason the client gets for not sending one. */
export function toConverseRequest(body: Json): ConverseRequest | ClientError {
  try {
    return converseRequest(body);
  } catch (e) {
    // Only Refusal reports invalid input; anything else thrown is a bug (the fuzz test looks for them).
    if (!(e instanceof Refusal)) throw e;
    return { status: e.status, message: `${PREFIX}${e.param} ${e.reason}`, param: e.param };
  }
}

function converseRequest(body: Json): ConverseRequest {
  const { system, messages } = converseMessages(body.messages);
  if (messages.length === 0) {
    throw new Refusal(422, "messages", "holds only system messages; Bedrock needs a user message");
  }
  checkUnsupported(body);
  const inferenceConfig = inference(body);
  const toolConfig = tools(body, messages);
  const extra = additionalFields(body);
  return {
    messages,
    ...(system.length > 0 ? { system } : {}),
    ...(Object.keys(inferenceConfig).length > 0 ? { inferenceConfig } : {}),
    ...(toolConfig ? { toolConfig } : {}),
    ...(extra ? { additionalModelRequestFields: extra } : {}),
  };
}

/** null is OpenAI's "not set" for every optional parameter. */
function present(body: Json, name: string): unknown {
  const v = body[name];
  return v === null ? undefined : v;
}

function numberIn(body: Json, name: string, min: number, max: number): number | undefined {
  const v = present(body, name);
  if (v === undefined) return undefined;
  if (!inRange(v, min, max)) throw new Refusal(400, name, `must be a number from ${min} to ${max}`);
  return v as number;
}

function inference(body: Json): InferenceConfig {
  const out: InferenceConfig = {};
  for (const name of ["max_tokens", "max_completion_tokens"]) {
    const v = present(body, name);
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
      throw new Refusal(400, name, "must be a positive integer");
    }
    // max_completion_tokens replaces the deprecated max_tokens, so it wins when both are sent.
    out.maxTokens = v;
  }
  const temperature = numberIn(body, "temperature", 0, 2);
  if (temperature !== undefined && temperature > 1) {
    throw new Refusal(422, "temperature", "must be at most 1 for Bedrock");
  }
  if (temperature !== undefined) out.temperature = temperature;
  const topP = numberIn(body, "top_p", 0, 1);
  if (topP !== undefined) out.topP = topP;
  const stop = present(body, "stop");
  if (typeof stop === "string") out.stopSequences = [stop];
  else if (Array.isArray(stop) && stop.every((s) => typeof s === "string")) {
    if (stop.length > 0) out.stopSequences = stop;
  } else if (stop !== undefined) throw new Refusal(400, "stop", "must be a string or an array of strings");
  return out;
}

/**
 * OpenAI parameters Converse has no equivalent for. Each is checked for its OpenAI shape (400 when malformed), then
 * refused with 422 unless it holds the value that changes nothing (`neutral`), so no client gets a silently
 * different answer than it asked for.
 */
interface ParamRule {
  readonly shape: string;
  ok(v: unknown): boolean;
  neutral(v: unknown): boolean;
  readonly why?: string;
}

const ALWAYS_REFUSED: ParamRule = { shape: "", ok: () => true, neutral: () => false };

const WITHOUT_EQUIVALENT: Readonly<Record<string, ParamRule>> = {
  n: {
    shape: "a positive integer",
    ok: (v) => Number.isSafeInteger(v) && (v as number) >= 1,
    neutral: (v) => v === 1,
    why: "must be 1: Bedrock Converse answers with one choice",
  },
  presence_penalty: { shape: "a number from -2 to 2", ok: (v) => inRange(v, -2, 2), neutral: (v) => v === 0 },
  frequency_penalty: { shape: "a number from -2 to 2", ok: (v) => inRange(v, -2, 2), neutral: (v) => v === 0 },
  logit_bias: { shape: "an object", ok: isObject, neutral: (v) => Object.keys(v as Json).length === 0 },
  logprobs: { shape: "a boolean", ok: (v) => typeof v === "boolean", neutral: (v) => v === false },
  top_logprobs: { shape: "an integer from 0 to 20", ok: (v) => inRange(v, 0, 20), neutral: (v) => v === 0 },
  response_format: {
    shape: "an object with a type",
    ok: (v) => isObject(v) && typeof v.type === "string",
    neutral: (v) => (v as Json).type === "text",
  },
  modalities: { shape: "an array", ok: Array.isArray, neutral: (v) => (v as unknown[]).every((m) => m === "text") },
  parallel_tool_calls: { shape: "a boolean", ok: (v) => typeof v === "boolean", neutral: (v) => v === true },
  audio: ALWAYS_REFUSED,
  prediction: ALWAYS_REFUSED,
  reasoning_effort: ALWAYS_REFUSED,
  web_search_options: ALWAYS_REFUSED,
  functions: ALWAYS_REFUSED,
  function_call: ALWAYS_REFUSED,
};

function inRange(v: unknown, min: number, max: number): boolean {
  return typeof v === "number" && Number.isFinite(v) && v >= min && v <= max;
}

function checkUnsupported(body: Json): void {
  for (const [name, rule] of Object.entries(WITHOUT_EQUIVALENT)) {
    const v = present(body, name);
    if (v === undefined) continue;
    if (!rule.ok(v)) throw new Refusal(400, name, `must be ${rule.shape}`);
    if (!rule.neutral(v)) throw new Refusal(422, name, rule.why ?? "is not supported by Bedrock Converse");
  }
  const options = present(body, "stream_options");
  if (
    options !== undefined && !(isObject(options) && [true, false, undefined].includes(options.include_usage as never))
  ) {
    throw new Refusal(400, "stream_options", "must be an object whose include_usage is a boolean");
  }
}

function tools(body: Json, messages: readonly ConverseMessage[]): ConverseRequest["toolConfig"] {
  const list = present(body, "tools");
  const choice = present(body, "tool_choice");
  if (list !== undefined && !Array.isArray(list)) throw new Refusal(400, "tools", "must be an array");
  const specs = (list ?? []).map((t, i) => toolSpec(t, `tools[${i}]`));
  if (specs.length === 0) {
    if (choice !== undefined && choice !== "none") throw new Refusal(400, "tool_choice", "needs tools");
    return undefined;
  }
  const names = specs.map((s) => s.toolSpec.name);
  if (choice === undefined) return { tools: specs };
  if (choice === "auto") return { tools: specs, toolChoice: { auto: {} } };
  if (choice === "required") return { tools: specs, toolChoice: { any: {} } };
  if (choice === "none") {
    // Converse has no "none": leaving the tools out forbids calls, but a history holding tool calls needs them.
    if (!hasToolBlocks(messages)) return undefined;
    throw new Refusal(422, "tool_choice", '"none" is not supported by Bedrock when messages hold tool calls');
  }
  if (isObject(choice) && choice.type === "function" && isObject(choice.function)) {
    const name = choice.function.name;
    if (typeof name !== "string" || !names.includes(name)) {
      throw new Refusal(400, "tool_choice.function.name", "must name one of the tools");
    }
    return { tools: specs, toolChoice: { tool: { name } } };
  }
  if (isObject(choice) && typeof choice.type === "string" && choice.type !== "function") {
    throw new Refusal(422, "tool_choice", `type ${JSON.stringify(choice.type)} is not supported for Bedrock`);
  }
  throw new Refusal(400, "tool_choice", 'must be "none", "auto", "required" or a function choice');
}

function toolSpec(tool: unknown, at: string): { toolSpec: { name: string } & Json } {
  if (!isObject(tool)) throw new Refusal(400, at, "must be an object");
  if (tool.type !== "function") {
    throw new Refusal(422, `${at}.type`, `${JSON.stringify(tool.type)} is not supported for Bedrock; use "function"`);
  }
  const fn = tool.function;
  if (!isObject(fn) || typeof fn.name !== "string" || fn.name === "") {
    throw new Refusal(400, `${at}.function.name`, "must be a non-empty string");
  }
  const description = fn.description ?? undefined;
  if (description !== undefined && typeof description !== "string") {
    throw new Refusal(400, `${at}.function.description`, "must be a string");
  }
  const parameters = fn.parameters ?? { type: "object", properties: {} };
  if (!isObject(parameters)) throw new Refusal(400, `${at}.function.parameters`, "must be a JSON schema object");
  return {
    toolSpec: { name: fn.name, ...(description ? { description } : {}), inputSchema: { json: parameters } },
  };
}

/** Model-specific fields Converse forwards untouched: the client's additionalModelRequestFields (extra_body) and
 * Anthropic's extended-thinking `thinking` object. */
function additionalFields(body: Json): Json | undefined {
  const extra = present(body, "additionalModelRequestFields");
  if (extra !== undefined && !isObject(extra)) {
    throw new Refusal(400, "additionalModelRequestFields", "must be an object");
  }
  const thinking = present(body, "thinking");
  if (thinking !== undefined && !isObject(thinking)) throw new Refusal(400, "thinking", "must be an object");
  if (!extra && !thinking) return undefined;
  return { ...extra, ...(thinking ? { thinking } : {}) };
}

// --- messages ---

/** Invalid input found while mapping: 400 malformed for OpenAI, 422 valid but not expressible for Bedrock. */
class Refusal {
  constructor(readonly status: 400 | 422, readonly param: string, readonly reason: string) {}
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function hasToolBlocks(messages: readonly ConverseMessage[]): boolean {
  return messages.some((m) => m.content.some((b) => "toolUse" in b || "toolResult" in b));
}

/** System and developer messages, wherever they are, become Converse's `system`; tool results become user turns. */
function converseMessages(list: unknown): { system: { text: string }[]; messages: ConverseMessage[] } {
  if (!Array.isArray(list) || list.length === 0) throw new Refusal(400, "messages", "must be a non-empty array");
  const system: { text: string }[] = [];
  const messages: ConverseMessage[] = [];
  const push = (role: "user" | "assistant", content: ContentBlock[]) => {
    // Some clients send an assistant turn with neither text nor tool calls; Converse refuses empty content.
    if (content.length === 0) return;
    // Converse wants user and assistant turns to alternate: consecutive tool results (and a user message that
    // follows them) are merged into one user turn, as Bedrock expects tool results answering one assistant turn.
    const last = messages.at(-1);
    if (last?.role === role) last.content.push(...content);
    else messages.push({ role, content });
  };
  for (const [i, m] of list.entries()) {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw new Refusal(400, at, "must be an object");
    if (m.role === "system" || m.role === "developer") {
      system.push(...textParts(m.content, `${at}.content`).map((text) => ({ text })));
    } else if (m.role === "user") push("user", userContent(m.content, `${at}.content`));
    else if (m.role === "assistant") push("assistant", assistantContent(m, at));
    else if (m.role === "tool") push("user", [toolResult(m, at)]);
    else if (m.role === "function") throw new Refusal(422, `${at}.role`, '"function" is not supported; use "tool"');
    else throw new Refusal(400, `${at}.role`, "must be system, developer, user, assistant or tool");
  }
  return { system, messages };
}

function textParts(content: unknown, at: string): string[] {
  if (typeof content === "string") return [content];
  if (!Array.isArray(content)) throw new Refusal(400, at, "must be a string or an array of text parts");
  return content.map((part, j) => {
    if (isObject(part) && (part.type === "text" || part.type === undefined) && typeof part.text === "string") {
      return part.text;
    }
    throw new Refusal(400, `${at}[${j}]`, "must be a text part");
  });
}

function userContent(content: unknown, at: string): ContentBlock[] {
  if (typeof content === "string") return [{ text: content }];
  if (!Array.isArray(content) || content.length === 0) {
    throw new Refusal(400, at, "must be a string or a non-empty array of content parts");
  }
  return content.map((part, j): ContentBlock => {
    const here = `${at}[${j}]`;
    if (!isObject(part)) throw new Refusal(400, here, "must be an object");
    if (part.type === "text" && typeof part.text === "string") return { text: part.text };
    if (part.type === "image_url") return imageBlock(part.image_url, `${here}.image_url`);
    if (part.type === "input_audio" || part.type === "file") {
      throw new Refusal(422, `${here}.type`, `${JSON.stringify(part.type)} is not supported for Bedrock Converse`);
    }
    throw new Refusal(400, here, "must be a text or image_url part");
  });
}

const IMAGE_FORMATS: Readonly<Record<string, string>> = {
  "image/png": "png",
  "image/jpeg": "jpeg",
  "image/jpg": "jpeg",
  "image/gif": "gif",
  "image/webp": "webp",
};

/** Converse takes image bytes only; the gateway does not fetch URLs (no I/O in a translator, and no SSRF). */
function imageBlock(image: unknown, at: string): ContentBlock {
  const url = isObject(image) ? image.url : undefined;
  if (typeof url !== "string") throw new Refusal(400, `${at}.url`, "must be a string");
  if (/^https?:/i.test(url)) {
    throw new Refusal(422, `${at}.url`, "must be a base64 data URL: Bedrock cannot fetch images from URLs");
  }
  const m = /^data:([^;,]*)((?:;[^;,]*)*),(.*)$/s.exec(url);
  if (!m) throw new Refusal(400, `${at}.url`, "must be a data URL or an http(s) URL");
  const mime = m[1]!.toLowerCase();
  const format = IMAGE_FORMATS[mime];
  if (!format) {
    throw new Refusal(422, `${at}.url`, `has image type ${JSON.stringify(mime)}; Bedrock takes png, jpeg, gif, webp`);
  }
  const bytes = m[3]!;
  if (!m[2]!.toLowerCase().split(";").includes("base64")) throw new Refusal(422, `${at}.url`, "must be base64");
  if (bytes.length === 0 || bytes.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(bytes)) {
    throw new Refusal(400, `${at}.url`, "holds invalid base64 data");
  }
  return { image: { format, source: { bytes } } };
}

function assistantContent(m: Json, at: string): ContentBlock[] {
  const content = m.content ?? undefined;
  const blocks: ContentBlock[] = [];
  if (typeof content === "string") {
    if (content !== "") blocks.push({ text: content });
  } else if (Array.isArray(content)) {
    content.forEach((part, j) => {
      const text = isObject(part) ? (part.type === "refusal" ? part.refusal : part.text) : undefined;
      if (!isObject(part) || !["text", "refusal"].includes(part.type as string) || typeof text !== "string") {
        throw new Refusal(400, `${at}.content[${j}]`, "must be a text or refusal part");
      }
      if (text !== "") blocks.push({ text });
    });
  } else if (content !== undefined) throw new Refusal(400, `${at}.content`, "must be a string, an array or null");
  const calls = m.tool_calls ?? undefined;
  if (calls !== undefined && !Array.isArray(calls)) throw new Refusal(400, `${at}.tool_calls`, "must be an array");
  for (const [j, call] of (calls ?? []).entries()) blocks.push(toolUse(call, `${at}.tool_calls[${j}]`));
  return blocks;
}

function toolUse(call: unknown, at: string): ContentBlock {
  if (!isObject(call) || typeof call.id !== "string" || call.id === "") {
    throw new Refusal(400, `${at}.id`, "must be a non-empty string");
  }
  const fn = call.function;
  if (!isObject(fn) || typeof fn.name !== "string") throw new Refusal(400, `${at}.function.name`, "must be a string");
  const args = fn.arguments ?? "";
  if (typeof args !== "string") throw new Refusal(400, `${at}.function.arguments`, "must be a string");
  let input: unknown = {};
  try {
    // Some clients send "" for a call without arguments.
    if (args.trim() !== "") input = JSON.parse(args);
  } catch {
    input = undefined;
  }
  if (!isObject(input)) {
    throw new Refusal(422, `${at}.function.arguments`, "must be a JSON object: Bedrock tool input is one");
  }
  return { toolUse: { toolUseId: call.id, name: fn.name, input } };
}

function toolResult(m: Json, at: string): ContentBlock {
  if (typeof m.tool_call_id !== "string" || m.tool_call_id === "") {
    throw new Refusal(400, `${at}.tool_call_id`, "must be a non-empty string");
  }
  const content = textParts(m.content, `${at}.content`).map((text) => ({ text }));
  return { toolResult: { toolUseId: m.tool_call_id, content } };
}
