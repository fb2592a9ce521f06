// OpenAI client → OpenAI or any OpenAI-compatible server (vLLM, Ollama, Groq, Mistral, DeepSeek, Together…).
// The body goes through untouched unless something must change: the model (modelNameOverride) or, when costs
// are configured, stream_options.include_usage so that a streamed answer reports its usage.
import { clientAskedForUsage, openAIResponse } from "./openai_response.ts";
import {
  type ClientEndpoint,
  jsonBytes,
  type TranslateRequest,
  type Translator,
  type UpstreamRequest,
} from "./translator.ts";

const PATHS: Readonly<Record<ClientEndpoint, string>> = {
  chatCompletions: "/chat/completions",
  completions: "/completions",
  embeddings: "/embeddings",
  messages: "/messages",
};

/** The OpenAI body for the backend: the client's bytes when nothing changes, else a re-serialized copy. */
export function openAIBody(r: TranslateRequest): Uint8Array {
  const forceUsage = r.stream && r.forceStreamUsage && !clientAskedForUsage(r.body) && r.endpoint !== "embeddings";
  if (r.body.model === r.model && !forceUsage) return r.rawBody;
  const body: Record<string, unknown> = { ...r.body, model: r.model };
  if (forceUsage) body.stream_options = { ...(r.body.stream_options as object | undefined), include_usage: true };
  return jsonBytes(body);
}

export const openaiOpenAI: Translator = {
  request(r): UpstreamRequest {
    return {
      path: `${r.backend.prefix ?? "/v1"}${PATHS[r.endpoint]}`,
      headers: { "content-type": "application/json" },
      body: openAIBody(r),
    };
  },
  response: openAIResponse,
};
