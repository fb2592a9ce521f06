// `tollgate render envoy`: the Envoy (>= 1.37.1) bootstrap of the topology the edge serves (config.ts), so that real
// Envoy in front of `tollgate extproc` does what the edge does. Pure: EdgeConfig in, a plain object in Envoy's proto3
// JSON out (snake_case field names, as Envoy's YAML spells them; every typed_config names its "@type").
// test/envoy_config_test.ts decodes the result strictly against Envoy's protos, so a misspelled field fails there.
import { stringify } from "yaml";
import { parseListenAddress } from "../extproc/listen_address.ts";
import type { ProcessingMode } from "../protocol/ext_proc.ts";
import {
  processingMode_BodySendModeToJSON as bodyMode,
  processingMode_HeaderSendModeToJSON as headerMode,
} from "../protocol/gen/envoy/extensions/filters/http/ext_proc/v3/processing_mode.ts";
import type {
  ClusterConfig,
  DescriptorAction,
  EdgeConfig,
  Endpoint,
  ExtProcFilterConfig,
  HeaderMatch,
  RateLimitEntry,
  RateLimitFilterConfig,
  RetryPolicy,
  RouteConfig,
} from "./config.ts";
import { AI_GATEWAY_NAMESPACE } from "./access_log.ts";

export interface EnvoyRenderOptions {
  /** Unix socket of `tollgate extproc` (its --listen unix:// path); both ext_proc filters use it. */
  readonly extProcSocketPath: string;
  /** gRPC target of the RLS (host:port or unix:///path); defaults to the rate-limit filter's own target. */
  readonly rateLimitTarget?: string;
  readonly adminPort?: number;
  /** CA bundle that upstream TLS certificates must chain to (default: the Debian/Ubuntu system bundle). */
  readonly upstreamCaFile?: string;
  /** TLS from Envoy to the rate limit service, for an aggregator run with --tls-cert; plaintext when absent. */
  readonly rateLimitTls?: GrpcServiceTls;
}

/** How Envoy reaches a gRPC service that serves TLS. Files are paths as Envoy's container sees them. */
export interface GrpcServiceTls {
  /** The CA the service's certificate must chain to. */
  readonly caFile: string;
  /** The name the service's certificate must carry (and the SNI); default the target's host. */
  readonly serverName?: string;
  /** Envoy's client certificate and key, for a service that requires one (--tls-client-ca). */
  readonly certFile?: string;
  readonly keyFile?: string;
}

export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };
export type JsonObject = { readonly [key: string]: Json };

export const EXTPROC_CLUSTER = "tollgate_extproc";
export const RATELIMIT_CLUSTER = "tollgate_ratelimit";
const RATELIMIT_FILTER = "envoy.filters.http.ratelimit";
const HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const DEFAULT_CA_FILE = "/etc/ssl/certs/ca-certificates.crt";
const typeUrl = (name: string) => `type.googleapis.com/${name}`;

export class EnvoyRenderError extends Error {
  override name = "EnvoyRenderError";
}

export function renderEnvoyYaml(edge: EdgeConfig, options: EnvoyRenderOptions): string {
  // YAML 1.1 quoting: Envoy's loader (source/common/protobuf/yaml_utility.cc, parseYamlNode) turns an unquoted
  // scalar into a bool if yaml-cpp reads it as one (y, yes, on, off...) and into an integer if it can (0x1f, 0755).
  const body = stringify(renderEnvoyBootstrap(edge, options), { version: "1.1", lineWidth: 0 });
  return `# Envoy bootstrap written by \`tollgate render envoy\` (src/edge/render_envoy.ts); Envoy >= 1.37.1.\n${body}`;
}

export function renderEnvoyBootstrap(edge: EdgeConfig, options: EnvoyRenderOptions): JsonObject {
  const clusterNames = new Set(edge.clusters.map((c) => c.name));
  for (const c of edge.clusters) {
    if (c.name === EXTPROC_CLUSTER || c.name === RATELIMIT_CLUSTER) {
      throw new EnvoyRenderError(`Cannot render Envoy config: cluster name "${c.name}" is reserved for Tollgate`);
    }
  }
  if (clusterNames.size !== edge.clusters.length) {
    throw new EnvoyRenderError("Cannot render Envoy config: cluster names are not unique");
  }
  for (const r of edge.routes) {
    if (!clusterNames.has(r.cluster)) {
      throw new EnvoyRenderError(
        `Cannot render Envoy config: route "${r.name}" targets unknown cluster "${r.cluster}"`,
      );
    }
  }
  const usesExtProc = edge.routerExtProc !== undefined || edge.clusters.some((c) => c.upstreamExtProc);
  const caFile = options.upstreamCaFile ?? DEFAULT_CA_FILE;
  return {
    admin: { address: socketAddress("127.0.0.1", options.adminPort ?? 9901) },
    static_resources: {
      listeners: [listener(edge)],
      clusters: [
        ...(usesExtProc ? [extProcCluster(options.extProcSocketPath, edge.maxRequestBodyBytes)] : []),
        ...(edge.rateLimit
          ? [rateLimitCluster(options.rateLimitTarget ?? edge.rateLimit.target, options.rateLimitTls)]
          : []),
        ...edge.clusters.map((c) => backendCluster(c, caFile)),
      ],
    },
  };
}

