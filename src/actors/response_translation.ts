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
  const translator = translatorFor(route.api, route.endpoint, request.backend.name)?.response(request);
  return translator && boundedResponse(translator, MAX_HELD_RESPONSE_BYTES);
}

/**
 * The most response bytes a translator may hold across body messages (the default of --max-body-bytes). A client
 * that asks for a stream gets STREAMED body messages with no limit from Envoy, and when the upstream answers a
 * whole body (JSON) instead of events the translator keeps every chunk to parse it at the end: without this cap an
 * upstream could grow the sidecar's memory for as long as it sends. A BUFFERED body comes in one message (Envoy's
 * buffer bounds it) and events are parsed as they pass (the parsers bound an unfinished one), so neither counts.
 */
export const MAX_HELD_RESPONSE_BYTES = 32 * 1024 * 1024;

export class ResponseTooLargeError extends Error {
  override readonly name = "ResponseTooLargeError";
}

const EVENT_STREAM_TYPES = ["text/event-stream", "application/vnd.amazon.eventstream"];

function boundedResponse(t: ResponseTranslator, maxHeld: number): ResponseTranslator {
  let events: boolean | undefined; // unknown until the response headers are seen (never, in SKIP mode)
  let held = 0;
  return {
    headers(status, headers) {
      const type = headers.get("content-type") ?? "";
      events = EVENT_STREAM_TYPES.some((prefix) => type.startsWith(prefix));
      return t.headers(status, headers);
    },
    body(chunk, endOfStream) {
      if (events === false && !endOfStream && (held += chunk.length) > maxHeld) {
        throw new ResponseTooLargeError(`Cannot translate the response: its body exceeds ${maxHeld} bytes`);
      }
      return t.body(chunk, endOfStream);
    },
    get usage() {
      return t.usage;
    },
    get responseModel() {
      return t.responseModel;
    },
    get failure() {
      return t.failure;
    },
  };
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
