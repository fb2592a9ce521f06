// OpenAI chat completions → Claude on GCP Vertex AI (publishers/anthropic/models/{m}:rawPredict).
// The mapping lives in anthropic_request_mapping.ts, anthropic_response_mapping.ts and anthropic_stream_mapping.ts;
// the framing in anthropic_backends.ts.
import type { Translator } from "./translator.ts";
import { gcpAnthropicBackend } from "./anthropic_backends.ts";
import { openAIToAnthropicFamily } from "./anthropic_family.ts";
import type { WallClock } from "./anthropic_openai_response.ts";

/** `now` stamps the chat.completion's `created`; nothing else reads a clock. */
export function openaiGcpAnthropicTranslator(now: WallClock): Translator {
  return openAIToAnthropicFamily(gcpAnthropicBackend, now);
}

export const openaiGcpAnthropic: Translator = openaiGcpAnthropicTranslator(Date.now);