function listener(edge: EdgeConfig): JsonObject {
  const filters: JsonObject[] = [];
  if (edge.routerExtProc) filters.push(httpFilter("envoy.filters.http.ext_proc", extProc(edge.routerExtProc)));
  if (edge.rateLimit) filters.push(httpFilter(RATELIMIT_FILTER, rateLimitFilter(edge.rateLimit)));
  filters.push(
    httpFilter("envoy.filters.http.router", { "@type": typeUrl("envoy.extensions.filters.http.router.v3.Router") }),
  );
  const hcm = {
    "@type": typeUrl("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"),
    stat_prefix: "tollgate",
    codec_type: "AUTO",
    route_config: {
      name: "tollgate",
      virtual_hosts: [{ name: "tollgate", domains: ["*"], routes: edge.routes.map((r) => route(r, edge.rateLimit)) }],
    },
    http_filters: filters,
    ...(edge.accessLog ? { access_log: [accessLog(edge.accessLog)] } : {}),
  };
  return {
    name: "tollgate",
    address: socketAddress(edge.listener.host, edge.listener.port),
    // The limit on a buffered request body (ext_proc BUFFERED answers 413 beyond it) and on what a retry can replay.
    per_connection_buffer_limit_bytes: edge.maxRequestBodyBytes,
    filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: hcm }] }],
  };
}

function route(r: RouteConfig, rateLimit: RateLimitFilterConfig | undefined): JsonObject {
  return {
    name: r.name,
    match: { prefix: r.match.prefix, ...(r.match.headers.length > 0 ? { headers: r.match.headers.map(header) } : {}) },
    route: {
      cluster: r.cluster,
      timeout: duration(r.timeoutMs),
      ...(r.retryPolicy ? { retry_policy: retryPolicy(r.retryPolicy) } : {}),
      ...(r.autoHostRewrite ? { auto_host_rewrite: true } : {}),
    },
    // Per-route RateLimitPerRoute, not RouteAction.rate_limits: Envoy honours hits_addend only on this path
    // (RateLimitPerRoute.rate_limits, envoyproxy/envoy#37684; the route-level path ignores it, #45611).
    ...(rateLimit && r.rateLimits.length > 0
      ? {
        typed_per_filter_config: {
          [RATELIMIT_FILTER]: {
            "@type": typeUrl("envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute"),
            rate_limits: r.rateLimits.map(rateLimitEntry),
          },
        },
      }
      : {}),
  };
}

function header(h: HeaderMatch): JsonObject {
  return { name: h.name, string_match: { exact: h.exact } };
}

function retryPolicy(p: RetryPolicy): JsonObject {
  if (p.backOff.maxMs < p.backOff.baseMs) {
    throw new EnvoyRenderError("Cannot render Envoy config: retry back-off maximum is below its base interval");
  }
  return {
    retry_on: p.retryOn.join(","),
    num_retries: p.numRetries,
    ...(p.perTryTimeoutMs > 0 ? { per_try_timeout: duration(p.perTryTimeoutMs) } : {}),
    ...(p.retriableStatusCodes.length > 0 ? { retriable_status_codes: [...p.retriableStatusCodes] } : {}),
    // Each retry excludes the priority levels already tried: provider fallback (update_frequency 1 = every attempt).
    ...(p.previousPriorities
      ? {
        retry_priority: {
          name: "envoy.retry_priorities.previous_priorities",
          typed_config: {
            "@type": typeUrl("envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig"),
            update_frequency: 1,
          },
        },
      }
      : {}),
    // Envoy requires base_interval > 0; a zero base means Envoy's default back-off (25 ms).
    ...(p.backOff.baseMs > 0
      ? { retry_back_off: { base_interval: duration(p.backOff.baseMs), max_interval: duration(p.backOff.maxMs) } }
      : {}),
  };
}

