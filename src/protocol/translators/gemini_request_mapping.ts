// An OpenAI chat completion body to a Vertex AI GenerateContentRequest. Each OpenAI parameter has one rule in
// PARAMETERS; a parameter without a rule is refused by name, so a new OpenAI feature never vanishes silently.
// https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference#parameters
import { type GeminiContent, type GeminiPart, toGeminiConversation } from "./gemini_contents.ts";
import {
  arrayAt,
  BACKEND_NAME,
  booleanAt,
  get,
  integerAt,
  type JsonObject,
  malformed,
  numberAt,
  objectAt,
  onlyKeys,
  stringAt,
  unsupported,
} from "./gemini_request_fields.ts";
import { toVertexSchema } from "./gemini_schema.ts";

export interface GenerateContentRequest {
  readonly contents: readonly GeminiContent[];
  readonly systemInstruction?: { readonly parts: readonly GeminiPart[] };
  readonly tools?: readonly { readonly functionDeclarations: readonly JsonObject[] }[];
  readonly toolConfig?: { readonly functionCallingConfig: JsonObject };
  readonly generationConfig?: JsonObject;
}

interface Draft {
  readonly generationConfig: Record<string, unknown>;
  tools?: { functionDeclarations: JsonObject[] }[];
  toolConfig?: { functionCallingConfig: JsonObject };
  maxTokens?: number;
  maxCompletionTokens?: number;
}

type Rule = (value: unknown, param: string, draft: Draft) => void;

const ignored: Rule = () => {};
const refused: Rule = (_v, param) => unsupported(`'${param}' is not supported by ${BACKEND_NAME}`, param);
const config = (key: string, read: (v: unknown, param: string) => unknown): Rule => (v, param, d) => {
  d.generationConfig[key] = read(v, param);
};

/** OpenAI's low/medium/high as Google documents them for its own OpenAI-compatible API: 1K, 8K and 24K thinking
 * tokens, and "none" turns thinking off (https://ai.google.dev/gemini-api/docs/openai#thinking). A budget, not a
 * thinkingLevel, because every thinking Gemini model accepts a budget while levels differ per model. */
const THINKING_BUDGETS = new Map([["none", 0], ["low", 1024], ["medium", 8192], ["high", 24576]]);

const PARAMETERS = new Map<string, Rule>([
  ["model", ignored], // the path names the model: TranslateRequest.model
  ["messages", ignored], // toGeminiConversation
  ["stream", (v, p) => booleanAt(v, p)], // the path: streamGenerateContent
  ["stream_options", streamOptions],
  // No effect on what the model writes, and nothing on Vertex AI to carry them to.
  ["user", (v, p) => stringAt(v, p)],
  ["safety_identifier", (v, p) => stringAt(v, p)],
  ["prompt_cache_key", (v, p) => stringAt(v, p)],
  ["store", (v, p, d) => booleanAt(v, p) ? refused(v, p, d) : undefined],
  ["max_tokens", (v, p, d) => void (d.maxTokens = integerAt(v, p, 1))],
  ["max_completion_tokens", (v, p, d) => void (d.maxCompletionTokens = integerAt(v, p, 1))],
  ["temperature", config("temperature", (v, p) => numberAt(v, p, 0, 2))],
  ["top_p", config("topP", (v, p) => numberAt(v, p, 0, 1))],
  ["n", config("candidateCount", (v, p) => integerAt(v, p, 1))],
  ["presence_penalty", config("presencePenalty", (v, p) => numberAt(v, p, -2, 2))],
  ["frequency_penalty", config("frequencyPenalty", (v, p) => numberAt(v, p, -2, 2))],
  ["seed", config("seed", seed)],
  ["stop", stop],
  ["response_format", responseFormat],
  ["reasoning_effort", reasoningEffort],
  ["tools", tools],
  ["tool_choice", toolChoice],
  ["parallel_tool_calls", (v, p, d) => booleanAt(v, p) ? undefined : refused(v, p, d)],
  ["logprobs", (v, p, d) => booleanAt(v, p) ? refused(v, p, d) : undefined],
  ["top_logprobs", refused],
  ["logit_bias", refused],
  ["audio", refused],
  ["modalities", modalities],
  ["prediction", refused],
  ["web_search_options", refused],
  ["functions", refused],
  ["function_call", refused],
  ["service_tier", refused],
  ["verbosity", refused],
  ["metadata", refused],
]);

export function toGenerateContentRequest(body: JsonObject): GenerateContentRequest {
  const messages = arrayAt(get(body, "messages"), "messages");
  if (messages.length === 0) malformed("'messages' must not be empty", "messages");
  const draft: Draft = { generationConfig: {} };
  for (const key of Object.keys(body)) {
    const value = get(body, key);
    if (value === undefined) continue;
    const rule = PARAMETERS.get(key);
    if (!rule) unsupported(`Unknown parameter '${key}': it cannot be sent to ${BACKEND_NAME}`, key);
    rule(value, key, draft);
  }
  const maxOutputTokens = draft.maxCompletionTokens ?? draft.maxTokens;
  if (maxOutputTokens !== undefined) draft.generationConfig.maxOutputTokens = maxOutputTokens;
  const conversation = toGeminiConversation(messages);
  return {
    ...conversation,
    ...(draft.tools ? { tools: draft.tools } : {}),
    ...(draft.toolConfig ? { toolConfig: draft.toolConfig } : {}),
    ...(Object.keys(draft.generationConfig).length > 0 ? { generationConfig: draft.generationConfig } : {}),
  };
}

