// The resource kinds Tollgate reads, by apiVersion and kind, and the typed form a validated document takes. Kinds of
// the gateway API groups that Tollgate does not implement are errors (they would change routing if honoured);
// workloads and other Kubernetes objects that often share a manifest file are skipped and reported as ignored.
import { z } from "zod";
import { ignored, objectMeta } from "./common.ts";
import { type AIGatewayRouteSpec, aiGatewayRouteSpec } from "./ai_gateway_route.ts";
import { type AIServiceBackendSpec, aiServiceBackendSpec } from "./ai_service_backend.ts";
import { type BackendSecurityPolicySpec, backendSecurityPolicySpec } from "./backend_security_policy.ts";
import { type BackendSpec, backendSpec } from "./backend.ts";
import { type BackendTrafficPolicySpec, backendTrafficPolicySpec } from "./backend_traffic_policy.ts";
import { type SemanticRouterSpec, semanticRouterSpec } from "./semantic_router.ts";
import { type RateLimitOptionsSpec, rateLimitOptionsSpec } from "./rate_limit_options.ts";
import {
  type GatewayClassSpec,
  gatewayClassSpec,
  type GatewaySpec,
  gatewaySpec,
  secretBody,
  type SecretData,
} from "./kubernetes.ts";
import type { ResourceOrigin } from "./errors.ts";

export const DEFAULT_NAMESPACE = "default";

export interface ResourceMetadata {
  readonly name: string;
  /** Defaulted to "default" when the document has none. */
  readonly namespace: string;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly creationTimestamp?: string | undefined;
}

interface Base<K extends string, S> {
  readonly apiVersion: string;
  readonly kind: K;
  readonly metadata: ResourceMetadata;
  readonly spec: S;
  readonly origin: ResourceOrigin;
}

export type AIGatewayRoute = Base<"AIGatewayRoute", AIGatewayRouteSpec>;
export type AIServiceBackend = Base<"AIServiceBackend", AIServiceBackendSpec>;
export type BackendSecurityPolicy = Base<"BackendSecurityPolicy", BackendSecurityPolicySpec>;
export type Backend = Base<"Backend", BackendSpec>;
export type BackendTrafficPolicy = Base<"BackendTrafficPolicy", BackendTrafficPolicySpec>;
export type Gateway = Base<"Gateway", GatewaySpec>;
export type GatewayClass = Base<"GatewayClass", GatewayClassSpec>;
export type SemanticRouter = Base<"SemanticRouter", SemanticRouterSpec>;
export type RateLimitOptions = Base<"RateLimitOptions", RateLimitOptionsSpec>;
export interface Secret extends SecretData {
  readonly apiVersion: "v1";
  readonly kind: "Secret";
  readonly metadata: ResourceMetadata;
  readonly type?: string | undefined;
  readonly immutable?: boolean | undefined;
  readonly origin: ResourceOrigin;
}

export type Resource =
  | AIGatewayRoute
  | AIServiceBackend
  | BackendSecurityPolicy
  | Backend
  | BackendTrafficPolicy
  | Gateway
  | GatewayClass
  | SemanticRouter
  | RateLimitOptions
  | Secret;
export type ResourceKind = Resource["kind"];

function withSpec<S extends z.ZodType>(spec: S) {
  return z.strictObject({ apiVersion: z.string(), kind: z.string(), metadata: objectMeta, spec, status: ignored });
}

const secretDocument = z.strictObject({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: objectMeta,
  ...secretBody,
});

const AI = "aigateway.envoyproxy.io";
const EG = "gateway.envoyproxy.io";
const GWAPI = "gateway.networking.k8s.io";

