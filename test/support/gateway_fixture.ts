// A whole gateway in the test process: the ExtProc server on a Unix socket, fake upstream providers, and the edge
// in front, wired like `tollgate run` (router-level and upstream-level ext_proc filters, priorities, retries).
import OpenAI from "openai";
import { Registry } from "prom-client";
import { ExtProcServer } from "../../src/extproc/server.ts";
import { type BackendInfo, buildSnapshot, modelInfo } from "../../src/control/snapshot.ts";
import type { UpstreamCredentials } from "../../src/actors/prepare_upstream.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { systemClock } from "../../src/observability/clock.ts";
import type {
  ClusterConfig,
  EdgeConfig,
  ExtProcFilterConfig,
  RateLimitEntry,
  RateLimitFilterConfig,
  RetryPolicy,
  RouteConfig,
} from "../../src/edge/config.ts";
import { RateLimitFilter } from "../../src/edge/rate_limit_filter.ts";
import { EdgeServer } from "../../src/edge/edge_server.ts";
import { listenEdge } from "../../src/edge/listen.ts";
import { routerExtProcFilter, upstreamExtProcFilter } from "../../src/edge/filter_defaults.ts";
import type { AccessLogEntry } from "../../src/edge/access_log.ts";
import type { UsageEvent } from "../../src/usage/usage_event.ts";
import type { EdgeMetrics } from "../../src/edge/edge_metrics.ts";
import type { ExtProcServerOptions } from "../../src/extproc/server.ts";
import { type FakeUpstream, startFakeUpstream, type UpstreamHandler } from "./fake_upstream.ts";

export interface ModelRoute {
  readonly model: string;
  readonly rateLimits?: readonly RateLimitEntry[];
  /** Upstream names by priority level: [["primary"], ["fallback"]]. */
  readonly priorities: readonly (readonly string[])[];
  readonly retry?: RetryPolicy;
  readonly timeoutMs?: number;
  /** modelNameOverride per upstream for this route. */
  readonly overrides?: Readonly<Record<string, string>>;
}

export interface GatewayOptions {
  readonly upstreams: Readonly<Record<string, UpstreamHandler>>;
  /** Upstreams already listening elsewhere (e.g. the fake Bedrock): name → port on 127.0.0.1. */
  readonly listening?: Readonly<Record<string, number>>;
  readonly routes: readonly ModelRoute[];
  readonly routerExtProc?: Partial<ExtProcFilterConfig>;
  /** Point the router-level filter somewhere else (e.g. a stalling processor). */
  readonly routerTarget?: string;
  readonly maxRequestBodyBytes?: number;
  /** false: clusters run without the upstream-level filter (e.g. when the router-level one is scripted). */
  readonly upstreamExtProc?: boolean;
  readonly rateLimit?: Partial<RateLimitFilterConfig> & { readonly target: string };
  /** Schema, credentials, location… per upstream; default: an OpenAI-compatible backend without credentials. */
  readonly backends?: Readonly<Record<string, Partial<Omit<BackendInfo, "name">>>>;
  readonly credentials?: UpstreamCredentials;
  /** Receives the ExtProc server's usage events (default: they are collected in `usage`). */
  readonly onUsage?: (event: UsageEvent) => void;
  /** The ExtProc server's metrics registry (default: a fresh one). */
  readonly registry?: Registry;
  /** Tracing and the metrics' tenant label of the ExtProc server. */
  readonly observability?: Pick<ExtProcServerOptions, "tracing" | "metricsTenant">;
  readonly edgeMetrics?: EdgeMetrics;
}

export interface Gateway extends AsyncDisposable {
  readonly url: string;
  readonly openai: OpenAI;
  readonly extproc: ExtProcServer;
  readonly edge: EdgeServer;
  readonly upstreams: Readonly<Record<string, FakeUpstream>>;
  readonly accessLog: AccessLogEntry[];
  readonly socketPath: string;
  /** The usage events the ExtProc server emitted, one per routed request. */
  readonly usage: UsageEvent[];
}

export const FALLBACK_RETRY: RetryPolicy = {
  retryOn: ["5xx", "connect-failure", "reset"],
  numRetries: 1,
  perTryTimeoutMs: 0,
  retriableStatusCodes: [],
  previousPriorities: true,
  backOff: { baseMs: 1, maxMs: 2 },
};

