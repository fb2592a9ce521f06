// OpenAI chat messages to Gemini contents. System and developer messages become the systemInstruction (Gemini has
// no system turns, so they are gathered wherever they stand); user and tool messages become "user" turns, assistant
// messages "model" turns; consecutive turns of one role merge, which is how Gemini expects the functionResponse
// parts answering one model turn's parallel functionCalls.
// https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference#request
import {
  arrayAt,
  BACKEND_NAME,
  get,
  has,
  isObject,
  type JsonObject,
  malformed,
  objectAt,
  onlyKeys,
  stringAt,
  unsupported,
} from "./gemini_request_fields.ts";

export interface GeminiPart {
  readonly text?: string;
  readonly inlineData?: { readonly mimeType: string; readonly data: string };
  readonly fileData?: { readonly mimeType: string; readonly fileUri: string };
  readonly functionCall?: { readonly name: string; readonly args: JsonObject };
  readonly functionResponse?: { readonly name: string; readonly response: JsonObject };
  /** Gemini 3 rejects a replayed functionCall without the signature it came with. */
  readonly thoughtSignature?: string;
}

export interface GeminiContent {
  readonly role: "user" | "model";
  readonly parts: readonly GeminiPart[];
}

export interface GeminiConversation {
  readonly contents: readonly GeminiContent[];
  readonly systemInstruction?: { readonly parts: readonly GeminiPart[] };
}

const KEYS: Readonly<Record<string, ReadonlySet<string>>> = {
  system: new Set(["role", "content", "name"]),
  developer: new Set(["role", "content", "name"]),
  user: new Set(["role", "content", "name"]),
  assistant: new Set(["role", "content", "name", "tool_calls", "refusal"]),
  tool: new Set(["role", "content", "tool_call_id"]),
};

export function toGeminiConversation(messages: readonly unknown[]): GeminiConversation {
  const contents: { role: "user" | "model"; parts: GeminiPart[] }[] = [];
  const system: GeminiPart[] = [];
  /** Tool messages name only the call id; Gemini's functionResponse wants the function's name. */
  const toolNames = new Map<string, string>();
  const add = (role: "user" | "model", parts: readonly GeminiPart[]) => {
    if (parts.length === 0) return;
    const last = contents.at(-1);
    if (last?.role === role) last.parts.push(...parts);
    else contents.push({ role, parts: [...parts] });
  };
  messages.forEach((m, i) => {
    const param = `messages[${i}]`;
    const message = objectAt(m, param);
    const role = stringAt(get(message, "role"), `${param}.role`);
    if (role === "function") {
      unsupported(`'${param}.role' "function" is deprecated; send tool messages to ${BACKEND_NAME}`, `${param}.role`);
    }
    const keys = Object.hasOwn(KEYS, role) ? KEYS[role] : undefined;
    if (!keys) malformed(`'${param}.role' must be system, developer, user, assistant or tool`, `${param}.role`);
    onlyKeys(message, keys, param);
    if (role === "system" || role === "developer") system.push(...textParts(message, param));
    else if (role === "user") add("user", userParts(message, param));
    else if (role === "assistant") add("model", assistantParts(message, param, toolNames));
    else add("user", [toolResponsePart(message, param, toolNames)]);
  });
  if (contents.length === 0) {
    unsupported(`'messages' needs a user, assistant or tool message for ${BACKEND_NAME}`, "messages");
  }
  return { contents, ...(system.length > 0 ? { systemInstruction: { parts: system } } : {}) };
}

/** Content that may only be text: a string, or an array of text parts. */
function textParts(message: JsonObject, param: string): GeminiPart[] {
  return contentParts(message, param, (part, at) => {
    malformed(`'${at}.type' must be "text" here, not ${JSON.stringify(part.type)}`, `${at}.type`);
  });
}

function contentParts(
  message: JsonObject,
  param: string,
  other: (part: JsonObject, at: string) => GeminiPart | undefined,
): GeminiPart[] {
  const content = get(message, "content");
  if (content === undefined) return [];
  if (typeof content === "string") return content === "" ? [] : [{ text: content }];
  const out: GeminiPart[] = [];
  arrayAt(content, `${param}.content`).forEach((p, j) => {
    const at = `${param}.content[${j}]`;
    const part = objectAt(p, at);
    if (part.type === "text") {
      const text = stringAt(get(part, "text"), `${at}.text`);
      if (text !== "") out.push({ text });
    } else {
      const mapped = other(part, at);
      if (mapped) out.push(mapped);
    }
  });
  return out;
}

function userParts(message: JsonObject, param: string): GeminiPart[] {
  return contentParts(message, param, (part, at) => {
    if (part.type === "image_url") {
      const image = objectAt(get(part, "image_url"), `${at}.image_url`);
      return mediaPart(stringAt(get(image, "url"), `${at}.image_url.url`), `${at}.image_url.url`);
    }
    if (part.type === "input_audio") {
      const audio = objectAt(get(part, "input_audio"), `${at}.input_audio`);
      const format = stringAt(get(audio, "format"), `${at}.input_audio.format`);
      if (format !== "wav" && format !== "mp3") {
        malformed(`'${at}.input_audio.format' must be "wav" or "mp3"`, `${at}.input_audio.format`);
      }
      const data = stringAt(get(audio, "data"), `${at}.input_audio.data`);
      return { inlineData: { mimeType: `audio/${format}`, data } };
    }
    if (part.type === "file") return filePart(objectAt(get(part, "file"), `${at}.file`), `${at}.file`);
    malformed(`'${at}.type' must be text, image_url, input_audio or file`, `${at}.type`);
  });
}

