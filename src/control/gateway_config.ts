// Resource files → what the processes run with: the edge topology and the sidecar's snapshot, with credentials
// resolved locally from the Secrets (never carried elsewhere). Shared by `tollgate run`, `render`, `validate` and
// `extproc --config`.
import type { EdgeConfig } from "../edge/config.ts";
import { loadResources } from "./resources/load.ts";
import { formatResourceError, type ResourceError } from "./resources/errors.ts";
import { firstOf, resourceSecrets, secretEnvName, type SecretResolver } from "./secrets.ts";
import { parseAwsCredentialsFile } from "../protocol/auth/aws_credentials.ts";
import { compileCosts, type CostProgram } from "../usage/costs.ts";

export const DEFAULT_RATE_LIMIT_DOMAIN = "ai-gateway";
import type { Resource } from "./resources/resource.ts";
import { compileGateway } from "./compile/compile_gateway.ts";
import type { CompiledBackend, CompiledGateway, SecretReference } from "./compile/compiled.ts";
import { type BackendInfo, buildSnapshot, type GatewaySnapshot } from "./snapshot.ts";
import { prepareRouting } from "../routing/routing_table.ts";
import { buildReservationPlan } from "../usage/reservation_plan.ts";

export interface GatewayConfigOptions {
  readonly extProcTarget: string;
  readonly listener?: { readonly host: string; readonly port: number };
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Where the rate limit service is; without it, global limits compile but are reported as not enforced. */
  readonly rateLimit?: { readonly target: string; readonly domain: string };
  readonly accessLog?: string;
  readonly revision?: number;
  /** Where Secret keys not defined in the files are read (mounted Secrets, environment). */
  readonly secrets?: SecretResolver;
}

export type GatewayConfig =
  | {
    readonly ok: true;
    readonly edge: EdgeConfig;
    readonly snapshot: GatewaySnapshot;
    readonly compiled: CompiledGateway;
    /** Things the user should know: what is compiled but not yet served. */
    readonly notes: readonly string[];
  }
  | { readonly ok: false; readonly errors: readonly ResourceError[] };

/** The credential header each API-key policy type puts on the upstream request. */
const API_KEY_HEADERS: Record<"APIKey" | "AzureAPIKey" | "AnthropicAPIKey", (key: string) => BackendInfo["auth"]> = {
  APIKey: (key) => ({ kind: "header", header: "authorization", value: `Bearer ${key}` }),
  AzureAPIKey: (key) => ({ kind: "header", header: "api-key", value: key }),
  AnthropicAPIKey: (key) => ({ kind: "header", header: "x-api-key", value: key }),
};

export async function loadGatewayConfig(paths: readonly string[], o: GatewayConfigOptions): Promise<GatewayConfig> {
  const loaded = await loadResources(paths, o.env ? { env: o.env as Record<string, string> } : {});
  if (loaded.errors.length > 0) return { ok: false, errors: loaded.errors };
  const compiled = compileGateway(loaded.resources, {
    extProcTarget: o.extProcTarget,
    messageTimeoutMs: 10_000,
    failureModeAllow: false,
    ...(o.listener ? { listenerHost: o.listener.host, listenerPort: o.listener.port } : {}),
    // Limits always compile; whether something enforces them is the caller's business (see notes).
    rateLimit: o.rateLimit ?? { target: "127.0.0.1:8081", domain: DEFAULT_RATE_LIMIT_DOMAIN },
    ...(o.accessLog ? { accessLog: o.accessLog } : {}),
  });
  if (!compiled.ok) return { ok: false, errors: compiled.errors };
  const materialized = materializeSnapshot(compiled, {
    revision: o.revision ?? 1,
    rateLimitDomain: o.rateLimit?.domain ?? DEFAULT_RATE_LIMIT_DOMAIN,
    env: o.env ?? {},
    secret: o.secrets ? firstOf(resourceSecrets(loaded.resources), o.secrets) : resourceSecrets(loaded.resources),
  });
  if (!materialized.ok) return { ok: false, errors: materialized.errors };
  const { snapshot } = materialized;
  const notes = [...materialized.notes];
  let edge = compiled.edge;
  if (compiled.rateLimitRules.length > 0 && !o.rateLimit) {
    notes.push(
      `${compiled.rateLimitRules.length} rate-limit rule(s) compiled but not enforced here: no rate limit service given`,
    );
    edge = { ...edge, routes: edge.routes.map((r) => ({ ...r, rateLimits: [] })) };
    const { rateLimit: _dropped, ...rest } = edge;
    edge = rest;
  }
  return { ok: true, edge, snapshot, compiled, notes };
}