function rateLimitEntry(e: RateLimitEntry): JsonObject {
  const addend = e.hitsAddend;
  return {
    actions: e.actions.map(descriptorAction),
    ...(e.applyOnStreamDone ? { apply_on_stream_done: true } : {}),
    ...(addend === undefined ? {} : {
      hits_addend: "number" in addend
        ? { number: addend.number }
        : { format: `%DYNAMIC_METADATA(${addend.metadata.namespace}:${addend.metadata.key})%` },
    }),
  };
}

function descriptorAction(a: DescriptorAction): JsonObject {
  switch (a.kind) {
    case "requestHeaders":
      return {
        request_headers: { header_name: a.headerName, descriptor_key: a.descriptorKey, skip_if_absent: a.skipIfAbsent },
      };
    case "genericKey":
      return { generic_key: { descriptor_key: a.descriptorKey, descriptor_value: a.descriptorValue } };
    case "headerValueMatch":
      return {
        header_value_match: {
          descriptor_key: a.descriptorKey,
          descriptor_value: a.descriptorValue,
          expect_match: a.expectMatch,
          headers: a.headers.map(header),
        },
      };
    case "metadata":
      return {
        metadata: {
          descriptor_key: a.descriptorKey,
          metadata_key: { key: a.namespace, path: [{ key: a.key }] },
          source: "DYNAMIC",
          ...(a.defaultValue === undefined ? {} : { default_value: a.defaultValue }),
        },
      };
  }
}

function rateLimitFilter(rl: RateLimitFilterConfig): JsonObject {
  return {
    "@type": typeUrl("envoy.extensions.filters.http.ratelimit.v3.RateLimit"),
    domain: rl.domain,
    timeout: duration(rl.timeoutMs),
    // Envoy's default is false (fail open); written out so the file says what happens when the RLS is down.
    failure_mode_deny: rl.failureModeDeny,
    enable_x_ratelimit_headers: rl.enableXRateLimitHeaders ? "DRAFT_VERSION_03" : "OFF",
    rate_limit_service: {
      grpc_service: { envoy_grpc: { cluster_name: RATELIMIT_CLUSTER } },
      transport_api_version: "V3",
    },
  };
}

/** The same message serves the router-level filter (HCM chain) and the upstream one (cluster chain). */
function extProc(c: ExtProcFilterConfig): JsonObject {
  const metadata = Object.entries(c.initialMetadata).map(([key, value]) => ({ key, value }));
  const rules = c.mutationRules;
  return {
    "@type": typeUrl("envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"),
    grpc_service: {
      envoy_grpc: { cluster_name: EXTPROC_CLUSTER },
      ...(metadata.length > 0 ? { initial_metadata: metadata } : {}),
    },
    processing_mode: processingMode(c.processingMode),
    allow_mode_override: c.allowModeOverride,
    message_timeout: duration(c.messageTimeoutMs),
    failure_mode_allow: c.failureModeAllow,
    ...(c.requestAttributes.length > 0 ? { request_attributes: [...c.requestAttributes] } : {}),
    ...(c.receivingNamespaces.length > 0
      ? { metadata_options: { receiving_namespaces: { untyped: [...c.receivingNamespaces] } } }
      : {}),
    ...(rules
      ? {
        mutation_rules: {
          ...(rules.allowAllRouting === undefined ? {} : { allow_all_routing: rules.allowAllRouting }),
          ...(rules.allowEnvoy === undefined ? {} : { allow_envoy: rules.allowEnvoy }),
          ...(rules.disallowSystem === undefined ? {} : { disallow_system: rules.disallowSystem }),
          ...(rules.disallowAll === undefined ? {} : { disallow_all: rules.disallowAll }),
          ...(rules.disallowIsError === undefined ? {} : { disallow_is_error: rules.disallowIsError }),
        },
      }
      : {}),
  };
}

function processingMode(m: ProcessingMode): JsonObject {
  return {
    request_header_mode: headerMode(m.requestHeaderMode),
    response_header_mode: headerMode(m.responseHeaderMode),
    request_body_mode: bodyMode(m.requestBodyMode),
    response_body_mode: bodyMode(m.responseBodyMode),
    request_trailer_mode: headerMode(m.requestTrailerMode),
    response_trailer_mode: headerMode(m.responseTrailerMode),
  };
}

