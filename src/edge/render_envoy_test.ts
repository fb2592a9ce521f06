import { throws } from "node:assert/strict";
import { parse } from "yaml";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { attemptProcessingMode, routerProcessingMode } from "../protocol/ext_proc.ts";
import type { ClusterConfig, EdgeConfig, ExtProcFilterConfig, RouteConfig } from "./config.ts";
import { renderEnvoyBootstrap, renderEnvoyYaml } from "./render_envoy.ts";

const upstreamFilter: ExtProcFilterConfig = {
  target: "unix:///run/tollgate/extproc.sock",
  processingMode: attemptProcessingMode(),
  allowModeOverride: false,
  messageTimeoutMs: 200,
  failureModeAllow: false,
  receivingNamespaces: ["io.envoy.ai_gateway"],
  initialMetadata: { "x-tollgate-role": "upstream" },
  requestAttributes: ["xds.upstream_host_metadata"],
};

const routerFilter: ExtProcFilterConfig = {
  ...upstreamFilter,
  processingMode: routerProcessingMode(),
  allowModeOverride: true,
  initialMetadata: {},
  requestAttributes: [],
  mutationRules: { allowAllRouting: true, disallowIsError: false },
};

const chatRoute: RouteConfig = {
  name: "chat",
  match: { prefix: "/v1/", headers: [{ name: "x-ai-eg-model", exact: "gpt-4o-mini" }] },
  cluster: "chat",
  timeoutMs: 1500,
  retryPolicy: {
    retryOn: ["5xx", "retriable-status-codes"],
    numRetries: 2,
    perTryTimeoutMs: 200,
    retriableStatusCodes: [429, 503],
    previousPriorities: true,
    backOff: { baseMs: 25, maxMs: 250 },
  },
  rateLimits: [
    {
      actions: [
        { kind: "requestHeaders", headerName: "x-user-id", descriptorKey: "user", skipIfAbsent: true },
        { kind: "genericKey", descriptorKey: "rule", descriptorValue: "tokens" },
      ],
      applyOnStreamDone: false,
      hitsAddend: { number: 0 },
    },
    {
      actions: [
        {
          kind: "headerValueMatch",
          descriptorKey: "premium",
          descriptorValue: "no",
          expectMatch: false,
          headers: [{ name: "x-tier", exact: "premium" }],
        },
        { kind: "metadata", descriptorKey: "backend", namespace: "io.envoy.ai_gateway", key: "backend_name" },
      ],
      applyOnStreamDone: true,
      hitsAddend: { metadata: { namespace: "io.envoy.ai_gateway", key: "llm_total_token" } },
    },
  ],
  autoHostRewrite: true,
};

const chatCluster: ClusterConfig = {
  name: "chat",
  priorities: [
    [
      { host: "10.0.0.1", port: 8000, weight: 3, tls: false, metadata: { "aigateway.envoy.io": { backend: "a" } } },
      { host: "10.0.0.2", port: 8000, weight: 1, tls: false, metadata: {} },
    ],
    [{ host: "10.0.0.3", port: 8443, weight: 1, tls: false, metadata: {} }],
  ],
  connectTimeoutMs: 250,
  upstreamExtProc: upstreamFilter,
};

const edge: EdgeConfig = {
  listener: { host: "127.0.0.1", port: 1975 },
  maxRequestBodyBytes: 1 << 20,
  routerExtProc: routerFilter,
  rateLimit: {
    domain: "tollgate",
    target: "rls.internal:8081",
    timeoutMs: 20,
    failureModeDeny: true,
    enableXRateLimitHeaders: true,
  },
  routes: [chatRoute],
  clusters: [chatCluster],
};

const options = { extProcSocketPath: "/run/tollgate/extproc.sock" };

