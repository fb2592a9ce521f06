// OpenAI chat completions → the Anthropic Messages API (POST /v1/messages, anthropic-version header).
// The mapping lives in anthropic_request_mapping.ts, anthropic_response_mapping.ts and anthropic_stream_mapping.ts;
// the framing in anthropic_backends.ts.
import type { Translator } from "./translator.ts";
import { anthropicBackend } from "./anthropic_backends.ts";
import { openAIToAnthropicFamily } from "./anthropic_family.ts";
import type { WallClock } from "./anthropic_openai_response.ts";

/** `now` stamps the chat.completion's `created`; nothing else reads a clock. */
export function openaiAnthropicTranslator(now: WallClock): Translator {
  return openAIToAnthropicFamily(anthropicBackend, now);
}

export const openaiAnthropic: Translator = openaiAnthropicTranslator(Date.now);