function accessLog(destination: string): JsonObject {
  // The fields of src/edge/access_log.ts, from Envoy's command operators.
  const json_format = {
    start_time: "%START_TIME%",
    method: "%REQ(:METHOD)%",
    path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    status: "%RESPONSE_CODE%",
    duration_ms: "%DURATION%",
    bytes_received: "%BYTES_RECEIVED%",
    bytes_sent: "%BYTES_SENT%",
    request_id: "%REQ(X-REQUEST-ID)%",
    route: "%ROUTE_NAME%",
    model: "%REQ(X-AI-EG-MODEL)%",
    upstream_host: "%UPSTREAM_HOST%",
    attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    response_code_details: "%RESPONSE_CODE_DETAILS%",
    usage: `%DYNAMIC_METADATA(${AI_GATEWAY_NAMESPACE})%`,
  };
  return destination === "stdout"
    ? {
      name: "envoy.access_loggers.stdout",
      typed_config: {
        "@type": typeUrl("envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"),
        log_format: { json_format },
      },
    }
    : {
      name: "envoy.access_loggers.file",
      typed_config: {
        "@type": typeUrl("envoy.extensions.access_loggers.file.v3.FileAccessLog"),
        path: destination,
        log_format: { json_format },
      },
    };
}

function extProcCluster(socketPath: string, maxRequestBodyBytes: number): JsonObject {
  return {
    name: EXTPROC_CLUSTER,
    type: "STATIC",
    connect_timeout: "10s",
    // A buffered body crosses this connection whole, in one ProcessingRequest and in the translated reply.
    per_connection_buffer_limit_bytes: 2 * maxRequestBodyBytes + 1024 * 1024,
    load_assignment: {
      cluster_name: EXTPROC_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: socketPath } } } }] }],
    },
    typed_extension_protocol_options: { [HTTP_PROTOCOL_OPTIONS]: http2Options() },
  };
}

function rateLimitCluster(target: string, tls: GrpcServiceTls | undefined): JsonObject {
  const a = parseListenAddress(target);
  const address = a.kind === "unix" ? { pipe: { path: a.path } } : socketAddress(a.host, a.port);
  return {
    name: RATELIMIT_CLUSTER,
    ...discovery(a.kind === "unix" || isIpLiteral(a.host)),
    connect_timeout: "1s",
    load_assignment: { cluster_name: RATELIMIT_CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] },
    typed_extension_protocol_options: { [HTTP_PROTOCOL_OPTIONS]: http2Options() },
    ...(tls ? { transport_socket: grpcTlsSocket(tls, a.kind === "tcp" ? a.host : undefined) } : {}),
  };
}

/** TLS to one of Tollgate's gRPC services: its CA and name checked, h2 by ALPN, Envoy's certificate if asked for. */
function grpcTlsSocket(tls: GrpcServiceTls, host: string | undefined): JsonObject {
  const name = tls.serverName ?? host;
  if (name === undefined) {
    throw new EnvoyRenderError("Cannot render Envoy config: TLS to a Unix socket needs the server's name");
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new EnvoyRenderError("Cannot render Envoy config: a client certificate needs both its file and its key");
  }
  const ip = isIpLiteral(name);
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": typeUrl("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"),
      ...(ip ? {} : { sni: name }),
      common_tls_context: {
        // Tollgate's gRPC servers (node:http2) speak HTTP/2 over TLS only to clients that ask for h2 by ALPN.
        alpn_protocols: ["h2"],
        ...(tls.certFile !== undefined && tls.keyFile !== undefined
          ? {
            tls_certificates: [{
              certificate_chain: { filename: tls.certFile },
              private_key: { filename: tls.keyFile },
            }],
          }
          : {}),
        validation_context: {
          trusted_ca: { filename: tls.caFile },
          match_typed_subject_alt_names: [{ san_type: ip ? "IP_ADDRESS" : "DNS", matcher: { exact: name } }],
        },
      },
    },
  };
}

/**
 * STATIC for addresses, STRICT_DNS (every endpoint resolved, so priorities and weights keep working) for names.
 * V4_PREFERRED because AUTO prefers AAAA records, which fail to connect on the many hosts without IPv6 routes.
 */
function discovery(allAddresses: boolean): JsonObject {
  return allAddresses ? { type: "STATIC" } : { type: "STRICT_DNS", dns_lookup_family: "V4_PREFERRED" };
}

function http2Options(): JsonObject {
  return { "@type": typeUrl(HTTP_PROTOCOL_OPTIONS), explicit_http_config: { http2_protocol_options: {} } };
}

