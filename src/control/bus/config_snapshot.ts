// The config snapshot the controller publishes and every sidecar and aggregator applies: the compiled gateway
// (edge topology, backends, backendRefs, costs, rate-limit rules) with credentials as Secret references only, in a
// versioned envelope:
//
//   { "apiVersion": "tollgate.dev/v1alpha1", "kind": "ConfigSnapshot", "schemaVersion": 1,
//     "rateLimitDomain": "ai-gateway", "gateway": { …CompiledGateway… }, "extensions": { … } }
//
// Its identity is the sha256 of its canonical encoding (JSON, object keys sorted, no whitespace, absent fields
// omitted): the same resources give the same hash on any controller, so an unchanged compile is not republished and
// a receiver can check that what it assembled from chunks is exactly what was compiled. The revision is not part of
// the content: the publisher numbers snapshots as it writes them (see config_store.ts).
//
// schemaVersion changes whenever a receiver of the previous version would misread the content; a receiver refuses
// any version it was not built for, and keeps what it runs.
import { createHash } from "node:crypto";
import type { CompiledGateway } from "../compile/compiled.ts";
import { type CanonicalEncoder, canonicalJson } from "./canonical_json.ts";
import { ConfigSnapshotError } from "./config_snapshot_error.ts";

export { canonicalJson, ConfigSnapshotError };

export const CONFIG_API_VERSION = "tollgate.dev/v1alpha1";
export const CONFIG_KIND = "ConfigSnapshot";
/** The schema version this build writes and reads. */
export const CONFIG_SCHEMA_VERSION = 1;

export interface ConfigSnapshot {
  readonly apiVersion: typeof CONFIG_API_VERSION;
  readonly kind: typeof CONFIG_KIND;
  readonly schemaVersion: number;
  /** The domain the rate-limit rules and usage descriptors live in. */
  readonly rateLimitDomain: string;
  /** Credentials are SecretReferences (namespace/name/key) here, never values. */
  readonly gateway: CompiledGateway;
  /** Further serialisable sections (e.g. semantic routing), carried as they are; plain JSON only. */
  readonly extensions?: Readonly<Record<string, unknown>>;
}

/** A snapshot with its canonical bytes and their sha256 (lower-case hex). */
export interface EncodedSnapshot {
  readonly snapshot: ConfigSnapshot;
  readonly bytes: Uint8Array;
  readonly hash: string;
}

/** A snapshot written for a schema version this build does not read. */
export class IncompatibleSnapshotError extends ConfigSnapshotError {
  override readonly name = "IncompatibleSnapshotError";
  readonly schemaVersion: unknown;
  constructor(schemaVersion: unknown) {
    super(
      `Config snapshot has schema version ${JSON.stringify(schemaVersion)}; this Tollgate reads version ` +
        `${CONFIG_SCHEMA_VERSION} only (upgrade or downgrade the controller and the subscribers together)`,
    );
    this.schemaVersion = schemaVersion;
  }
}

export function configSnapshot(
  gateway: CompiledGateway & { ok?: true },
  o: { readonly rateLimitDomain: string; readonly extensions?: Readonly<Record<string, unknown>> },
): ConfigSnapshot {
  const { ok: _ok, ...compiled } = gateway;
  return {
    apiVersion: CONFIG_API_VERSION,
    kind: CONFIG_KIND,
    schemaVersion: CONFIG_SCHEMA_VERSION,
    rateLimitDomain: o.rateLimitDomain,
    gateway: compiled,
    ...(o.extensions && Object.keys(o.extensions).length > 0 ? { extensions: o.extensions } : {}),
  };
}

/** Lower-case hex sha256 (node:crypto: several times faster than WebCrypto's digest on megabytes, and sync). */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The canonical bytes of `snapshot` and their hash. With an encoder, objects it encoded before are not written again
 * (see canonical_json.ts: they must not have changed since).
 */
export function encodeSnapshot(snapshot: ConfigSnapshot, encoder?: CanonicalEncoder): Promise<EncodedSnapshot> {
  const bytes = new TextEncoder().encode(encoder ? encoder.encode(snapshot) : canonicalJson(snapshot));
  return Promise.resolve({ snapshot, bytes, hash: sha256Hex(bytes) });
}

/**
 * Canonical bytes → snapshot, checking that they hash to `expectedHash`, that the envelope is ours and that the
 * schema version is the one this build reads. Throws IncompatibleSnapshotError or ConfigSnapshotError.
 */
export function decodeSnapshot(bytes: Uint8Array, expectedHash: string): Promise<EncodedSnapshot> {
  try {
    return Promise.resolve(decodeSnapshotSync(bytes, expectedHash));
  } catch (e) {
    return Promise.reject(e);
  }
}

function decodeSnapshotSync(bytes: Uint8Array, expectedHash: string): EncodedSnapshot {
  const hash = sha256Hex(bytes);
  if (hash !== expectedHash) {
    throw new ConfigSnapshotError(`Config snapshot fails its checksum: sha256 ${hash}, expected ${expectedHash}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ConfigSnapshotError(`Config snapshot is not JSON: ${(e as Error).message}`);
  }
  return { snapshot: checkEnvelope(parsed), bytes, hash };
}

/** The envelope and the shape of what receivers index into; the content itself was checked by the compiler. */
export function checkEnvelope(value: unknown): ConfigSnapshot {
  const o = value as Partial<Record<keyof ConfigSnapshot, unknown>> | null;
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    throw new ConfigSnapshotError("Config snapshot is not a JSON object");
  }
  if (o.apiVersion !== CONFIG_API_VERSION || o.kind !== CONFIG_KIND) {
    throw new ConfigSnapshotError(
      `Config snapshot is ${JSON.stringify(o.apiVersion)} ${JSON.stringify(o.kind)}, not ` +
        `${CONFIG_API_VERSION} ${CONFIG_KIND}`,
    );
  }
  if (o.schemaVersion !== CONFIG_SCHEMA_VERSION) throw new IncompatibleSnapshotError(o.schemaVersion);
  if (typeof o.rateLimitDomain !== "string") throw new ConfigSnapshotError("Config snapshot has no rateLimitDomain");
  const g = o.gateway as Partial<Record<keyof CompiledGateway, unknown>> | undefined;
  const edge = g?.edge as { routes?: unknown; clusters?: unknown } | undefined;
  const lists = [g?.models, g?.backends, g?.rateLimitRules, g?.llmRequestCosts, edge?.routes, edge?.clusters];
  if (typeof g !== "object" || g === null || typeof edge !== "object" || !lists.every(Array.isArray)) {
    throw new ConfigSnapshotError("Config snapshot's gateway is missing models, backends, rules, costs or the edge");
  }
  return o as unknown as ConfigSnapshot;
}
