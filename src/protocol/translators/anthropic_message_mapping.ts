// OpenAI chat messages → Anthropic's top-level `system` and alternating user/assistant turns of content blocks.
// System and developer messages are hoisted into `system` wherever they stand (as Anthropic's own OpenAI
// compatibility layer does); tool results become tool_result blocks of a user turn; consecutive turns of one role
// are merged, because Anthropic wants the roles to alternate.
import type { ClientError } from "./translator.ts";
import type { Json } from "./anthropic_messages.ts";
import { inexpressible, isFailure, isJsonObject, malformed, parseJson } from "./anthropic_messages.ts";

export interface MessageTarget {
  /** Backend schema name, for error messages. */
  readonly backend: string;
  /** Whether the backend fetches images by URL itself (Anthropic does; Bedrock and Vertex want the bytes). */
  readonly urlImages: boolean;
}

export interface AnthropicConversation {
  readonly system: readonly Json[];
  readonly messages: readonly Json[];
}

interface Turn {
  readonly role: "user" | "assistant";
  readonly content: Json[];
}

export function mapMessages(messages: unknown, t: MessageTarget): AnthropicConversation | ClientError {
  if (!Array.isArray(messages)) return malformed("'messages' must be an array", "messages");
  const system: Json[] = [];
  const turns: Turn[] = [];
  for (const [i, m] of messages.entries()) {
    const param = `messages[${i}]`;
    if (!isJsonObject(m)) return malformed(`${param} must be an object`, param);
    const role = m.role;
    let mapped: Json[] | ClientError;
    if (role === "system" || role === "developer") {
      mapped = textParts(m.content, `${param}.content`);
      if (isFailure(mapped)) return mapped;
      system.push(...mapped);
      continue;
    }
    if (role === "user") mapped = userContent(m.content, `${param}.content`, t);
    else if (role === "assistant") mapped = assistantContent(m, param, t);
    else if (role === "tool") mapped = toolResult(m, param);
    else if (role === "function") {
      return inexpressible(t.backend, `${param} uses the deprecated "function" role; send "tool" messages`, param);
    } else return malformed(`${param}.role must be one of system, developer, user, assistant, tool`, `${param}.role`);
    if (isFailure(mapped)) return mapped;
    const turnRole = role === "assistant" ? "assistant" : "user";
    const last = turns.at(-1);
    if (mapped.length === 0) continue;
    if (last?.role === turnRole) last.content.push(...mapped);
    else turns.push({ role: turnRole, content: mapped });
  }
  if (turns.length === 0) return inexpressible(t.backend, "messages holds no user or assistant content", "messages");
  return { system, messages: turns.map((turn) => ({ role: turn.role, content: toolResultsFirst(turn.content) })) };
}

/** Anthropic wants a user turn's tool_result blocks before anything else in it. */
function toolResultsFirst(blocks: Json[]): Json[] {
  return [...blocks.filter((b) => b.type === "tool_result"), ...blocks.filter((b) => b.type !== "tool_result")];
}

/** Text-only content (system, developer, tool): a string or an array of text parts. Empty text is dropped. */
function textParts(content: unknown, param: string): Json[] | ClientError {
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }];
  if (!Array.isArray(content)) return malformed(`${param} must be a string or an array of text parts`, param);
  const out: Json[] = [];
  for (const [i, part] of content.entries()) {
    if (!isJsonObject(part) || part.type !== "text" || typeof part.text !== "string") {
      return malformed(`${param}[${i}] must be a text part {"type":"text","text":...}`, `${param}[${i}]`);
    }
    if (part.text !== "") out.push({ type: "text", text: part.text });
  }
  return out;
}

function userContent(content: unknown, param: string, t: MessageTarget): Json[] | ClientError {
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }];
  if (!Array.isArray(content)) return malformed(`${param} must be a string or an array of content parts`, param);
  const out: Json[] = [];
  for (const [i, part] of content.entries()) {
    const p = `${param}[${i}]`;
    if (!isJsonObject(part)) return malformed(`${p} must be an object`, p);
    let block: Json | undefined | ClientError;
    if (part.type === "text") {
      if (typeof part.text !== "string") return malformed(`${p}.text must be a string`, `${p}.text`);
      block = part.text === "" ? undefined : { type: "text", text: part.text };
    } else if (part.type === "image_url") {
      const url = isJsonObject(part.image_url) ? part.image_url.url : undefined;
      if (typeof url !== "string") return malformed(`${p}.image_url.url must be a string`, `${p}.image_url.url`);
      block = imageBlock(url, `${p}.image_url.url`, t);
    } else if (part.type === "file") {
      block = fileBlock(part.file, `${p}.file`, t);
    } else if (part.type === "input_audio") {
      return inexpressible(t.backend, "Anthropic models do not take audio input", p);
    } else {
      return malformed(`${p}.type must be one of text, image_url, file, input_audio`, `${p}.type`);
    }
    if (isFailure(block)) return block;
    if (block !== undefined) out.push(block);
  }
  return out;
}