export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-gw-" });
  const socketPath = `${dir}/extproc.sock`;
  const usage: UsageEvent[] = [];
  const upstreams: Record<string, FakeUpstream> = {};
  for (const [name, handler] of Object.entries(o.upstreams)) upstreams[name] = await startFakeUpstream(handler);
  // Every fake upstream is an OpenAI-compatible backend named default/<upstream>.
  const snapshot = buildSnapshot(1, {
    models: o.routes.map((r) => modelInfo(r.model)),
    backends: [...Object.keys(o.upstreams), ...Object.keys(o.listening ?? {})].map((name) => ({
      name: `default/${name}`,
      schema: { name: "OpenAI" as const },
      host: `127.0.0.1:${o.listening?.[name] ?? upstreams[name]!.port}`,
      ...o.backends?.[name],
    })),
    backendRefs: o.routes.flatMap((r) =>
      r.priorities.flat().map((name) => ({
        id: `${r.model}/${name}`,
        backend: `default/${name}`,
        ...(r.overrides?.[name] ? { modelNameOverride: r.overrides[name] } : {}),
      }))
    ),
  });
  const extproc = new ExtProcServer({
    listen: { kind: "unix", path: socketPath },
    snapshot: () => snapshot,
    logger: silentLogger(),
    registry: o.registry ?? new Registry(),
    ...o.observability,
    ...(o.credentials ? { credentials: o.credentials } : {}),
    onUsage: (e) => (o.onUsage ? o.onUsage(e) : usage.push(e)),
  });
  await extproc.start();
  const target = `unix://${socketPath}`;
  const routes: RouteConfig[] = o.routes.map((r) => ({
    name: `route-${r.model}`,
    match: { prefix: "/", headers: [{ name: "x-ai-eg-model", exact: r.model }] },
    cluster: `cluster-${r.model}`,
    timeoutMs: r.timeoutMs ?? 15_000,
    ...(r.retry ? { retryPolicy: r.retry } : {}),
    rateLimits: r.rateLimits ?? [],
    autoHostRewrite: true,
  }));
  const clusters: ClusterConfig[] = o.routes.map((r) => ({
    name: `cluster-${r.model}`,
    priorities: r.priorities.map((level) =>
      level.map((name) => ({
        host: "127.0.0.1",
        port: o.listening?.[name] ?? upstreams[name]!.port,
        weight: 1,
        tls: false,
        metadata: {
          "aigateway.envoy.io": { backend: `default/${name}`, per_route_rule_backend_name: `${r.model}/${name}` },
        },
      }))
    ),
    connectTimeoutMs: 1000,
    ...(o.upstreamExtProc === false ? {} : { upstreamExtProc: upstreamExtProcFilter(target) }),
  }));
  const config: EdgeConfig = {
    listener: { host: "127.0.0.1", port: 0 },
    maxRequestBodyBytes: o.maxRequestBodyBytes ?? 1 << 20,
    routerExtProc: { ...routerExtProcFilter(o.routerTarget ?? target), ...o.routerExtProc },
    routes,
    clusters,
  };
  const accessLog: AccessLogEntry[] = [];
  const rateLimiter = o.rateLimit
    ? new RateLimitFilter({
      domain: "ai-gateway",
      timeoutMs: 1000,
      failureModeDeny: false,
      enableXRateLimitHeaders: false,
      ...o.rateLimit,
    }, { clock: systemClock, logger: silentLogger() })
    : undefined;
  const edge = new EdgeServer(config, {
    clock: systemClock,
    logger: silentLogger(),
    accessLog: (e) => accessLog.push(e),
    ...(rateLimiter ? { rateLimiter } : {}),
    ...(o.edgeMetrics ? { metrics: o.edgeMetrics } : {}),
  });
  const listener = await listenEdge(edge, "127.0.0.1", 0);
  const url = `http://127.0.0.1:${listener.port}`;
  const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: "test-key", maxRetries: 0 });
  return {
    url,
    openai,
    extproc,
    edge,
    upstreams,
    accessLog,
    socketPath,
    usage,
    async [Symbol.asyncDispose]() {
      await listener.shutdown();
      rateLimiter?.close();
      for (const u of Object.values(upstreams)) await u.shutdown();
      await extproc.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
