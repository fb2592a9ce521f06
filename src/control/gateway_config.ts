// Resource files → what the processes run with: the edge topology and the sidecar's snapshot, with credentials
// resolved locally from the Secrets (never carried elsewhere). Shared by `tollgate run`, `render`, `validate` and
// `extproc --config`.
import type { EdgeConfig } from "../edge/config.ts";
import { loadResources } from "./resources/load.ts";
import { formatResourceError, type ResourceError } from "./resources/errors.ts";
import { secretValue } from "./resources/kubernetes.ts";
import type { Resource } from "./resources/resource.ts";
import { compileGateway } from "./compile/compile_gateway.ts";
import type { CompiledBackend, CompiledGateway, SecretReference } from "./compile/compiled.ts";
import { type BackendInfo, buildSnapshot, type GatewaySnapshot } from "./snapshot.ts";

export interface GatewayConfigOptions {
  readonly extProcTarget: string;
  readonly listener?: { readonly host: string; readonly port: number };
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Where the rate limit service is; without it, global limits compile but are reported as not enforced. */
  readonly rateLimit?: { readonly target: string; readonly domain: string };
  readonly accessLog?: string;
  readonly revision?: number;
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
  APIKey: (key) => ({ header: "authorization", value: `Bearer ${key}` }),
  AzureAPIKey: (key) => ({ header: "api-key", value: key }),
  AnthropicAPIKey: (key) => ({ header: "x-api-key", value: key }),
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
    rateLimit: o.rateLimit ?? { target: "127.0.0.1:8081", domain: "ai-gateway" },
    ...(o.accessLog ? { accessLog: o.accessLog } : {}),
  });
  if (!compiled.ok) return { ok: false, errors: compiled.errors };
  const notes: string[] = [];
  const secrets = new Map(
    loaded.resources.filter((r) => r.kind === "Secret").map((r) => [`${r.metadata.namespace}/${r.metadata.name}`, r]),
  );
  const backends: BackendInfo[] = [];
  const errors: ResourceError[] = [];
  for (const b of compiled.backends) {
    const info = backendInfo(
      b,
      (ref) => {
        const secret = secrets.get(`${ref.namespace}/${ref.name}`);
        return secret ? secretValue(secret as Parameters<typeof secretValue>[0], ref.key) : undefined;
      },
      notes,
      errors,
    );
    if (info) backends.push(info);
  }
  if (errors.length > 0) return { ok: false, errors };
  let edge = compiled.edge;
  if (compiled.rateLimitRules.length > 0 && !o.rateLimit) {
    notes.push(
      `${compiled.rateLimitRules.length} rate-limit rule(s) compiled but not enforced: the rate limit service lands with issue #5`,
    );
    edge = { ...edge, routes: edge.routes.map((r) => ({ ...r, rateLimits: [] })) };
    const { rateLimit: _dropped, ...rest } = edge;
    edge = rest;
  }
  const snapshot = buildSnapshot(o.revision ?? 1, { models: compiled.models, backends });
  return { ok: true, edge, snapshot, compiled, notes };
}

function backendInfo(
  b: CompiledBackend,
  secret: (ref: SecretReference) => string | undefined,
  notes: string[],
  errors: ResourceError[],
): BackendInfo | undefined {
  if (b.schema.name !== "OpenAI") {
    notes.push(`Backend ${b.name} uses schema ${b.schema.name}: its translator lands with issue #4; not routable yet`);
  }
  const prefix = b.schema.prefix && b.schema.prefix !== "/v1" ? { apiPrefix: b.schema.prefix } : {};
  if (!b.auth) return { name: b.name, ...prefix };
  if (b.auth.type === "APIKey" || b.auth.type === "AzureAPIKey" || b.auth.type === "AnthropicAPIKey") {
    const value = secret(b.auth.secret);
    if (value === undefined) {
      errors.push({
        file: "(resolved at load)",
        path: `${b.auth.secret.namespace}/${b.auth.secret.name}`,
        message:
          `Secret ${b.auth.secret.namespace}/${b.auth.secret.name} has no key "${b.auth.secret.key}" for ${b.auth.policy}`,
      });
      return undefined;
    }
    return { name: b.name, auth: API_KEY_HEADERS[b.auth.type](value.trim())!, ...prefix };
  }
  notes.push(
    `Backend ${b.name} uses ${b.auth.type} credentials: signing lands with issue #4; sent without credentials`,
  );
  return { name: b.name, ...prefix };
}

export function formatErrors(errors: readonly ResourceError[]): string {
  return errors.map(formatResourceError).join("\n");
}

export type { Resource };