const IMAGE_TYPES = new Set(["image/jpeg", "image/png", "image/gif", "image/webp"]);
const DATA_URL = /^data:([^;,]*)((?:;[^;,]*)*),(.*)$/s;

function imageBlock(url: string, param: string, t: MessageTarget): Json | ClientError {
  const data = DATA_URL.exec(url);
  if (data) {
    const mediaType = data[1]!.toLowerCase();
    if (!data[2]!.split(";").includes("base64")) {
      return inexpressible(t.backend, "only base64 data: URLs can be sent as images", param);
    }
    if (IMAGE_TYPES.has(mediaType)) {
      return { type: "image", source: { type: "base64", media_type: mediaType, data: data[3]! } };
    }
    if (mediaType === "application/pdf") {
      return { type: "document", source: { type: "base64", media_type: mediaType, data: data[3]! } };
    }
    return inexpressible(t.backend, `media type "${mediaType}" is not one of image/jpeg, png, gif, webp`, param);
  }
  if (/^https?:\/\//i.test(url)) {
    // Anthropic fetches URL images itself; Bedrock and Vertex reject URL sources, and a translator does no I/O.
    if (t.urlImages) return { type: "image", source: { type: "url", url } };
    return inexpressible(
      t.backend,
      "images must be sent as base64 data: URLs; this backend does not fetch URLs",
      param,
    );
  }
  return malformed(`${param} must be an http(s) URL or a data: URL`, param);
}

function fileBlock(file: unknown, param: string, t: MessageTarget): Json | ClientError {
  if (!isJsonObject(file)) return malformed(`${param} must be an object`, param);
  if (typeof file.file_data === "string" && file.file_data.startsWith("data:application/pdf;")) {
    return imageBlock(file.file_data, `${param}.file_data`, t);
  }
  return inexpressible(t.backend, "only PDF files sent inline as file_data data: URLs can be forwarded", param);
}

function assistantContent(m: Json, param: string, t: MessageTarget): Json[] | ClientError {
  const out: Json[] = [];
  const content = m.content;
  if (typeof content === "string") {
    if (content !== "") out.push({ type: "text", text: content });
  } else if (Array.isArray(content)) {
    for (const [i, part] of content.entries()) {
      const p = `${param}.content[${i}]`;
      const text = isJsonObject(part) ? (part.type === "text" ? part.text : part.refusal) : undefined;
      if (!isJsonObject(part) || (part.type !== "text" && part.type !== "refusal") || typeof text !== "string") {
        return malformed(`${p} must be a text or refusal part`, p);
      }
      if (text !== "") out.push({ type: "text", text });
    }
  } else if (content !== undefined && content !== null) {
    return malformed(`${param}.content must be a string, an array of parts or null`, `${param}.content`);
  }
  if (m.function_call !== undefined && m.function_call !== null) {
    return inexpressible(t.backend, `${param}.function_call is deprecated; send tool_calls`, `${param}.function_call`);
  }
  if (m.tool_calls === undefined || m.tool_calls === null) return out;
  if (!Array.isArray(m.tool_calls)) return malformed(`${param}.tool_calls must be an array`, `${param}.tool_calls`);
  for (const [i, call] of m.tool_calls.entries()) {
    const block = toolUse(call, `${param}.tool_calls[${i}]`);
    if (isFailure(block)) return block;
    out.push(block);
  }
  return out;
}

function toolUse(call: unknown, param: string): Json | ClientError {
  const fn = isJsonObject(call) ? call.function : undefined;
  if (!isJsonObject(call) || typeof call.id !== "string" || !isJsonObject(fn) || typeof fn.name !== "string") {
    return malformed(`${param} must have a string id and function.name`, param);
  }
  const args = fn.arguments ?? "";
  if (typeof args !== "string") return malformed(`${param}.function.arguments must be a string`, param);
  // Anthropic's tool_use input is an object; a call without arguments is an empty one.
  const input = args.trim() === "" ? {} : parseJson(args);
  if (!isJsonObject(input)) {
    return malformed(`${param}.function.arguments must be a JSON object`, `${param}.function.arguments`);
  }
  return { type: "tool_use", id: call.id, name: fn.name, input };
}

function toolResult(m: Json, param: string): Json[] | ClientError {
  if (typeof m.tool_call_id !== "string") return malformed(`${param}.tool_call_id must be a string`, param);
  const block: Json = { type: "tool_result", tool_use_id: m.tool_call_id };
  if (typeof m.content === "string") return [m.content === "" ? block : { ...block, content: m.content }];
  const parts = textParts(m.content, `${param}.content`);
  if (isFailure(parts)) return parts;
  return [parts.length === 0 ? block : { ...block, content: parts }];
}
