// AIGatewayRoute of aigateway.envoyproxy.io, v1alpha1 and v1beta1. v1alpha1 keeps the fields older manifests still
// carry (spec.schema, spec.targetRefs, spec.filterConfig, the CachedWriteInputToken cost); v1beta1 drops them and adds
// hostnames, per-rule streamIdleTimeout and rateLimitsFromHeaders (accepted by the schema, refused as unsupported).
import { z } from "zod";
import {
  duration,
  httpHeader,
  httpHeaderMatch,
  ignored,
  parentReference,
  policyTargetReference,
  unsupported,
} from "./common.ts";

export const API_SCHEMAS = [
  "OpenAI",
  "Cohere",
  "AWSBedrock",
  "AzureOpenAI",
  "GCPVertexAI",
  "GCPAnthropic",
  "Anthropic",
  "AWSAnthropic",
] as const;
export type APISchemaName = (typeof API_SCHEMAS)[number];

/** VersionedAPISchema: for OpenAI, a version without prefix still acts as the prefix (deprecated upstream). */
export const versionedAPISchema = z.strictObject({
  name: z.enum(API_SCHEMAS),
  version: z.string().optional(),
  prefix: z.string().optional(),
});

export const httpHeaderMutation = z.strictObject({
  set: z.array(httpHeader).max(16).optional(),
  remove: z.array(z.string().min(1)).max(16).optional(),
});

export const httpBodyMutation = z.strictObject({
  set: z.array(z.strictObject({ path: z.string().min(1), value: z.string() })).max(16).optional(),
  remove: z.array(z.string().min(1)).max(16).optional(),
});

const V1BETA1_COST_TYPES = [
  "OutputToken",
  "InputToken",
  "CachedInputToken",
  "CacheCreationInputToken",
  "TotalToken",
  "ReasoningToken",
  "CEL",
] as const;
/** v1alpha1 also accepts the earlier name of the cache-creation cost. */
const V1ALPHA1_COST_TYPES = [...V1BETA1_COST_TYPES, "CachedWriteInputToken"] as const;
export type LLMRequestCostType = (typeof V1ALPHA1_COST_TYPES)[number];

function llmRequestCost<T extends readonly [string, ...string[]]>(types: T) {
  return z.strictObject({ metadataKey: z.string().min(1), type: z.enum(types), cel: z.string().min(1).optional() })
    .superRefine((cost, ctx) => {
      if (cost.type === "CEL" && cost.cel === undefined) {
        ctx.addIssue({ code: "custom", path: ["cel"], message: "A CEL expression is required when type is CEL" });
      }
      if (cost.type !== "CEL" && cost.cel !== undefined) {
        ctx.addIssue({ code: "custom", path: ["cel"], message: "A CEL expression is only allowed when type is CEL" });
      }
    });
}

export const AI_SERVICE_BACKEND_GROUP = "aigateway.envoyproxy.io";

const ruleBackendRef = z.strictObject({
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
  /** Only InferencePool (inference.networking.k8s.io) is allowed here upstream; Tollgate refuses it later. */
  group: z.string().optional(),
  kind: z.string().optional(),
  modelNameOverride: z.string().optional(),
  headerMutation: httpHeaderMutation.optional(),
  bodyMutation: httpBodyMutation.optional(),
  weight: z.number().int().min(0).optional(),
  priority: z.number().int().min(0).optional(),
});

const ruleMatch = z.strictObject({ headers: z.array(httpHeaderMatch).max(16).optional() });

const ruleBase = {
  backendRefs: z.array(ruleBackendRef).max(128).optional(),
  matches: z.array(ruleMatch).max(128).optional(),
  timeouts: z.strictObject({ request: duration.optional(), backendRequest: duration.optional() }).optional(),
  modelsOwnedBy: z.string().optional(),
  modelsCreatedAt: z.string().refine((s) => !Number.isNaN(Date.parse(s)), "Is not an RFC 3339 timestamp").optional(),
};

const v1alpha1Spec = z.strictObject({
  parentRefs: z.array(parentReference).max(16).optional(),
  /** Deprecated predecessor of parentRefs. */
  targetRefs: z.array(policyTargetReference).max(128).optional(),
  /** Deprecated: the client schema is now decided by the request path. */
  schema: versionedAPISchema.optional(),
  rules: z.array(z.strictObject(ruleBase)).max(128),
  /** Sizing of the upstream ExtProc deployment: meaningless for a sidecar Tollgate runs itself. */
  filterConfig: ignored,
  llmRequestCosts: z.array(llmRequestCost(V1ALPHA1_COST_TYPES)).max(36).optional(),
});

const v1beta1Spec = z.strictObject({
  parentRefs: z.array(parentReference).max(16).optional(),
  hostnames: unsupported(),
  rules: z.array(z.strictObject({ ...ruleBase, streamIdleTimeout: unsupported() })).max(15),
  llmRequestCosts: z.array(llmRequestCost(V1BETA1_COST_TYPES)).max(36).optional(),
  rateLimitsFromHeaders: unsupported(),
});

export const aiGatewayRouteSpec = { v1alpha1: v1alpha1Spec, v1beta1: v1beta1Spec } as const;

export type AIGatewayRouteSpec = z.output<typeof v1alpha1Spec> | z.output<typeof v1beta1Spec>;
export type AIGatewayRouteRule = AIGatewayRouteSpec["rules"][number];
export type RuleBackendRef = z.output<typeof ruleBackendRef>;
export type VersionedAPISchema = z.output<typeof versionedAPISchema>;
export type HTTPHeaderMutation = z.output<typeof httpHeaderMutation>;
export type HTTPBodyMutation = z.output<typeof httpBodyMutation>;
