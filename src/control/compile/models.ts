// The models /v1/models lists: every exact x-ai-eg-model match of every rule, owned and dated as Envoy AI Gateway
// does (modelsOwnedBy, else "Envoy AI Gateway"; modelsCreatedAt, else the route's creation time).
import type { ModelInfo } from "../snapshot.ts";
import type { AIGatewayRoute } from "../resources/resource.ts";

export const MODEL_HEADER = "x-ai-eg-model";
const DEFAULT_OWNER = "Envoy AI Gateway";
/** When a route has no creation time (files, not the API server): a fixed date keeps /v1/models stable everywhere. */
export const DEFAULT_MODELS_CREATED = 1767225600;

export function compileModels(
  routes: readonly AIGatewayRoute[],
  modelsOf: (route: AIGatewayRoute) => readonly ModelInfo[] = routeModels,
): ModelInfo[] {
  const seen = new Set<string>();
  const models: ModelInfo[] = [];
  for (const route of routes) {
    for (const m of modelsOf(route)) {
      if (seen.has(m.id)) continue;
      seen.add(m.id);
      models.push(m);
    }
  }
  return models;
}

/** The models of one route, in rule, match and header order; the first route to name a model owns it. */
export function routeModels(route: AIGatewayRoute): ModelInfo[] {
  const models: ModelInfo[] = [];
  for (const rule of route.spec.rules) {
    const createdAt = rule.modelsCreatedAt ?? route.metadata.creationTimestamp;
    const created = createdAt === undefined ? DEFAULT_MODELS_CREATED : Math.floor(Date.parse(createdAt) / 1000);
    for (const match of rule.matches ?? []) {
      for (const h of match.headers ?? []) {
        if (h.name.toLowerCase() !== MODEL_HEADER || (h.type ?? "Exact") !== "Exact") continue;
        models.push({ id: h.value, ownedBy: rule.modelsOwnedBy ?? DEFAULT_OWNER, created });
      }
    }
  }
  return models;
}
