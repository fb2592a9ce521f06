// What the router stream machine needs from semantic routing, as small pure helpers so the machine only wires
// them: which router (if any) takes a request, the request after selection, and the response bytes the cache may
// keep (complete, 2xx, in the client's OpenAI schema).
import type { GatewaySnapshot } from "../control/snapshot.ts";
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";
import { assembleChatStream } from "./cached_reply.ts";
import type { CacheStore, RoutingOutcome, RoutingServices, SemanticRouterEngine } from "./router_engine.ts";
import { DEFAULT_ROUTING_SERVICES, routingTable } from "./routing_table.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type { CacheStore, RoutingOutcome, RoutingServices, SemanticRouterEngine };

/** The router of this request's model in this snapshot, if semantic routing applies to it. */
export function semanticRouterFor(
  snapshot: GatewaySnapshot,
  route: RoutedRequest,
  services: RoutingServices | undefined,
): SemanticRouterEngine | undefined {
  const routers = snapshot.semanticRouters;
  if (!routers || routers.length === 0 || route.endpoint === "embeddings") return undefined;
  return routingTable(routers, services ?? DEFAULT_ROUTING_SERVICES).routerFor(route.model);
}

/** The request as routed: the chosen model, and the body rewritten when routing changed it. */
export function routedRequest(route: RoutedRequest, outcome: RoutingOutcome & { kind: "routed" }): RoutedRequest {
  if (!outcome.body) return { ...route, model: outcome.model };
  return { ...route, model: outcome.model, body: outcome.body, rawBody: encoder.encode(JSON.stringify(outcome.body)) };
}

/** Response bytes collected for the cache while they pass; dropped once they outgrow the limit. */
export interface CacheCapture {
  readonly store: CacheStore;
  readonly chunks: Uint8Array[];
  bytes: number;
}

export function captureChunk(capture: CacheCapture | undefined, chunk: Uint8Array): CacheCapture | undefined {
  if (!capture) return undefined;
  if (capture.bytes + chunk.length > capture.store.maxBytes) return undefined;
  if (chunk.length > 0) capture.chunks.push(chunk);
  capture.bytes += chunk.length;
  return capture;
}

/** The chat.completion JSON to cache, or undefined when the answer is not one (an error, cut short, not JSON). */
export function cacheableBody(capture: CacheCapture, stream: boolean): Uint8Array | undefined {
  const all = new Uint8Array(capture.bytes);
  let at = 0;
  for (const c of capture.chunks) {
    all.set(c, at);
    at += c.length;
  }
  const body = stream ? assembleChatStream(all) : all;
  if (!body) return undefined;
  try {
    const json = JSON.parse(decoder.decode(body)) as { object?: unknown; choices?: unknown };
    return json.object === "chat.completion" && Array.isArray(json.choices) && json.choices.length > 0
      ? body
      : undefined;
  } catch {
    return undefined;
  }
}
