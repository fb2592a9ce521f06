// Anthropic Messages client → the Anthropic API: the body and the answer go through as they are (the model is rewritten when the route names another); usage and the model are read from the JSON or the SSE.
import type { Translator } from "./translator.ts";
import { anthropicBackend } from "./anthropic_backends.ts";
import { anthropicToAnthropicFamily } from "./anthropic_family.ts";

export const anthropicAnthropic: Translator = anthropicToAnthropicFamily(anthropicBackend);