/** Walks a dotted path ("a.0.b") through rendered JSON. */
function at(value: unknown, path: string): unknown {
  let v = value;
  for (const key of path.split(".")) {
    assert(typeof v === "object" && v !== null, `no object at "${key}" of ${path}`);
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

const hcm = (e: EdgeConfig = edge) =>
  at(renderEnvoyBootstrap(e, options), "static_resources.listeners.0.filter_chains.0.filters.0.typed_config");
const cluster = (e: EdgeConfig, name: string) =>
  (at(renderEnvoyBootstrap(e, options), "static_resources.clusters") as { name: string }[]).find((c) =>
    c.name === name
  );

Deno.test("renderEnvoyBootstrap chains ext_proc, then ratelimit, then the router", () => {
  const filters = at(hcm(), "http_filters") as { name: string; typed_config: Record<string, unknown> }[];
  assertEquals(filters.map((f) => f.name), [
    "envoy.filters.http.ext_proc",
    "envoy.filters.http.ratelimit",
    "envoy.filters.http.router",
  ]);
  assertEquals(filters.map((f) => f.typed_config["@type"]), [
    "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
    "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
  ]);
});

Deno.test("renderEnvoyBootstrap writes the router-level ext_proc filter from its config", () => {
  const extProc = at(hcm(), "http_filters.0.typed_config");
  assertEquals(at(extProc, "grpc_service"), { envoy_grpc: { cluster_name: "tollgate_extproc" } });
  assertEquals(at(extProc, "processing_mode"), {
    request_header_mode: "SEND",
    response_header_mode: "SEND",
    request_body_mode: "BUFFERED",
    response_body_mode: "BUFFERED",
    request_trailer_mode: "SKIP",
    response_trailer_mode: "SKIP",
  });
  assertEquals(at(extProc, "message_timeout"), "0.2s");
  assertEquals(at(extProc, "allow_mode_override"), true);
  assertEquals(at(extProc, "failure_mode_allow"), false);
  assertEquals(at(extProc, "metadata_options.receiving_namespaces.untyped"), ["io.envoy.ai_gateway"]);
  assertEquals(at(extProc, "mutation_rules"), { allow_all_routing: true, disallow_is_error: false });
});

Deno.test("renderEnvoyBootstrap writes the ratelimit filter against the tollgate_ratelimit cluster", () => {
  assertEquals(at(hcm(), "http_filters.1.typed_config"), {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
    domain: "tollgate",
    timeout: "0.02s",
    failure_mode_deny: true,
    enable_x_ratelimit_headers: "DRAFT_VERSION_03",
    rate_limit_service: {
      grpc_service: { envoy_grpc: { cluster_name: "tollgate_ratelimit" } },
      transport_api_version: "V3",
    },
  });
});

Deno.test("renderEnvoyBootstrap leaves out the filters and clusters the edge does not configure", () => {
  const noRoutes: EdgeConfig = { listener: edge.listener, maxRequestBodyBytes: 1024, routes: [], clusters: [] };
  assertEquals((at(hcm(noRoutes), "http_filters") as { name: string }[]).map((f) => f.name), [
    "envoy.filters.http.router",
  ]);
  assertEquals(at(renderEnvoyBootstrap(noRoutes, options), "static_resources.clusters"), []);
});

Deno.test("renderEnvoyBootstrap matches routes on path prefix and exact headers, in order", () => {
  const second: RouteConfig = { ...chatRoute, name: "other", match: { prefix: "/", headers: [] }, rateLimits: [] };
  const routes = at(hcm({ ...edge, routes: [chatRoute, second] }), "route_config.virtual_hosts.0.routes") as {
    name: string;
  }[];
  assertEquals(routes.map((r) => r.name), ["chat", "other"]);
  assertEquals(at(routes[0], "match"), {
    prefix: "/v1/",
    headers: [{ name: "x-ai-eg-model", string_match: { exact: "gpt-4o-mini" } }],
  });
  assertEquals(at(routes[1], "match"), { prefix: "/" });
  assertEquals(at(routes[0], "route.cluster"), "chat");
  assertEquals(at(routes[0], "route.timeout"), "1.5s");
  assertEquals(at(routes[0], "route.auto_host_rewrite"), true);
  assertEquals(at(hcm(), "route_config.virtual_hosts.0.domains"), ["*"]);
});

Deno.test("renderEnvoyBootstrap writes the retry policy with previous_priorities for provider fallback", () => {
  assertEquals(at(hcm(), "route_config.virtual_hosts.0.routes.0.route.retry_policy"), {
    retry_on: "5xx,retriable-status-codes",
    num_retries: 2,
    per_try_timeout: "0.2s",
    retriable_status_codes: [429, 503],
    retry_priority: {
      name: "envoy.retry_priorities.previous_priorities",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
        update_frequency: 1,
      },
    },
    retry_back_off: { base_interval: "0.025s", max_interval: "0.25s" },
  });
});

Deno.test("renderEnvoyBootstrap puts rate limits in the route's RateLimitPerRoute, where hits_addend works", () => {
  const route = at(hcm(), "route_config.virtual_hosts.0.routes.0");
  assertEquals(at(route, "route.rate_limits"), undefined);
  const config = (at(route, "typed_per_filter_config") as Record<string, unknown>)["envoy.filters.http.ratelimit"];
  assertEquals(at(config, "@type"), "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute");
  assertEquals(at(config, "rate_limits"), [
    {
      actions: [
        { request_headers: { header_name: "x-user-id", descriptor_key: "user", skip_if_absent: true } },
        { generic_key: { descriptor_key: "rule", descriptor_value: "tokens" } },
      ],
      hits_addend: { number: 0 },
    },
    {
      actions: [
        {
          header_value_match: {
            descriptor_key: "premium",
            descriptor_value: "no",
            expect_match: false,
            headers: [{ name: "x-tier", string_match: { exact: "premium" } }],
          },
        },
        {
          metadata: {
            descriptor_key: "backend",
            metadata_key: { key: "io.envoy.ai_gateway", path: [{ key: "backend_name" }] },
            source: "DYNAMIC",
          },
        },
      ],
      apply_on_stream_done: true,
      hits_addend: { format: "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%" },
    },
  ]);
});

Deno.test("renderEnvoyBootstrap groups endpoints by priority with weights and metadata", () => {
  const c = cluster(edge, "chat");
  assertEquals(at(c, "type"), "STATIC");
  assertEquals(at(c, "connect_timeout"), "0.25s");
  assertEquals(at(c, "load_assignment.endpoints"), [
    {
      priority: 0,
      lb_endpoints: [
        {
          endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: 8000 } }, hostname: "10.0.0.1" },
          load_balancing_weight: 3,
          metadata: { filter_metadata: { "aigateway.envoy.io": { backend: "a" } } },
        },
        {
          endpoint: { address: { socket_address: { address: "10.0.0.2", port_value: 8000 } }, hostname: "10.0.0.2" },
          load_balancing_weight: 1,
        },
      ],
    },
    {
      priority: 1,
      lb_endpoints: [{
        endpoint: { address: { socket_address: { address: "10.0.0.3", port_value: 8443 } }, hostname: "10.0.0.3" },
        load_balancing_weight: 1,
      }],
    },
  ]);
});

