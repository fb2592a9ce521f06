// What `tollgate run` serves when it is given no config file: providers found in the environment, or else the
// built-in demo provider. Each provider becomes a backend, a cluster and a route, exactly as a compiled config
// would describe them.
import type { ClusterConfig, EdgeConfig, RouteConfig } from "../edge/config.ts";
import { routerExtProcFilter, upstreamExtProcFilter } from "../edge/filter_defaults.ts";
import type { BackendSchema } from "../protocol/translators/translator.ts";
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
  readonly schema: BackendSchema;
  /** Routed by x-ai-eg-model; undefined means every model (a catch-all route, placed last). */
  readonly models?: readonly string[];
  /** Only requests under this path prefix (e.g. "/anthropic/" for Anthropic's own clients). */
  readonly pathPrefix?: string;
  readonly endpoint: { readonly host: string; readonly port: number; readonly tls: boolean };
  readonly auth?: BackendInfo["auth"];
}

export interface ProviderDiscovery {
  readonly providers: RunProvider[];
  /** Lines to tell the user (what was found and how it is routed). */
  readonly notes: string[];
  readonly demo: boolean;
}

function endpointOf(url: URL) {
  const tls = url.protocol === "https:";
  return { host: url.hostname, port: Number(url.port) || (tls ? 443 : 80), tls };
}

function list(text: string | undefined): string[] | undefined {
  const items = text?.split(",").map((s) => s.trim()).filter(Boolean);
  return items && items.length > 0 ? items : undefined;
}

/**
 * Providers from the environment. OpenAI clients reach one catch-all provider (OPENAI_* first, then AZURE_OPENAI_*,
 * then ANTHROPIC_*), and the others through the models listed in TOLLGATE_AZURE_MODELS / TOLLGATE_ANTHROPIC_MODELS;
 * Anthropic's own clients (/anthropic/v1/messages) reach Anthropic.
 */
export function providersFromEnv(env: Readonly<Record<string, string | undefined>>): ProviderDiscovery {
  const providers: RunProvider[] = [];
  const notes: string[] = [];
  let catchAllTaken = false;
  const routing = (listed: string[] | undefined) => {
    if (listed) return { models: listed };
    if (catchAllTaken) return undefined;
    catchAllTaken = true;
    return {};
  };
  if (env.OPENAI_API_KEY) {
    const base = new URL(env.OPENAI_BASE_URL || "https://api.openai.com/v1");
    const basePath = base.pathname.replace(/\/+$/, "");
    providers.push({
      name: "default/openai",
      // The base URL's path replaces the /v1 of the client's path (most servers use /v1 itself).
      schema: { name: "OpenAI", ...(basePath === "/v1" ? {} : { prefix: basePath }) },
      endpoint: endpointOf(base),
      auth: { kind: "header", header: "authorization", value: `Bearer ${env.OPENAI_API_KEY}` },
      ...routing(list(env.TOLLGATE_OPENAI_MODELS)),
    });
    notes.push(`OpenAI-compatible provider at ${base.origin}${basePath} (OPENAI_API_KEY, OPENAI_BASE_URL)`);
  }
  if (env.AZURE_OPENAI_API_KEY && env.AZURE_OPENAI_ENDPOINT) {
    const r = routing(list(env.TOLLGATE_AZURE_MODELS));
    if (r) {
      providers.push({
        name: "default/azure-openai",
        schema: {
          name: "AzureOpenAI",
          ...(env.AZURE_OPENAI_API_VERSION ? { version: env.AZURE_OPENAI_API_VERSION } : {}),
        },
        endpoint: endpointOf(new URL(env.AZURE_OPENAI_ENDPOINT)),
        auth: { kind: "header", header: "api-key", value: env.AZURE_OPENAI_API_KEY },
        ...r,
      });
      notes.push(`Azure OpenAI at ${env.AZURE_OPENAI_ENDPOINT}: the model name is the deployment name`);
    } else notes.push("AZURE_OPENAI_* is set: list its deployments in TOLLGATE_AZURE_MODELS to route to it");
  }
  if (env.ANTHROPIC_API_KEY) {
    const base = new URL(env.ANTHROPIC_BASE_URL || "https://api.anthropic.com");
    const auth = { kind: "header" as const, header: "x-api-key", value: env.ANTHROPIC_API_KEY };
    providers.push({
      name: "default/anthropic",
      schema: { name: "Anthropic" },
      pathPrefix: "/anthropic/",
      endpoint: endpointOf(base),
      auth,
    });
    const r = routing(list(env.TOLLGATE_ANTHROPIC_MODELS));
    if (r) {
      providers.push({
        name: "default/anthropic",
        schema: { name: "Anthropic" },
        endpoint: endpointOf(base),
        auth,
        ...r,
      });
    }
    notes.push(
      `Anthropic at ${base.origin}: Anthropic clients on /anthropic/v1/messages` +
        (r ? "; OpenAI clients too, translated" : "; list models in TOLLGATE_ANTHROPIC_MODELS for OpenAI clients"),
    );
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
  // Envoy takes the first match: path-scoped and model-specific routes before the catch-all.
  const rank = (p: RunProvider) => (p.pathPrefix ? 0 : p.models ? 1 : 2);
  const ordered = [...providers].sort((a, b) => rank(a) - rank(b));
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
        name: `route-${p.name.replace("/", "-")}-${routes.length}-${i}`,
        match: { prefix: p.pathPrefix ?? "/", headers },
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
      backends: [...new Map(providers.map((p) => [p.name, p])).values()].map((p) => ({
        name: p.name,
        schema: p.schema,
        host: p.endpoint.host,
        ...(p.auth ? { auth: p.auth } : {}),
      })),
      // A catch-all route, or a path-scoped one (Anthropic's clients name Anthropic's models freely).
      acceptsAnyModel: providers.some((p) => !p.models),
    }),
  };
}
