// The router stream's response side: the translator of the backend that answered the final attempt turns the
// provider's response into the client's schema, chunk by chunk, and the usage it read ends up in Envoy's dynamic
// metadata (namespace io.envoy.ai_gateway) on the last chunk, where the ratelimit filter and the access log read it.
import type { GatewaySnapshot } from "../control/snapshot.ts";
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";
import { translatorFor } from "../protocol/translators/registry.ts";
import type { ResponseTranslator, TranslateRequest } from "../protocol/translators/translator.ts";
import type { TokenUsage } from "../protocol/usage.ts";

export const AI_GATEWAY_NAMESPACE = "io.envoy.ai_gateway";

/** The same TranslateRequest the attempt translated the request with (model override included). */
export function translateRequestFor(
  route: RoutedRequest,
  snapshot: GatewaySnapshot,
  backendName: string,
  refId: string | undefined,
): TranslateRequest | undefined {
  const backend = snapshot.backends.get(backendName);
  if (!backend) return undefined;
  const ref = refId === undefined ? undefined : snapshot.backendRefs.get(refId);
  return {
    endpoint: route.endpoint,
    body: route.body,
    rawBody: route.rawBody,
    model: ref?.modelNameOverride ?? route.model,
    stream: route.stream,
    forceStreamUsage: snapshot.forceStreamUsage,
    backend: backend.schema,
    ...(backend.location ? { location: backend.location } : {}),
  };
}

export function responseTranslatorFor(
  route: RoutedRequest,
  snapshot: GatewaySnapshot,
  backendName: string | undefined,
  refId: string | undefined,
): ResponseTranslator | undefined {
  if (backendName === undefined) return undefined;
  const request = translateRequestFor(route, snapshot, backendName, refId);
  if (!request) return undefined;
  return translatorFor(route.api, route.endpoint, request.backend.name)?.response(request);
}

const USAGE_KEYS: Record<keyof TokenUsage, string> = {
  inputTokens: "input_tokens",
  outputTokens: "output_tokens",
  totalTokens: "total_tokens",
  cachedInputTokens: "cached_input_tokens",
  cacheCreationInputTokens: "cache_creation_input_tokens",
  reasoningTokens: "reasoning_tokens",
};

/** Dynamic metadata for the end of the response: the token counts that were reported, and who answered. */
export function usageMetadata(
  usage: TokenUsage,
  facts: { model: string; responseModel: string | undefined; backend: string | undefined },
): Record<string, Record<string, unknown>> {
  const ns: Record<string, unknown> = { model: facts.model };
  if (facts.responseModel !== undefined) ns.response_model = facts.responseModel;
  if (facts.backend !== undefined) ns.backend = facts.backend;
  for (const [k, key] of Object.entries(USAGE_KEYS)) {
    const v = usage[k as keyof TokenUsage];
    if (v !== undefined) ns[key] = v;
  }
  return { [AI_GATEWAY_NAMESPACE]: ns };
}
