// Anthropic Messages client → Claude on GCP Vertex AI: the model moves into the path, anthropic_version into the body; the answer is Anthropic's own JSON or SSE, Vertex errors become Anthropic's error envelope.
import type { Translator } from "./translator.ts";
import { gcpAnthropicBackend } from "./anthropic_backends.ts";
import { anthropicToAnthropicFamily } from "./anthropic_family.ts";

export const anthropicGcpAnthropic: Translator = anthropicToAnthropicFamily(gcpAnthropicBackend);