const DATA_URL = /^data:([\w.+-]+\/[\w.+-]+)(?:;[^,;]*)*;base64,(.*)$/s;

/** Guessed from the extension when a URL is passed by reference: Vertex needs a MIME type with every fileData. */
const MIME_BY_EXTENSION = new Map([
  ["png", "image/png"],
  ["jpg", "image/jpeg"],
  ["jpeg", "image/jpeg"],
  ["webp", "image/webp"],
  ["heic", "image/heic"],
  ["heif", "image/heif"],
  ["pdf", "application/pdf"],
]);

function mediaPart(url: string, param: string): GeminiPart {
  if (url.startsWith("data:")) {
    const m = DATA_URL.exec(url);
    if (!m) malformed(`'${param}' must be a base64 data URL (data:<type>;base64,...)`, param);
    return { inlineData: { mimeType: m[1]!, data: m[2]! } };
  }
  if (!url.startsWith("gs://") && !url.startsWith("https://")) {
    unsupported(`'${param}' must be a data URL, a gs:// URI or an https URL for ${BACKEND_NAME}`, param);
  }
  return { fileData: { mimeType: mimeFromName(url.replace(/[?#].*$/s, ""), param), fileUri: url } };
}

function mimeFromName(name: string, param: string): string {
  const dot = name.lastIndexOf(".");
  const ext = dot > name.lastIndexOf("/") ? name.slice(dot + 1).toLowerCase() : "";
  const mime = MIME_BY_EXTENSION.get(ext);
  if (!mime) {
    const known = [...MIME_BY_EXTENSION.keys()].map((e) => `.${e}`).join(", ");
    unsupported(`'${param}' has no known file extension (${known}); ${BACKEND_NAME} needs its media type`, param);
  }
  return mime;
}

function filePart(file: JsonObject, param: string): GeminiPart {
  if (has(file, "file_id")) {
    unsupported(`'${param}.file_id' refers to an OpenAI file, which ${BACKEND_NAME} cannot read`, `${param}.file_id`);
  }
  const data = stringAt(get(file, "file_data"), `${param}.file_data`);
  if (data.startsWith("data:")) return mediaPart(data, `${param}.file_data`);
  const name = stringAt(get(file, "filename"), `${param}.filename`);
  return { inlineData: { mimeType: mimeFromName(name, `${param}.filename`), data } };
}

function assistantParts(message: JsonObject, param: string, toolNames: Map<string, string>): GeminiPart[] {
  const parts = contentParts(message, param, (part, at) => {
    if (part.type === "refusal") return { text: stringAt(get(part, "refusal"), `${at}.refusal`) };
    malformed(`'${at}.type' must be text or refusal`, `${at}.type`);
  });
  const refusal = get(message, "refusal");
  if (parts.length === 0 && refusal !== undefined && stringAt(refusal, `${param}.refusal`) !== "") {
    parts.push({ text: refusal as string });
  }
  const calls = get(message, "tool_calls");
  if (calls === undefined) return parts;
  arrayAt(calls, `${param}.tool_calls`).forEach((c, k) => {
    const at = `${param}.tool_calls[${k}]`;
    const call = objectAt(c, at);
    onlyKeys(call, TOOL_CALL_KEYS, at);
    if (get(call, "type") !== "function") malformed(`'${at}.type' must be "function"`, `${at}.type`);
    const id = stringAt(get(call, "id"), `${at}.id`);
    const fn = objectAt(get(call, "function"), `${at}.function`);
    const name = stringAt(get(fn, "name"), `${at}.function.name`);
    const args = functionArguments(stringAt(get(fn, "arguments"), `${at}.function.arguments`), at);
    toolNames.set(id, name);
    const signature = thoughtSignature(get(call, "extra_content"));
    parts.push({ functionCall: { name, args }, ...(signature !== undefined ? { thoughtSignature: signature } : {}) });
  });
  return parts;
}

const TOOL_CALL_KEYS = new Set(["id", "type", "function", "extra_content", "index"]);

/** Gemini's args are a JSON object (a protobuf Struct); OpenAI's are a string that clients usually fill with one. */
function functionArguments(text: string, param: string): JsonObject {
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isObject(parsed)) {
    unsupported(
      `'${param}.function.arguments' must be a JSON object for ${BACKEND_NAME}`,
      `${param}.function.arguments`,
    );
  }
  return parsed;
}

/** Where Google's own OpenAI-compatible API carries the signature: extra_content.google.thought_signature. */
function thoughtSignature(extra: unknown): string | undefined {
  const google = isObject(extra) ? extra.google : undefined;
  const signature = isObject(google) ? google.thought_signature : undefined;
  return typeof signature === "string" ? signature : undefined;
}

function toolResponsePart(message: JsonObject, param: string, toolNames: ReadonlyMap<string, string>): GeminiPart {
  const id = stringAt(get(message, "tool_call_id"), `${param}.tool_call_id`);
  const name = toolNames.get(id);
  if (name === undefined) {
    malformed(
      `'${param}.tool_call_id' does not answer a tool call of an earlier assistant message`,
      `${param}.tool_call_id`,
    );
  }
  const output = textParts(message, param).map((p) => p.text).join("");
  // "Use "output" key to specify function output": the documented shape for a plain result.
  return { functionResponse: { name, response: { output } } };
}