/** apiVersion → kind → document schema (scripts/gen_config_docs.ts renders docs/configuration.md from it). */
export const SCHEMAS: Readonly<Record<string, Readonly<Record<string, z.ZodType>>>> = {
  [`${AI}/v1alpha1`]: {
    AIGatewayRoute: withSpec(aiGatewayRouteSpec.v1alpha1),
    AIServiceBackend: withSpec(aiServiceBackendSpec.v1alpha1),
    BackendSecurityPolicy: withSpec(backendSecurityPolicySpec),
  },
  [`${AI}/v1beta1`]: {
    AIGatewayRoute: withSpec(aiGatewayRouteSpec.v1beta1),
    AIServiceBackend: withSpec(aiServiceBackendSpec.v1beta1),
    BackendSecurityPolicy: withSpec(backendSecurityPolicySpec),
  },
  [`${EG}/v1alpha1`]: { Backend: withSpec(backendSpec), BackendTrafficPolicy: withSpec(backendTrafficPolicySpec) },
  [`${GWAPI}/v1`]: { Gateway: withSpec(gatewaySpec), GatewayClass: withSpec(gatewayClassSpec) },
  [`${GWAPI}/v1beta1`]: { Gateway: withSpec(gatewaySpec), GatewayClass: withSpec(gatewayClassSpec) },
  "tollgate.dev/v1alpha1": {
    SemanticRouter: withSpec(semanticRouterSpec),
    RateLimitOptions: withSpec(rateLimitOptionsSpec),
  },
  v1: { Secret: secretDocument },
};

/** Groups whose kinds shape routing: a kind of theirs that Tollgate does not read is an error, not a skip. */
const GATEWAY_GROUPS = new Set([AI, EG, GWAPI, "tollgate.dev"]);
/** Kinds of those groups that only configure what Tollgate decides by itself (TLS by port, the proxy deployment). */
const SKIPPED_GATEWAY_KINDS = new Set(["BackendTLSPolicy", "EnvoyProxy", "ReferenceGrant", "GatewayConfig"]);

export type KindLookup =
  | { readonly status: "known"; readonly schema: z.ZodType }
  | { readonly status: "ignored" }
  | { readonly status: "unsupported"; readonly message: string };

export function lookupKind(apiVersion: string, kind: string): KindLookup {
  const schema = SCHEMAS[apiVersion]?.[kind];
  if (schema) return { status: "known", schema };
  const group = apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.indexOf("/")) : "";
  const versions = Object.keys(SCHEMAS).filter((v) => SCHEMAS[v]?.[kind] !== undefined);
  if (versions.length > 0 && (group === "" ? "v1" : group) === groupOf(versions[0] ?? "")) {
    return { status: "unsupported", message: `${kind} ${apiVersion} is not supported; use ${versions.join(" or ")}` };
  }
  if (kind === "List") {
    return { status: "unsupported", message: "Lists are not supported; write one resource per document" };
  }
  if (GATEWAY_GROUPS.has(group) && !SKIPPED_GATEWAY_KINDS.has(kind)) {
    return { status: "unsupported", message: `Kind ${kind} of ${group} is not supported by Tollgate` };
  }
  return { status: "ignored" };
}

function groupOf(apiVersion: string): string {
  return apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.indexOf("/")) : "v1";
}

/** Turns a document that passed its schema into the typed resource (namespace defaulted, status dropped). */
export function toResource(parsed: Record<string, unknown>, origin: ResourceOrigin): Resource {
  const { status: _status, metadata, ...rest } = parsed as { status?: unknown; metadata: z.output<typeof objectMeta> };
  const { uid: _uid, resourceVersion: _rv, generation: _gen, ...meta } = metadata;
  // The document matched the schema registered for its apiVersion and kind, which is exactly this union member.
  return { ...rest, metadata: { ...meta, namespace: meta.namespace ?? DEFAULT_NAMESPACE }, origin } as Resource;
}

/** "namespace/name", the identity used in errors, endpoint metadata and compiled names. */
export function qualifiedName(r: { readonly metadata: ResourceMetadata }): string {
  return `${r.metadata.namespace}/${r.metadata.name}`;
}