Deno.test("renderEnvoyBootstrap keeps an empty priority level so later levels keep their numbers", () => {
  const gap: ClusterConfig = { ...chatCluster, priorities: [[], chatCluster.priorities[1]!] };
  assertEquals((at(cluster({ ...edge, clusters: [gap] }, "chat"), "load_assignment.endpoints") as unknown[])[0], {
    priority: 0,
  });
});

Deno.test("renderEnvoyBootstrap runs ext_proc, header_mutation, upstream_codec per attempt", () => {
  const options = (at(cluster(edge, "chat"), "typed_extension_protocol_options") as Record<string, unknown>)[
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
  ];
  assertEquals(at(options, "explicit_http_config"), { http_protocol_options: {} });
  const filters = at(options, "http_filters") as { name: string }[];
  assertEquals(filters.map((f) => f.name), [
    "envoy.filters.http.ext_proc",
    "envoy.filters.http.header_mutation",
    "envoy.filters.http.upstream_codec",
  ]);
  assertEquals(at(filters[0], "typed_config.grpc_service.initial_metadata"), [
    { key: "x-tollgate-role", value: "upstream" },
  ]);
  assertEquals(at(filters[0], "typed_config.request_attributes"), ["xds.upstream_host_metadata"]);
  assertEquals(at(filters[0], "typed_config.processing_mode.request_body_mode"), "NONE");
  assertEquals(at(filters[1], "typed_config.mutations.request_mutations.0.append"), {
    header: { key: "content-length", value: "%DYNAMIC_METADATA(io.envoy.ai_gateway:content_length)%" },
    append_action: "ADD_IF_ABSENT",
  });
  const { upstreamExtProc: _, ...plain } = chatCluster;
  assertEquals(at(cluster({ ...edge, clusters: [plain] }, "chat"), "typed_extension_protocol_options"), undefined);
});

Deno.test("renderEnvoyBootstrap verifies one TLS host with a cluster transport_socket", () => {
  const openai: ClusterConfig = {
    ...chatCluster,
    priorities: [[{ host: "api.openai.com", port: 443, weight: 1, tls: true, metadata: {} }]],
  };
  const c = cluster({ ...edge, clusters: [openai] }, "chat");
  assertEquals(at(c, "type"), "STRICT_DNS");
  assertEquals(at(c, "dns_lookup_family"), "V4_PREFERRED");
  assertEquals(at(c, "transport_socket"), {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      sni: "api.openai.com",
      common_tls_context: {
        validation_context: {
          trusted_ca: { filename: "/etc/ssl/certs/ca-certificates.crt" },
          match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: "api.openai.com" } }],
        },
      },
    },
  });
});