export interface MaterializeOptions {
  readonly revision: number;
  /** The rate limit domain usage events count against (default "ai-gateway"). */
  readonly rateLimitDomain?: string;
  /** This process's environment: rotated token files of GCP and Azure backends are named there. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolves Secret references from what this process can read (files in the config, mounts, environment). */
  readonly secret: SecretResolver;
  /**
   * "error" (default): a Secret key this process cannot read rejects the config. "omit": the backend is served
   * without credentials and a note says so (a sidecar fed over NATS still applies everything else, and picks the
   * key up when it is mounted).
   */
  readonly missingSecrets?: "error" | "omit";
}

export type Materialized =
  | { readonly ok: true; readonly snapshot: GatewaySnapshot; readonly notes: readonly string[] }
  | { readonly ok: false; readonly errors: readonly ResourceError[] };

/** A compiled gateway (credentials by reference) → the snapshot a sidecar serves, credentials resolved locally. */
export function materializeSnapshot(compiled: CompiledGateway, o: MaterializeOptions): Materialized {
  const notes: string[] = [];
  const backends: BackendInfo[] = [];
  const errors: ResourceError[] = [];
  for (const b of compiled.backends) {
    const info = backendInfo(b, o.env, o.secret, notes, errors, o.missingSecrets ?? "error");
    if (info) backends.push(info);
  }
  if (errors.length > 0) return { ok: false, errors };
  const costs = compileCosts(compiled.llmRequestCosts);
  if (!costs.ok) {
    return {
      ok: false,
      errors: costs.errors.map((e) => ({
        file: "(llmRequestCosts)",
        name: e.route,
        path: e.metadataKey,
        message: e.message,
      })),
    };
  }
  const routeCosts = new Map<string, CostProgram[]>();
  for (const c of costs.costs) routeCosts.set(c.route, [...(routeCosts.get(c.route) ?? []), c]);
  const domain = o.rateLimitDomain ?? DEFAULT_RATE_LIMIT_DOMAIN;
  const rateLimits = new Map(
    compiled.edge.routes
      .map((r) => [r.name, { domain, entries: r.rateLimits.filter((e) => e.applyOnStreamDone) }] as const)
      .filter(([, v]) => v.entries.length > 0),
  );
  const backendRefs = compiled.backends.flatMap((b) =>
    b.refs.map((r) => ({
      id: r.id,
      backend: b.name,
      route: r.route,
      ...(r.modelNameOverride ? { modelNameOverride: r.modelNameOverride } : {}),
      ...(r.headerMutation ? { headerMutation: r.headerMutation } : {}),
      ...(r.bodyMutation ? { bodyMutation: r.bodyMutation } : {}),
    }))
  );
  const snapshot = buildSnapshot(o.revision, {
    models: compiled.models,
    backends,
    backendRefs,
    forceStreamUsage: compiled.llmRequestCosts.length > 0,
    routeCosts,
    rateLimits,
    ...(compiled.semanticRouters ? { semanticRouters: compiled.semanticRouters } : {}),
    ...(compiled.rateLimitOptions?.reservation
      ? {
        reservation: buildReservationPlan(
          compiled.rateLimitOptions.reservation,
          costs.costs,
          backendRefs,
        ),
      }
      : {}),
  });
  // The built-in classifiers train now, at load, rather than on the first routed request.
  prepareRouting(snapshot.semanticRouters ?? []);
  return { ok: true, snapshot, notes };
}

