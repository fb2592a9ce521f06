// Which translator serves a client API and endpoint against a backend schema. A pair missing here is a request
// the backend cannot take (the attempt answers 422, saying which pair).
import type { BackendSchemaName, ClientApi, ClientEndpoint, Translator } from "./translator.ts";
import { openaiOpenAI } from "./openai_openai.ts";
import { openaiAzureOpenAI } from "./openai_azureopenai.ts";
import { openaiGcpVertexAi } from "./openai_gcpvertexai.ts";
import { openaiAwsBedrock } from "./openai_awsbedrock.ts";
import { openaiAnthropic } from "./openai_anthropic.ts";
import { openaiAwsAnthropic } from "./openai_awsanthropic.ts";
import { openaiGcpAnthropic } from "./openai_gcpanthropic.ts";
import { anthropicAnthropic } from "./anthropic_anthropic.ts";
import { anthropicAwsAnthropic } from "./anthropic_awsanthropic.ts";
import { anthropicGcpAnthropic } from "./anthropic_gcpanthropic.ts";

type Key = `${ClientApi}/${ClientEndpoint}/${BackendSchemaName}`;

const TABLE: Partial<Record<Key, Translator>> = {
  "openai/chatCompletions/OpenAI": openaiOpenAI,
  "openai/completions/OpenAI": openaiOpenAI,
  "openai/embeddings/OpenAI": openaiOpenAI,
  "openai/chatCompletions/AzureOpenAI": openaiAzureOpenAI,
  "openai/completions/AzureOpenAI": openaiAzureOpenAI,
  "openai/embeddings/AzureOpenAI": openaiAzureOpenAI,
  "openai/chatCompletions/GCPVertexAI": openaiGcpVertexAi,
  "openai/chatCompletions/AWSBedrock": openaiAwsBedrock,
  "openai/embeddings/AWSBedrock": openaiAwsBedrock,
  "openai/chatCompletions/Anthropic": openaiAnthropic,
  "openai/chatCompletions/AWSAnthropic": openaiAwsAnthropic,
  "openai/chatCompletions/GCPAnthropic": openaiGcpAnthropic,
  "anthropic/messages/Anthropic": anthropicAnthropic,
  "anthropic/messages/AWSAnthropic": anthropicAwsAnthropic,
  "anthropic/messages/GCPAnthropic": anthropicGcpAnthropic,
};

export function translatorFor(
  api: ClientApi,
  endpoint: ClientEndpoint,
  schema: BackendSchemaName,
): Translator | undefined {
  return TABLE[`${api}/${endpoint}/${schema}`];
}

export function clientApiOf(endpoint: ClientEndpoint): ClientApi {
  return endpoint === "messages" ? "anthropic" : "openai";
}