Deno.test("renderEnvoyBootstrap picks a TLS context per host when a cluster mixes providers", () => {
  const mixed: ClusterConfig = {
    ...chatCluster,
    priorities: [
      [{ host: "api.openai.com", port: 443, weight: 1, tls: true, metadata: {} }],
      [{ host: "10.0.0.9", port: 8000, weight: 1, tls: false, metadata: {} }],
    ],
  };
  const c = cluster({ ...edge, clusters: [mixed] }, "chat");
  assertEquals(at(c, "transport_socket"), undefined);
  assertEquals(at(c, "transport_socket_matches.0.match"), { tollgate_tls_host: "api.openai.com" });
  assertEquals(at(c, "transport_socket_matches.0.transport_socket.typed_config.sni"), "api.openai.com");
  assertEquals(at(c, "load_assignment.endpoints.0.lb_endpoints.0.metadata.filter_metadata"), {
    "envoy.transport_socket_match": { tollgate_tls_host: "api.openai.com" },
  });
  assertEquals(at(c, "load_assignment.endpoints.1.lb_endpoints.0.metadata"), undefined);
});

Deno.test("renderEnvoyBootstrap reaches ext_proc over its Unix socket with HTTP/2", () => {
  assertEquals(at(cluster(edge, "tollgate_extproc"), "load_assignment.endpoints.0.lb_endpoints.0.endpoint.address"), {
    pipe: { path: "/run/tollgate/extproc.sock" },
  });
  assertEquals(
    at(cluster(edge, "tollgate_extproc"), "typed_extension_protocol_options"),
    {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  );
});

Deno.test("renderEnvoyBootstrap resolves the rate-limit target by DNS, address or socket", () => {
  const address = "load_assignment.endpoints.0.lb_endpoints.0.endpoint.address";
  assertEquals(at(cluster(edge, "tollgate_ratelimit"), "type"), "STRICT_DNS");
  const ip = renderEnvoyBootstrap(edge, { ...options, rateLimitTarget: "127.0.0.1:8081" });
  const ipCluster = (at(ip, "static_resources.clusters") as { name: string }[])[1];
  assertEquals(at(ipCluster, "type"), "STATIC");
  assertEquals(at(ipCluster, address), { socket_address: { address: "127.0.0.1", port_value: 8081 } });
  const uds = renderEnvoyBootstrap(edge, { ...options, rateLimitTarget: "unix:///run/tollgate/rls.sock" });
  assertEquals(at((at(uds, "static_resources.clusters") as unknown[])[1], address), {
    pipe: { path: "/run/tollgate/rls.sock" },
  });
});

Deno.test("renderEnvoyBootstrap serves admin on 127.0.0.1 and the listener with the body limit", () => {
  const b = renderEnvoyBootstrap(edge, { ...options, adminPort: 9000 });
  assertEquals(at(b, "admin"), { address: { socket_address: { address: "127.0.0.1", port_value: 9000 } } });
  assertEquals(at(renderEnvoyBootstrap(edge, options), "admin.address.socket_address.port_value"), 9901);
  assertEquals(at(b, "static_resources.listeners.0.per_connection_buffer_limit_bytes"), 1 << 20);
  assertEquals(at(b, "static_resources.listeners.0.address.socket_address.port_value"), 1975);
});

Deno.test("renderEnvoyBootstrap rejects what Envoy would reject", () => {
  const orphan = { ...chatRoute, cluster: "missing" };
  throws(() => renderEnvoyBootstrap({ ...edge, routes: [orphan] }, options), /route "chat" targets unknown cluster/);
  throws(
    () =>
      renderEnvoyBootstrap({ ...edge, clusters: [{ ...chatCluster, name: "tollgate_extproc" }], routes: [] }, options),
    /reserved/,
  );
  const zero: ClusterConfig = {
    ...chatCluster,
    priorities: [[{ host: "10.0.0.1", port: 80, weight: 0, tls: false, metadata: {} }]],
  };
  throws(() => renderEnvoyBootstrap({ ...edge, clusters: [zero] }, options), /weight >= 1/);
});

Deno.test("renderEnvoyYaml writes YAML that reads back as the bootstrap, quoting YAML 1.1 booleans", () => {
  const onRoute: RouteConfig = { ...chatRoute, match: { prefix: "/", headers: [{ name: "x-flag", exact: "on" }] } };
  const e = { ...edge, routes: [onRoute] };
  const text = renderEnvoyYaml(e, options);
  assert(text.startsWith("# Envoy bootstrap written by `tollgate render envoy`"));
  assertEquals(parse(text), renderEnvoyBootstrap(e, options));
  assert(text.includes('exact: "on"'), "an unquoted on would reach Envoy as a boolean");
});