function streamOptions(v: unknown, param: string): void {
  const o = objectAt(v, param);
  if (get(o, "include_usage") !== undefined) booleanAt(get(o, "include_usage"), `${param}.include_usage`);
}

function seed(v: unknown, param: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) malformed(`'${param}' must be an integer`, param);
  if (v < -(2 ** 31) || v >= 2 ** 31) unsupported(`'${param}' must fit in 32 bits for ${BACKEND_NAME}`, param);
  return v;
}

function stop(v: unknown, param: string, d: Draft): void {
  const list = typeof v === "string" ? [v] : arrayAt(v, param).map((s, i) => stringAt(s, `${param}[${i}]`));
  if (list.length > 0) d.generationConfig.stopSequences = list;
}

function modalities(v: unknown, param: string): void {
  const list = arrayAt(v, param);
  if (list.some((m) => m !== "text")) {
    unsupported(`'${param}' other than ["text"] is not supported by ${BACKEND_NAME}`, param);
  }
}

function responseFormat(v: unknown, param: string, d: Draft): void {
  const format = objectAt(v, param);
  const type = stringAt(get(format, "type"), `${param}.type`);
  if (type === "text") return;
  if (type === "json_object") {
    d.generationConfig.responseMimeType = "application/json";
    return;
  }
  if (type !== "json_schema") malformed(`'${param}.type' must be text, json_object or json_schema`, `${param}.type`);
  const spec = objectAt(get(format, "json_schema"), `${param}.json_schema`);
  stringAt(get(spec, "name"), `${param}.json_schema.name`);
  d.generationConfig.responseMimeType = "application/json";
  const schema = get(spec, "schema");
  if (schema !== undefined) {
    const at = `${param}.json_schema.schema`;
    d.generationConfig.responseSchema = toVertexSchema(objectAt(schema, at), at);
  }
}

function reasoningEffort(v: unknown, param: string, d: Draft): void {
  const budget = THINKING_BUDGETS.get(stringAt(v, param));
  if (budget === undefined) {
    unsupported(`'${param}' must be none, low, medium or high for ${BACKEND_NAME}`, param);
  }
  d.generationConfig.thinkingConfig = { thinkingBudget: budget };
}

const FUNCTION_KEYS = new Set(["name", "description", "parameters", "strict"]);

function tools(v: unknown, param: string, d: Draft): void {
  const declarations = arrayAt(v, param).map((t, i) => {
    const at = `${param}[${i}]`;
    const tool = objectAt(t, at);
    const type = get(tool, "type");
    if (type !== "function") {
      unsupported(
        `'${at}.type' ${JSON.stringify(type)} is not supported by ${BACKEND_NAME}: only function tools are`,
        `${at}.type`,
      );
    }
    const fn = objectAt(get(tool, "function"), `${at}.function`);
    onlyKeys(fn, FUNCTION_KEYS, `${at}.function`);
    const declaration: Record<string, unknown> = { name: stringAt(get(fn, "name"), `${at}.function.name`) };
    const description = get(fn, "description");
    if (description !== undefined) declaration.description = stringAt(description, `${at}.function.description`);
    if (get(fn, "strict") !== undefined) booleanAt(get(fn, "strict"), `${at}.function.strict`);
    const parameters = get(fn, "parameters");
    if (parameters !== undefined) {
      const schema = toVertexSchema(objectAt(parameters, `${at}.function.parameters`), `${at}.function.parameters`);
      // Vertex refuses an OBJECT schema without properties; a function without parameters simply has none.
      const empty = schema.type === "OBJECT" && Object.keys(schema.properties ?? {}).length === 0;
      if (!empty) declaration.parameters = schema;
    }
    return declaration;
  });
  if (declarations.length > 0) d.tools = [{ functionDeclarations: declarations }];
}

function toolChoice(v: unknown, param: string, d: Draft): void {
  const modes = new Map([["none", "NONE"], ["auto", "AUTO"], ["required", "ANY"]]);
  if (typeof v === "string") {
    const mode = modes.get(v);
    if (!mode) malformed(`'${param}' must be none, auto, required or an object`, param);
    d.toolConfig = { functionCallingConfig: { mode } };
    return;
  }
  const choice = objectAt(v, param);
  const type = get(choice, "type");
  if (type === "function") {
    const name = stringAt(
      get(objectAt(get(choice, "function"), `${param}.function`), "name"),
      `${param}.function.name`,
    );
    d.toolConfig = { functionCallingConfig: { mode: "ANY", allowedFunctionNames: [name] } };
    return;
  }
  if (type !== "allowed_tools") malformed(`'${param}.type' must be function or allowed_tools`, `${param}.type`);
  const allowed = objectAt(get(choice, "allowed_tools"), `${param}.allowed_tools`);
  // Vertex takes allowedFunctionNames only with mode ANY: "auto among these" has no equivalent.
  if (get(allowed, "mode") !== "required") {
    unsupported(`'${param}.allowed_tools.mode' must be "required" for ${BACKEND_NAME}`, `${param}.allowed_tools.mode`);
  }
  const names = arrayAt(get(allowed, "tools"), `${param}.allowed_tools.tools`).map((t, i) => {
    const at = `${param}.allowed_tools.tools[${i}]`;
    const tool = objectAt(t, at);
    if (get(tool, "type") !== "function") {
      unsupported(`'${at}.type' must be "function" for ${BACKEND_NAME}`, `${at}.type`);
    }
    return stringAt(get(objectAt(get(tool, "function"), `${at}.function`), "name"), `${at}.function.name`);
  });
  d.toolConfig = { functionCallingConfig: { mode: "ANY", allowedFunctionNames: names } };
}
