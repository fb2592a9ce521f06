// The compiler: reads the resources of every source, validates and compiles them exactly as `tollgate validate`
// does, checks the cost expressions, and encodes the result as a content-hashed config snapshot. An invalid change
// is an outcome, not a failure: the controller logs every located error and keeps publishing the last good snapshot.
//
// Files whose text did not change since the last compile are not parsed again (LoadOptions.cache): with thousands of
// routes in a directory, YAML parsing would otherwise dominate the time from a change to its publication.
import { fromPromise } from "xstate";
import { compileGateway } from "../../control/compile/compile_gateway.ts";
import { CompileMemo } from "../../control/compile/compile_memo.ts";
import type { CompileOptions } from "../../control/compile/compiled.ts";
import {
  configSnapshot,
  type EncodedSnapshot,
  encodeSnapshot,
  SnapshotEncoder,
} from "../../control/bus/config_snapshot.ts";
import { type ResourceError, sortErrors } from "../../control/resources/errors.ts";
import { type LoadOptions, loadResources } from "../../control/resources/load.ts";
import { checkResources } from "../../control/resources/references.ts";
import { qualifiedName, type Resource } from "../../control/resources/resource.ts";
import { policySecretRefs } from "../../control/resources/backend_security_policy.ts";
import { compileCosts } from "../../usage/costs.ts";

/** Where Envoy finds the rate limit service unless told otherwise: the aggregators' Service in Kubernetes. */
export const DEFAULT_RLS_TARGET = "tollgate-aggregator:8081";

export interface CompilerInput {
  /** Resource files and directories (the directory source); may be empty. */
  readonly paths: readonly string[];
  /** Resources from the Kubernetes source, already schema-checked; undefined without that source. */
  readonly kubernetes?: { readonly resources: readonly Resource[]; readonly errors: readonly ResourceError[] };
  /** For ${VAR} substitution in files. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cache: NonNullable<LoadOptions["cache"]>;
  /** The YAML files changed since the last compile with this cache (absolute paths), or "all" (the default). */
  readonly changed?: ReadonlySet<string> | "all";
  /** What the previous compile and encoding can lend this one (see compile_memo.ts); the controller keeps one. */
  readonly memo?: CompilerMemo;
  readonly compile: Pick<CompileOptions, "extProcTarget" | "rateLimit" | "listenerHost" | "listenerPort"> & {
    readonly rateLimitDomain: string;
  };
}

export interface CompilerMemo {
  readonly compile: CompileMemo;
  readonly encoder: SnapshotEncoder;
}

export function compilerMemo(): CompilerMemo {
  return { compile: new CompileMemo(), encoder: new SnapshotEncoder() };
}

export type CompileOutcome =
  | {
    readonly ok: true;
    readonly encoded: EncodedSnapshot;
    readonly routes: number;
    readonly backends: number;
    /** Secret resources read for validation only: their values are never part of a snapshot. */
    readonly secrets: number;
    readonly ms: number;
  }
  | { readonly ok: false; readonly errors: readonly ResourceError[] };

/** Receives how long each step of a compile took (the step bench reads it). */
export type CompileTimings = (step: string, ms: number) => void;

export async function compileSources(
  input: CompilerInput,
  o: { readonly timings?: CompileTimings } = {},
): Promise<CompileOutcome> {
  const started = performance.now();
  let mark = started;
  const lap = (step: string) => {
    const now = performance.now();
    o.timings?.(step, now - mark);
    mark = now;
  };
  const fromFiles = input.paths.length > 0
    ? await loadResources(input.paths, {
      env: input.env,
      cache: input.cache,
      checkReferences: false,
      ...(input.changed === undefined || input.changed === "all" ? {} : { changed: input.changed }),
    })
    : { resources: [], errors: [] };
  lap("load");
  // References are checked once, across both sources, and the index built for that is the compiler's. The
  // controller never needs a Secret's value (snapshots carry references; each sidecar reads its own mounts), so a
  // Secret that is referenced but not among the sources — the usual case: Secrets are mounted into the gateway pods,
  // not put in the controller's ConfigMap — is no error here, in either source.
  let resources: readonly Resource[] = [...fromFiles.resources, ...(input.kubernetes?.resources ?? [])];
  resources = [...resources, ...unreadSecrets(resources)];
  const checked = checkResources(resources);
  const errors = [...fromFiles.errors, ...(input.kubernetes?.errors ?? []), ...checked.errors];
  lap("validate");
  if (errors.length > 0) return { ok: false, errors: sortErrors(errors) };
  const { rateLimitDomain, ...compileOptions } = input.compile;
  const compiled = compileGateway(resources, {
    messageTimeoutMs: 10_000,
    failureModeAllow: false,
    ...compileOptions,
    // Limits always compile (the aggregators enforce them); the target only matters to a rendered Envoy config.
    rateLimit: compileOptions.rateLimit ?? { target: DEFAULT_RLS_TARGET, domain: rateLimitDomain },
  }, { checked, ...(input.memo ? { memo: input.memo.compile } : {}) });
  lap("compile");
  if (!compiled.ok) return { ok: false, errors: compiled.errors };
  const costs = compileCosts(compiled.llmRequestCosts);
  if (!costs.ok) {
    return {
      ok: false,
      errors: costs.errors.map((e) => ({
        file: "(llmRequestCosts)",
        kind: "AIGatewayRoute",
        name: e.route,
        path: e.metadataKey,
        message: e.message,
      })),
    };
  }
  lap("costs");
  const snapshot = configSnapshot(compiled, { rateLimitDomain });
  const encoded = await (input.memo ? input.memo.encoder.encode(snapshot) : encodeSnapshot(snapshot));
  lap("encode + sha256");
  return {
    ok: true,
    encoded,
    routes: compiled.edge.routes.length,
    backends: compiled.backends.length,
    secrets: resources.filter((r) => r.kind === "Secret").length,
    ms: performance.now() - started,
  };
}

/**
 * Secrets are not read from the cluster (see kubernetes_source.ts), nor need they be in the watched files, so
 * references to them cannot be checked here:
 * each sidecar resolves them from its own mounts and reports a missing key. Stand-ins with the referenced keys (and
 * empty values, never published: snapshots carry references only) let validation and compilation go on.
 */
function unreadSecrets(resources: readonly Resource[]): Resource[] {
  const present = new Set(resources.filter((r) => r.kind === "Secret").map((r) => qualifiedName(r)));
  const wanted = new Map<string, { namespace: string; name: string; keys: Set<string> }>();
  for (const policy of resources) {
    if (policy.kind !== "BackendSecurityPolicy") continue;
    for (const { ref, key } of policySecretRefs(policy.spec)) {
      const namespace = ref.namespace ?? policy.metadata.namespace;
      const id = `${namespace}/${ref.name}`;
      if (present.has(id)) continue;
      const entry = wanted.get(id) ?? { namespace, name: ref.name, keys: new Set<string>() };
      entry.keys.add(key);
      wanted.set(id, entry);
    }
  }
  return [...wanted.values()].map(({ namespace, name, keys }) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace },
    stringData: Object.fromEntries([...keys].map((k) => [k, ""])),
    origin: {
      file: "(Secret not among the sources: each sidecar resolves it)",
      document: 0,
      kind: "Secret",
      name: `${namespace}/${name}`,
    },
  }));
}

export const compilerActor = fromPromise<CompileOutcome, CompilerInput>(({ input }) => compileSources(input));
