// The two shapes of translator over the Anthropic family of backends: an OpenAI chat client (mapped both ways) and
// an Anthropic client (passed through, re-framed where the backend needs it). The <client>_<backend>.ts files pick
// a backend from anthropic_backends.ts and one of these.
import type { Translator } from "./translator.ts";
import { inexpressible, isFailure, malformed } from "./anthropic_messages.ts";
import type { AnthropicBackend } from "./anthropic_backends.ts";
import { openAIChatToAnthropic } from "./anthropic_request_mapping.ts";
import type { WallClock } from "./anthropic_openai_response.ts";
import { openAIResponseTranslator } from "./anthropic_openai_response.ts";
import { anthropicResponseTranslator } from "./anthropic_native_response.ts";

export function openAIToAnthropicFamily(backend: AnthropicBackend, now: WallClock): Translator {
  const target = { backend: backend.name, urlImages: backend.urlImages };
  return {
    request(r) {
      if (r.endpoint !== "chatCompletions") {
        return inexpressible(backend.name, `the ${r.endpoint} endpoint has no Anthropic Messages counterpart`);
      }
      const body = openAIChatToAnthropic(r.body, r.model, target);
      return isFailure(body) ? body : backend.frame(body, r);
    },
    response: (r) => openAIResponseTranslator(r, backend, now),
  };
}

export function anthropicToAnthropicFamily(backend: AnthropicBackend): Translator {
  return {
    request(r) {
      if (r.endpoint !== "messages") {
        return inexpressible(backend.name, `an Anthropic client's ${r.endpoint} request cannot be sent to Messages`);
      }
      if (!Array.isArray(r.body.messages)) return malformed("'messages' must be an array", "messages");
      // The body goes through untouched unless the route asked for another model than the client named.
      const sameModel = r.body.model === r.model;
      return backend.frame(sameModel ? r.body : { ...r.body, model: r.model }, r, sameModel ? r.rawBody : undefined);
    },
    response: (r) => anthropicResponseTranslator(r, backend),
  };
}
