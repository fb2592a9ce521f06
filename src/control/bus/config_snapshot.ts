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
//
// The encoding is a little leaner than the compiled gateway: every cluster of a compiled gateway carries the same
// upstream ext_proc filter (a third of a 2,000-route snapshot), so when all of them do, it is written once as
// `gateway.edge.upstreamExtProc` and left out of each cluster; decoding puts it back, so both ends hold the compiled
// gateway itself. Receivers read only routes, backends, models, costs and rules, never clusters, so receivers that
// predate this read such snapshots exactly as before: the schema version stays 1.
import { createHash } from "node:crypto";
import type { CompiledGateway } from "../compile/compiled.ts";
import { CanonicalEncoder, canonicalJson } from "./canonical_json.ts";
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

type Cluster = CompiledGateway["edge"]["clusters"][number];
type UpstreamFilter = NonNullable<Cluster["upstreamExtProc"]>;
type WireEdge = CompiledGateway["edge"] & { readonly upstreamExtProc?: UpstreamFilter };

/**
 * The snapshot as written: the clusters' common upstream filter once on the edge (see the top of this file), when
 * every cluster has one and they are all the same.
 */
function toWire(snapshot: ConfigSnapshot, lean: (c: Cluster) => Cluster): ConfigSnapshot {
  const { edge } = snapshot.gateway;
  const shared = edge.clusters[0]?.upstreamExtProc;
  if (!shared) return snapshot;
  let sharedText: string | undefined;
  for (const c of edge.clusters) {
    if (c.upstreamExtProc === shared) continue;
    if (!c.upstreamExtProc) return snapshot;
    sharedText ??= canonicalJson(shared);
    if (canonicalJson(c.upstreamExtProc) !== sharedText) return snapshot;
  }
  const wireEdge: WireEdge = { ...edge, upstreamExtProc: shared, clusters: edge.clusters.map(lean) };
  return { ...snapshot, gateway: { ...snapshot.gateway, edge: wireEdge } };
}

function leanCluster(c: Cluster): Cluster {
  const { upstreamExtProc: _shared, ...rest } = c;
  return rest;
}

/** The wire form back to the compiled gateway: each cluster gets the shared upstream filter again. */
function fromWire(snapshot: ConfigSnapshot): ConfigSnapshot {
  const { upstreamExtProc: shared, ...edge } = snapshot.gateway.edge as WireEdge;
  if (shared === undefined) return snapshot;
  const clusters = edge.clusters.map((c) => ({ ...c, upstreamExtProc: shared }));
  return { ...snapshot, gateway: { ...snapshot.gateway, edge: { ...edge, clusters } } };
}

/**
 * Encodes snapshot after snapshot, remembering the text of what it wrote before (canonical_json.ts): the controller
 * keeps one, and its compiler hands it the same objects for whatever a change did not touch. Those objects must not
 * change once encoded.
 */
export class SnapshotEncoder {
  readonly #canonical = new CanonicalEncoder();
  readonly #lean = new WeakMap<Cluster, Cluster>();

  encode(snapshot: ConfigSnapshot): Promise<EncodedSnapshot> {
    const wire = toWire(snapshot, (c) => {
      let lean = this.#lean.get(c);
      if (!lean) this.#lean.set(c, lean = leanCluster(c));
      return lean;
    });
    return Promise.resolve(encoded(snapshot, this.#canonical.encode(wire)));
  }
}

function encoded(snapshot: ConfigSnapshot, text: string): EncodedSnapshot {
  const bytes = new TextEncoder().encode(text);
  return { snapshot, bytes, hash: sha256Hex(bytes) };
}

/** Lower-case hex sha256 (node:crypto: several times faster than WebCrypto's digest on megabytes, and sync). */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The canonical bytes of `snapshot` (in its wire form) and their hash. */
export function encodeSnapshot(snapshot: ConfigSnapshot): Promise<EncodedSnapshot> {
  return Promise.resolve(encoded(snapshot, canonicalJson(toWire(snapshot, leanCluster))));
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
    // Not a fatal decoder (ten times slower on megabytes): the bytes hash to what the controller encoded, and a
    // TextEncoder only ever writes valid UTF-8.
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ConfigSnapshotError(`Config snapshot is not JSON: ${(e as Error).message}`);
  }
  return { snapshot: fromWire(checkEnvelope(parsed)), bytes, hash };
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
