// OpenAI client → Azure OpenAI: the same bodies and answers, under Azure's paths, where the model is a deployment
// name and the API version is a query parameter: /openai/deployments/{deployment}/chat/completions?api-version=…
// https://learn.microsoft.com/azure/ai-services/openai/reference
import { openAIResponse } from "./openai_response.ts";
import { openAIBody } from "./openai_openai.ts";
import type { ClientError, Translator, UpstreamRequest } from "./translator.ts";

/** Used when the AIServiceBackend's schema names no version: the latest GA data-plane API at the time of writing. */
export const DEFAULT_AZURE_API_VERSION = "2024-10-21";

const OPERATIONS = {
  chatCompletions: "chat/completions",
  completions: "completions",
  embeddings: "embeddings",
} as const;

export const openaiAzureOpenAI: Translator = {
  request(r): UpstreamRequest | ClientError {
    if (r.endpoint === "messages") return { status: 422, message: "Azure OpenAI does not serve the Messages API" };
    const version = encodeURIComponent(r.backend.version ?? DEFAULT_AZURE_API_VERSION);
    return {
      path: `/openai/deployments/${encodeURIComponent(r.model)}/${OPERATIONS[r.endpoint]}?api-version=${version}`,
      headers: { "content-type": "application/json" },
      body: openAIBody(r),
    };
  },
  response: openAIResponse,
};
