// The compiled configuration a sidecar runs with. Immutable once built: a stream keeps the snapshot it started
// with, and a new one replaces the reference atomically. The full compiler (routes, backends, costs) comes with
// the control-plane issue; today a snapshot carries what the router stream needs.

export interface ModelInfo {
  readonly id: string;
  readonly ownedBy: string;
  /** Unix seconds, as OpenAI's /v1/models reports `created`. */
  readonly created: number;
}

export interface GatewaySnapshot {
  /** Monotonic revision; 0 is the embedded default. */
  readonly revision: number;
  readonly models: readonly ModelInfo[];
  /** Models answered by this gateway; an empty list means "route any model name" (pass-through). */
  readonly modelIds: ReadonlySet<string>;
}

export function buildSnapshot(revision: number, models: readonly ModelInfo[]): GatewaySnapshot {
  const frozen = Object.freeze(models.map((m) => Object.freeze({ ...m })));
  return Object.freeze({ revision, models: frozen, modelIds: new Set(frozen.map((m) => m.id)) });
}

/** The embedded default: the built-in demo model that `tollgate run` serves when nothing else is configured. */
export const DEMO_MODEL = "tollgate-echo";

export function defaultSnapshot(extraModels: readonly string[] = []): GatewaySnapshot {
  const ids = extraModels.length > 0 ? extraModels : [DEMO_MODEL];
  // A fixed `created` keeps /v1/models byte-for-byte stable across restarts and replicas.
  return buildSnapshot(0, ids.map((id) => ({ id, ownedBy: "tollgate", created: 1767225600 })));
}
