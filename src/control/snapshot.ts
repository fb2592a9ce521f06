// The compiled configuration a sidecar runs with. Immutable once built: a stream keeps the snapshot it started
// with, and a new one replaces the reference atomically. The full compiler (routes, backends, costs) comes with
// the control-plane issue; today a snapshot carries what the stream actors need.
import type { BackendLocation, BackendSchema } from "../protocol/translators/translator.ts";
import type { CostProgram } from "../usage/costs.ts";
import type { RateLimitEntry } from "../edge/config.ts";
import type { SemanticRouterConfig } from "../routing/config.ts";
import type { ReservationPlan } from "../usage/reservation_plan.ts";

export interface ModelInfo {
  readonly id: string;
  readonly ownedBy: string;
  /** Unix seconds, as OpenAI's /v1/models reports `created`. */
  readonly created: number;
}

/** Where an upstream attempt goes, in which schema, and how it authenticates; the attempt stream applies it. */
export interface BackendInfo {
  /** "namespace/name", as carried in the endpoint metadata Envoy sends with each attempt. */
  readonly name: string;
  readonly schema: BackendSchema;
  /** GCP project and region (Vertex AI paths), AWS region. */
  readonly location?: BackendLocation;
  /** Resolved by this sidecar from its own secrets; never logged, never on NATS. */
  readonly auth?: BackendAuth;
  /** The upstream host name, which SigV4 signs. */
  readonly host?: string;
  readonly headerMutation?: HeaderMutationSpec;
  readonly bodyMutation?: BodyMutationSpec;
}

export type BackendAuth =
  | { readonly kind: "header"; readonly header: string; readonly value: string }
  | {
    readonly kind: "aws";
    readonly region: string;
    readonly credentials: {
      readonly accessKeyId: string;
      readonly secretAccessKey: string;
      readonly sessionToken?: string;
    };
  }
  /** A bearer token in a file that something else rotates (GCP and Azure workload identity). */
  | { readonly kind: "bearerFile"; readonly path: string };

export interface HeaderMutationSpec {
  readonly set: readonly { readonly name: string; readonly value: string }[];
  readonly remove: readonly string[];
}

/** Top-level fields of the upstream JSON body; `value` is JSON text (a bare word is taken as a string). */
export interface BodyMutationSpec {
  readonly set: readonly { readonly path: string; readonly value: string }[];
  readonly remove: readonly string[];
}

/** One backendRef of one route rule: the identity Envoy sends with each attempt (per_route_rule_backend_name). */
export interface BackendRefInfo {
  readonly id: string;
  readonly backend: string;
  /** "namespace/name" of the AIGatewayRoute whose rule holds this backendRef (its costs apply). */
  readonly route?: string;
  readonly modelNameOverride?: string;
  readonly headerMutation?: HeaderMutationSpec;
  readonly bodyMutation?: BodyMutationSpec;
}

/** Endpoint metadata namespace and key naming the backend of an endpoint (xds.upstream_host_metadata). */
export const BACKEND_METADATA_NAMESPACE = "aigateway.envoy.io";
export const BACKEND_METADATA_KEY = "backend";
/** The key naming the backendRef (Envoy AI Gateway's per_route_rule_backend_name). */
export const BACKEND_REF_METADATA_KEY = "per_route_rule_backend_name";

export interface GatewaySnapshot {
  /** Monotonic revision; 0 is the embedded default. */
  readonly revision: number;
  readonly models: readonly ModelInfo[];
  /** Models answered by this gateway. */
  readonly modelIds: ReadonlySet<string>;
  /** A catch-all route exists, so a model missing from the list is routed rather than refused. */
  readonly acceptsAnyModel: boolean;
  readonly backends: ReadonlyMap<string, BackendInfo>;
  readonly backendRefs: ReadonlyMap<string, BackendRefInfo>;
  /** Costs are configured: streamed chats must report usage (see TranslateRequest.forceStreamUsage). */
  readonly forceStreamUsage: boolean;
  /** llmRequestCosts by AIGatewayRoute ("namespace/name"), compiled. */
  readonly routeCosts: ReadonlyMap<string, readonly CostProgram[]>;
  /** The stream-done rate-limit entries of each edge route (by Envoy route name): a usage event counts against
   * exactly the descriptors Envoy's stream-done call would send. */
  readonly rateLimits: ReadonlyMap<string, { readonly domain: string; readonly entries: readonly RateLimitEntry[] }>;
  /** Admission by reservation is on: the router stream prices each request's estimate and writes it to metadata. */
  readonly reservation?: ReservationPlan;
  /** Semantic routing: requests naming a router's trigger models (or its routes' models) are routed by it. */
  readonly semanticRouters?: readonly SemanticRouterConfig[];
}

export interface SnapshotParts {
  readonly models: readonly ModelInfo[];
  readonly backends?: readonly BackendInfo[];
  readonly backendRefs?: readonly BackendRefInfo[];
  readonly forceStreamUsage?: boolean;
  readonly routeCosts?: ReadonlyMap<string, readonly CostProgram[]>;
  readonly rateLimits?: ReadonlyMap<string, { readonly domain: string; readonly entries: readonly RateLimitEntry[] }>;
  readonly acceptsAnyModel?: boolean;
  readonly reservation?: ReservationPlan;
  readonly semanticRouters?: readonly SemanticRouterConfig[];
}

export function buildSnapshot(revision: number, parts: SnapshotParts): GatewaySnapshot {
  const models = Object.freeze(parts.models.map((m) => Object.freeze({ ...m })));
  return Object.freeze({
    revision,
    models,
    modelIds: new Set(models.map((m) => m.id)),
    acceptsAnyModel: parts.acceptsAnyModel ?? false,
    backends: new Map((parts.backends ?? []).map((b) => [b.name, Object.freeze({ ...b })])),
    backendRefs: new Map((parts.backendRefs ?? []).map((r) => [r.id, Object.freeze({ ...r })])),
    forceStreamUsage: parts.forceStreamUsage ?? false,
    routeCosts: parts.routeCosts ?? new Map(),
    rateLimits: parts.rateLimits ?? new Map(),
    ...(parts.reservation ? { reservation: parts.reservation } : {}),
    semanticRouters: parts.semanticRouters ?? [],
  });
}

/** The embedded default: the built-in demo model that `tollgate run` serves when nothing else is configured. */
export const DEMO_MODEL = "tollgate-echo";

export function defaultSnapshot(extraModels: readonly string[] = []): GatewaySnapshot {
  const ids = extraModels.length > 0 ? extraModels : [DEMO_MODEL];
  // A fixed `created` keeps /v1/models byte-for-byte stable across restarts and replicas.
  return buildSnapshot(0, { models: ids.map((id) => modelInfo(id)) });
}

export function modelInfo(id: string, ownedBy = "tollgate"): ModelInfo {
  return { id, ownedBy, created: 1767225600 };
}
