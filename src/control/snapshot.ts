// The compiled configuration a sidecar runs with. Immutable once built: a stream keeps the snapshot it started
// with, and a new one replaces the reference atomically. The full compiler (routes, backends, costs) comes with
// the control-plane issue; today a snapshot carries what the stream actors need.

export interface ModelInfo {
  readonly id: string;
  readonly ownedBy: string;
  /** Unix seconds, as OpenAI's /v1/models reports `created`. */
  readonly created: number;
}

/** Where an upstream attempt goes and how it authenticates; the attempt stream applies it. */
export interface BackendInfo {
  /** "namespace/name", as carried in the endpoint metadata Envoy sends with each attempt. */
  readonly name: string;
  /** Upstream credential header, resolved by this sidecar from its own secrets; never logged, never on NATS. */
  readonly auth?: { readonly header: string; readonly value: string };
  /** Replaces the leading "/v1" of the client's path, e.g. "/openai/v1" for https://api.groq.com/openai/v1
   * (the schema prefix of an AIServiceBackend). */
  readonly apiPrefix?: string;
}

/** Endpoint metadata namespace and key naming the backend of an endpoint (xds.upstream_host_metadata). */
export const BACKEND_METADATA_NAMESPACE = "aigateway.envoy.io";
export const BACKEND_METADATA_KEY = "backend";

export interface GatewaySnapshot {
  /** Monotonic revision; 0 is the embedded default. */
  readonly revision: number;
  readonly models: readonly ModelInfo[];
  /** Models answered by this gateway. */
  readonly modelIds: ReadonlySet<string>;
  /** A catch-all route exists, so a model missing from the list is routed rather than refused. */
  readonly acceptsAnyModel: boolean;
  readonly backends: ReadonlyMap<string, BackendInfo>;
}

export interface SnapshotParts {
  readonly models: readonly ModelInfo[];
  readonly backends?: readonly BackendInfo[];
  readonly acceptsAnyModel?: boolean;
}

export function buildSnapshot(revision: number, parts: SnapshotParts): GatewaySnapshot {
  const models = Object.freeze(parts.models.map((m) => Object.freeze({ ...m })));
  return Object.freeze({
    revision,
    models,
    modelIds: new Set(models.map((m) => m.id)),
    acceptsAnyModel: parts.acceptsAnyModel ?? false,
    backends: new Map((parts.backends ?? []).map((b) => [b.name, Object.freeze({ ...b })])),
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
