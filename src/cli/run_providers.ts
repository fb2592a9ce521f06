// What `tollgate run` serves when it is given no config file: providers found in the environment, or else the
// built-in demo provider. Each provider becomes a backend, a cluster and a route, exactly as a compiled config
// would describe them.
import type { ClusterConfig, EdgeConfig, RouteConfig } from "../edge/config.ts";
import { routerExtProcFilter, upstreamExtProcFilter } from "../edge/filter_defaults.ts";
import {
  BACKEND_METADATA_KEY,
  BACKEND_METADATA_NAMESPACE,
  type BackendInfo,
  buildSnapshot,
  type GatewaySnapshot,
  modelInfo,
} from "../control/snapshot.ts";

export interface RunProvider {
  /** "namespace/name" of the backend. */
  readonly name: string;
  /** Routed by x-ai-eg-model; undefined means every model (a catch-all route, placed last). */
  readonly models?: readonly string[];
  readonly endpoint: { readonly host: string; readonly port: number; readonly tls: boolean };
  readonly auth?: BackendInfo["auth"];
  readonly apiPrefix?: string;
}

export interface ProviderDiscovery {
  readonly providers: RunProvider[];
  /** Lines to tell the user (what was found, what is not supported yet). */
  readonly notes: string[];
  readonly demo: boolean;
}

/** Providers from OPENAI_API_KEY / OPENAI_BASE_URL; others are reported until their translators exist. */
export function providersFromEnv(env: Readonly<Record<string, string | undefined>>): ProviderDiscovery {
  const providers: RunProvider[] = [];
  const notes: string[] = [];
  const key = env.OPENAI_API_KEY;
  if (key) {
    const base = new URL(env.OPENAI_BASE_URL || "https://api.openai.com/v1");
    const tls = base.protocol === "https:";
    const basePath = base.pathname.replace(/\/+$/, "");
    // The base URL's path replaces the /v1 of the client's path (most servers use /v1 itself).
    const apiPrefix = basePath === "/v1" ? "" : basePath;
    providers.push({
      name: "default/openai",
      endpoint: { host: base.hostname, port: Number(base.port) || (tls ? 443 : 80), tls },
      auth: { kind: "header", header: "authorization", value: `Bearer ${key}` },
      ...(apiPrefix ? { apiPrefix } : {}),
    });
    notes.push(`OpenAI-compatible provider at ${base.origin}${basePath} (from OPENAI_API_KEY / OPENAI_BASE_URL)`);
  }
  if (env.ANTHROPIC_API_KEY) {
    notes.push(
      "ANTHROPIC_API_KEY is set, but the Anthropic translator lands with issue #4; Anthropic is not routed yet",
    );
  }
  if (env.AZURE_OPENAI_API_KEY || env.AZURE_OPENAI_ENDPOINT) {
    notes.push("AZURE_OPENAI_* is set, but the Azure OpenAI translator lands with issue #4; Azure is not routed yet");
  }
  return { providers, notes, demo: providers.length === 0 };
}

export interface RunTopology {
  readonly edge: EdgeConfig;
  readonly snapshot: GatewaySnapshot;
}

export function buildRunTopology(
  providers: readonly RunProvider[],
  o: {
    readonly listener: { host: string; port: number };
    readonly extProcTarget: string;
    readonly listedModels: readonly string[];
    readonly accessLog?: string;
  },
): RunTopology {
  const ordered = [...providers.filter((p) => p.models), ...providers.filter((p) => !p.models)];
  const routes: RouteConfig[] = [];
  const clusters: ClusterConfig[] = [];
  for (const p of ordered) {
    const cluster = `cluster-${p.name.replace("/", "-")}`;
    clusters.push({
      name: cluster,
      priorities: [[{
        ...p.endpoint,
        weight: 1,
        metadata: { [BACKEND_METADATA_NAMESPACE]: { [BACKEND_METADATA_KEY]: p.name } },
      }]],
      connectTimeoutMs: 10_000,
      upstreamExtProc: upstreamExtProcFilter(o.extProcTarget),
    });
    const matches = p.models?.map((m) => [{ name: "x-ai-eg-model", exact: m }]) ?? [[]];
    matches.forEach((headers, i) =>
      routes.push({
        name: `route-${p.name.replace("/", "-")}-${i}`,
        match: { prefix: "/", headers },
        cluster,
        timeoutMs: 120_000,
        retryPolicy: {
          retryOn: ["connect-failure", "reset"],
          numRetries: 1,
          perTryTimeoutMs: 0,
          retriableStatusCodes: [],
          previousPriorities: false,
          backOff: { baseMs: 25, maxMs: 250 },
        },
        rateLimits: [],
        autoHostRewrite: true,
      })
    );
  }
  const models = [...new Set([...providers.flatMap((p) => p.models ?? []), ...o.listedModels])];
  return {
    edge: {
      listener: o.listener,
      maxRequestBodyBytes: 32 << 20,
      routerExtProc: routerExtProcFilter(o.extProcTarget),
      routes,
      clusters,
      ...(o.accessLog ? { accessLog: o.accessLog } : {}),
    },
    snapshot: buildSnapshot(1, {
      models: models.map((m) => modelInfo(m)),
      backends: providers.map((p) => ({
        name: p.name,
        schema: { name: "OpenAI" as const, ...(p.apiPrefix ? { prefix: p.apiPrefix } : {}) },
        host: p.endpoint.host,
        ...(p.auth ? { auth: p.auth } : {}),
      })),
      acceptsAnyModel: providers.some((p) => !p.models),
    }),
  };
}