function backendCluster(c: ClusterConfig, caFile: string): JsonObject {
  const endpoints = c.priorities.flat();
  const tlsHosts = [...new Set(endpoints.filter((e) => e.tls).map((e) => e.host))];
  // One TLS context per cluster when every endpoint shares it; otherwise (fallback across providers) one per host,
  // chosen by endpoint metadata under envoy.transport_socket_match.
  const perHostTls = tlsHosts.length > 1 || (tlsHosts.length === 1 && endpoints.some((e) => !e.tls));
  return {
    name: c.name,
    ...discovery(endpoints.every((e) => isIpLiteral(e.host))),
    connect_timeout: duration(c.connectTimeoutMs),
    load_assignment: {
      cluster_name: c.name,
      // Priorities must not skip a level, so an empty level is kept as an empty locality.
      endpoints: c.priorities.map((level, priority) => ({
        priority,
        ...(level.length > 0 ? { lb_endpoints: level.map((e) => lbEndpoint(c.name, e, perHostTls)) } : {}),
      })),
    },
    ...(perHostTls
      ? {
        transport_socket_matches: tlsHosts.map((host) => ({
          name: `tls:${host}`,
          match: { tollgate_tls_host: host },
          transport_socket: tlsSocket(host, caFile),
        })),
      }
      : tlsHosts.length === 1
      ? { transport_socket: tlsSocket(tlsHosts[0]!, caFile) }
      : {}),
    ...(c.upstreamExtProc
      ? { typed_extension_protocol_options: { [HTTP_PROTOCOL_OPTIONS]: upstreamFilters(c.upstreamExtProc) } }
      : {}),
  };
}

function lbEndpoint(cluster: string, e: Endpoint, perHostTls: boolean): JsonObject {
  if (!Number.isInteger(e.weight) || e.weight < 1) {
    throw new EnvoyRenderError(
      `Cannot render Envoy config: endpoint ${e.host}:${e.port} of "${cluster}" needs a weight >= 1`,
    );
  }
  const filterMetadata: Record<string, Json> = { ...e.metadata };
  if (perHostTls && e.tls) filterMetadata["envoy.transport_socket_match"] = { tollgate_tls_host: e.host };
  return {
    // hostname lets auto_host_rewrite work on STATIC clusters too.
    endpoint: { address: socketAddress(e.host, e.port), hostname: e.host },
    load_balancing_weight: e.weight,
    ...(Object.keys(filterMetadata).length > 0 ? { metadata: { filter_metadata: filterMetadata } } : {}),
  };
}

function tlsSocket(host: string, caFile: string): JsonObject {
  const ip = isIpLiteral(host);
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": typeUrl("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"),
      // SNI carries host names only (RFC 6066 §3).
      ...(ip ? {} : { sni: host }),
      // Without a validation context Envoy would accept any certificate, and credentials go on this connection.
      common_tls_context: {
        validation_context: {
          trusted_ca: { filename: caFile },
          match_typed_subject_alt_names: [{ san_type: ip ? "IP_ADDRESS" : "DNS", matcher: { exact: host } }],
        },
      },
    },
  };
}

/**
 * The cluster's upstream HTTP filters, run once per attempt: ext_proc (translation, credentials), then a
 * header_mutation that restores content-length, then the mandatory terminal upstream_codec.
 */
function upstreamFilters(c: ExtProcFilterConfig): JsonObject {
  return {
    "@type": typeUrl(HTTP_PROTOCOL_OPTIONS),
    explicit_http_config: { http_protocol_options: {} },
    http_filters: [
      httpFilter("envoy.filters.http.ext_proc", extProc(c)),
      // When the attempt's processor replaces the body (CONTINUE_AND_REPLACE), Envoy drops content-length and the
      // request goes out chunked, which some providers reject (envoyproxy/ai-gateway#721: Anthropic on GCP answers
      // 400). The processor records the new length as dynamic metadata content_length; this puts it back unless a
      // content-length is present. An empty value (no metadata) adds nothing: keep_empty_value is false.
      httpFilter("envoy.filters.http.header_mutation", {
        "@type": typeUrl("envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"),
        mutations: {
          request_mutations: [{
            append: {
              header: { key: "content-length", value: `%DYNAMIC_METADATA(${AI_GATEWAY_NAMESPACE}:content_length)%` },
              append_action: "ADD_IF_ABSENT",
            },
          }],
        },
      }),
      httpFilter("envoy.filters.http.upstream_codec", {
        "@type": typeUrl("envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"),
      }),
    ],
  };
}

function httpFilter(name: string, typedConfig: JsonObject): JsonObject {
  return { name, typed_config: typedConfig };
}

function socketAddress(address: string, port: number): JsonObject {
  return { socket_address: { address, port_value: port } };
}

/** Milliseconds as a proto3 JSON Duration ("0.2s"). */
function duration(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) {
    throw new EnvoyRenderError(`Cannot render Envoy config: ${ms} is not a duration in whole milliseconds`);
  }
  const fraction = String(ms % 1000).padStart(3, "0").replace(/0+$/, "");
  return `${Math.floor(ms / 1000)}${fraction ? `.${fraction}` : ""}s`;
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}