function backendInfo(
  b: CompiledBackend,
  env: Readonly<Record<string, string | undefined>>,
  secret: (ref: SecretReference) => string | undefined,
  notes: string[],
  errors: ResourceError[],
  missingSecrets: "error" | "omit",
): BackendInfo | undefined {
  const base = {
    name: b.name,
    schema: b.schema,
    // The authority the upstream sees (and SigV4 signs): the port only when it is not the scheme's default.
    ...(b.endpoints[0] ? { host: authority(b.endpoints[0]) } : {}),
    ...(b.headerMutation ? { headerMutation: b.headerMutation } : {}),
    ...(b.bodyMutation ? { bodyMutation: b.bodyMutation } : {}),
  };
  if (!b.auth) return base;
  const missing = (ref: SecretReference, policy: string) => {
    if (missingSecrets === "omit") {
      notes.push(
        `Backend ${b.name}: Secret ${ref.namespace}/${ref.name} key "${ref.key}" (${policy}) is not available ` +
          `here (mount it or set ${secretEnvName(ref)}); sent without credentials`,
      );
      return base;
    }
    errors.push({
      file: "(resolved at load)",
      path: `${ref.namespace}/${ref.name}`,
      message: `Secret ${ref.namespace}/${ref.name} has no key "${ref.key}" for ${policy}`,
    });
    return undefined;
  };
  switch (b.auth.type) {
    case "APIKey":
    case "AzureAPIKey":
    case "AnthropicAPIKey": {
      const value = secret(b.auth.secret);
      if (value === undefined) return missing(b.auth.secret, b.auth.policy);
      return { ...base, auth: API_KEY_HEADERS[b.auth.type](value.trim())! };
    }
    case "AWSCredentials": {
      const file = b.auth.credentialsFile;
      if (!file) {
        notes.push(`Backend ${b.name}: AWS credentials by OIDC exchange are not supported yet; sent unsigned`);
        return { ...base, location: { region: b.auth.region } };
      }
      const text = secret(file.secret);
      if (text === undefined) return missing(file.secret, b.auth.policy);
      let credentials;
      try {
        credentials = parseAwsCredentialsFile(text, file.profile);
      } catch (e) {
        errors.push({
          file: "(resolved at load)",
          path: `${file.secret.namespace}/${file.secret.name}`,
          message: (e as Error).message,
        });
        return undefined;
      }
      return {
        ...base,
        location: { region: b.auth.region },
        auth: { kind: "aws", region: b.auth.region, credentials },
      };
    }
    case "GCPCredentials": {
      const location = {
        ...(b.auth.projectName ? { project: b.auth.projectName } : {}),
        ...(b.auth.region ? { region: b.auth.region } : {}),
      };
      const tokenFile = env[tokenFileEnv(b.name)];
      if (tokenFile) return { ...base, location, auth: { kind: "bearerFile", path: tokenFile } };
      notes.push(
        `Backend ${b.name}: set ${tokenFileEnv(b.name)} to a rotated GCP access-token file; sent without credentials`,
      );
      return { ...base, location };
    }
    case "AzureCredentials": {
      const tokenFile = env[tokenFileEnv(b.name)];
      if (tokenFile) return { ...base, auth: { kind: "bearerFile", path: tokenFile } };
      notes.push(
        `Backend ${b.name}: set ${tokenFileEnv(b.name)} to a rotated Azure access-token file; sent without credentials`,
      );
      return base;
    }
  }
}

/** Bearer tokens for GCP and Azure come from a file a token refresher rotates, named per backend by the
 * environment: TOLLGATE_TOKEN_FILE_<NAMESPACE>_<NAME> (upper case, non-alphanumerics as _). */
export function tokenFileEnv(backend: string): string {
  return `TOLLGATE_TOKEN_FILE_${backend.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

function authority(e: { host: string; port: number; tls: boolean }): string {
  return e.port === (e.tls ? 443 : 80) ? e.host : `${e.host}:${e.port}`;
}

export function formatErrors(errors: readonly ResourceError[]): string {
  return errors.map(formatResourceError).join("\n");
}

export type { Resource };
