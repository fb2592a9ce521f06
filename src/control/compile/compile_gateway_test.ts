import { fileURLToPath } from "node:url";
import { assert, assertEquals } from "../../../test/support/assert.ts";
import { attemptProcessingMode, routerProcessingMode } from "../../protocol/ext_proc.ts";
import { BACKEND_METADATA_KEY, BACKEND_METADATA_NAMESPACE } from "../snapshot.ts";
import { loadResources } from "../resources/load.ts";
import { compileGateway } from "./compile_gateway.ts";
import type { CompiledGateway, CompileOptions } from "./compiled.ts";

const TESTDATA = fileURLToPath(new URL("../../../testdata/resources/", import.meta.url));
const OPTIONS: CompileOptions = {
  extProcTarget: "unix:///tmp/tollgate/extproc.sock",
  messageTimeoutMs: 200,
  failureModeAllow: false,
  rateLimit: { target: "127.0.0.1:8081", domain: "tollgate" },
};

async function compileExample(dir: string, env: Record<string, string> = {}): Promise<CompiledGateway> {
  const loaded = await loadResources([`${TESTDATA}${dir}`], { env });
  assertEquals(loaded.errors, []);
  const result = compileGateway(loaded.resources, OPTIONS);
  if (!result.ok) throw new Error(`compile failed: ${JSON.stringify(result.errors, null, 2)}`);
  return result;
}

const UPSTREAM_EXT_PROC = {
  target: "unix:///tmp/tollgate/extproc.sock",
  processingMode: attemptProcessingMode(),
  allowModeOverride: true,
  messageTimeoutMs: 200,
  failureModeAllow: false,
  receivingNamespaces: ["io.envoy.ai_gateway"],
  initialMetadata: { "x-tollgate-role": "upstream" },
  requestAttributes: ["xds.upstream_host_metadata", "xds.cluster_name", "xds.route_name"],
};

function identity(ns: string, backend: string, route: string, rule: number, ref: number) {
  return {
    "aigateway.envoy.io": {
      per_route_rule_backend_name: `${ns}/${backend}/route/${route}/rule/${rule}/ref/${ref}`,
      backend: `${ns}/${backend}`,
      routeRule: `${ns}/${route}/rule/${rule}`,
    },
  };
}

Deno.test("compileGateway turns the basic example into a route and a cluster per rule behind the ext_proc filters", async () => {
  const out = await compileExample("basic");
  assertEquals(out.edge.listener, { host: "0.0.0.0", port: 80 });
  assertEquals(out.edge.maxRequestBodyBytes, 50 * 1024 * 1024);
  assertEquals(out.edge.routerExtProc, {
    target: "unix:///tmp/tollgate/extproc.sock",
    processingMode: routerProcessingMode(),
    allowModeOverride: true,
    messageTimeoutMs: 200,
    failureModeAllow: false,
    receivingNamespaces: ["io.envoy.ai_gateway"],
    initialMetadata: {},
    requestAttributes: [],
  });
  // No route has rate limits, so there is no ratelimit filter even though a service was configured.
  assertEquals(out.edge.rateLimit, undefined);
  const prefix = "httproute/default/envoy-ai-gateway-basic/rule";
  assertEquals(
    out.edge.routes,
    [
      ["gpt-4o-mini", 0],
      ["us.meta.llama3-2-1b-instruct-v1:0", 1],
      ["some-cool-self-hosted-model", 2],
    ].map(([model, rule]) => ({
      name: `${prefix}/${rule}/match/0/*`,
      match: { prefix: "/", headers: [{ name: "x-ai-eg-model", exact: model }] },
      cluster: `${prefix}/${rule}`,
      timeoutMs: 60_000,
      rateLimits: [],
      autoHostRewrite: true,
    })),
  );
  assertEquals(
    out.edge.clusters,
    [
      ["envoy-ai-gateway-basic-openai", 18081],
      ["envoy-ai-gateway-basic-aws", 18082],
      ["envoy-ai-gateway-basic-testupstream", 18080],
    ].map(([backend, port], rule) => ({
      name: `${prefix}/${rule}`,
      priorities: [[{
        host: "127.0.0.1",
        port,
        weight: 1,
        tls: false,
        metadata: identity("default", String(backend), "envoy-ai-gateway-basic", rule, 0),
      }]],
      connectTimeoutMs: 10_000,
      upstreamExtProc: UPSTREAM_EXT_PROC,
    })),
  );
  assertEquals(out.models, [
    { id: "gpt-4o-mini", ownedBy: "Envoy AI Gateway", created: 1767225600 },
    { id: "us.meta.llama3-2-1b-instruct-v1:0", ownedBy: "Envoy AI Gateway", created: 1767225600 },
    { id: "some-cool-self-hosted-model", ownedBy: "Envoy AI Gateway", created: 1767225600 },
  ]);
});

Deno.test("compileGateway keeps credentials as references to Secrets and never copies their values", async () => {
  const out = await compileExample("basic");
  const byName = new Map(out.backends.map((b) => [b.name, b]));
  assertEquals(out.backends.map((b) => b.name), [
    "default/envoy-ai-gateway-basic-aws",
    "default/envoy-ai-gateway-basic-azure",
    "default/envoy-ai-gateway-basic-gcp",
    "default/envoy-ai-gateway-basic-openai",
    "default/envoy-ai-gateway-basic-testupstream",
  ]);
  assertEquals(byName.get("default/envoy-ai-gateway-basic-openai"), {
    name: "default/envoy-ai-gateway-basic-openai",
    schema: { name: "OpenAI" },
    auth: {
      type: "APIKey",
      policy: "default/envoy-ai-gateway-basic-openai-apikey",
      secret: { namespace: "default", name: "envoy-ai-gateway-basic-openai-apikey", key: "apiKey" },
    },
    refs: [{
      id: "default/envoy-ai-gateway-basic-openai/route/envoy-ai-gateway-basic/rule/0/ref/0",
      route: "default/envoy-ai-gateway-basic",
      rule: 0,
    }],
    endpoints: [{ host: "127.0.0.1", port: 18081, tls: false }],
  });
  assertEquals(byName.get("default/envoy-ai-gateway-basic-aws")?.auth, {
    type: "AWSCredentials",
    policy: "default/envoy-ai-gateway-basic-aws-credentials",
    region: "us-east-1",
    credentialsFile: {
      secret: { namespace: "default", name: "envoy-ai-gateway-basic-aws-credentials", key: "credentials" },
      profile: "default",
    },
  });
  assertEquals(byName.get("default/envoy-ai-gateway-basic-azure")?.schema, {
    name: "AzureOpenAI",
    version: "2025-01-01-preview",
  });
  assertEquals(byName.get("default/envoy-ai-gateway-basic-testupstream")?.auth, undefined);
  const text = JSON.stringify(out);
  for (const value of ["OPENAI_API_KEY", "AZURE_CLIENT_SECRET", "AWS_SECRET_ACCESS_KEY", "GCP_OIDC_CLIENT_SECRET"]) {
    assert(!text.includes(value), `${value} leaked into the compiled config`);
  }
});

Deno.test("compileGateway gives provider fallback priority levels and a retry that moves through them", async () => {
  const out = await compileExample("provider_fallback");
  const cluster = "httproute/default/provider-fallback/rule/0";
  assertEquals(out.edge.routes, [{
    name: `${cluster}/match/0/*`,
    match: { prefix: "/", headers: [{ name: "x-ai-eg-model", exact: "us.meta.llama3-2-1b-instruct-v1:0" }] },
    cluster,
    timeoutMs: 60_000,
    retryPolicy: {
      retryOn: ["connect-failure", "retriable-status-codes"],
      numRetries: 5,
      perTryTimeoutMs: 30_000,
      retriableStatusCodes: [500],
      previousPriorities: true,
      backOff: { baseMs: 100, maxMs: 10_000 },
    },
    rateLimits: [],
    autoHostRewrite: true,
  }]);
  assertEquals(out.edge.clusters[0]?.priorities, [
    [{
      host: "127.0.0.1",
      port: 443,
      weight: 1,
      tls: true,
      metadata: identity("default", "provider-fallback-always-failing-upstream", "provider-fallback", 0, 0),
    }],
    [{
      host: "127.0.0.1",
      port: 18082,
      weight: 1,
      tls: false,
      metadata: identity("default", "provider-fallback-aws", "provider-fallback", 0, 1),
    }],
  ]);
});

Deno.test("compileGateway builds the token rate limit entries as Envoy Gateway does", async () => {
  const out = await compileExample("token_ratelimit");
  assertEquals(out.edge.rateLimit, {
    domain: "tollgate",
    target: "127.0.0.1:8081",
    timeoutMs: 20,
    failureModeDeny: false,
    enableXRateLimitHeaders: true,
  });
  const route = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";
  const [only] = out.edge.routes;
  assertEquals(only?.name, route);
  const keys = [
    "llm_input_token",
    "llm_output_token",
    "llm_total_token",
    "llm_cached_input_token",
    "llm_cel_calculated_token",
  ];
  assertEquals(
    only?.rateLimits,
    keys.flatMap((key, r) => {
      const actions = [
        { kind: "genericKey", descriptorKey: route, descriptorValue: route },
        { kind: "requestHeaders", headerName: "x-user-id", descriptorKey: `rule-${r}-match-0`, skipIfAbsent: false },
      ];
      return [
        // cost.request {from: Number, number: 0}: check the budget before the upstream without spending it.
        { actions, applyOnStreamDone: false, hitsAddend: { number: 0 } },
        // cost.response: spend the tokens the AI Gateway filter wrote to dynamic metadata when the stream is done.
        { actions, applyOnStreamDone: true, hitsAddend: { metadata: { namespace: "io.envoy.ai_gateway", key } } },
      ];
    }),
  );
  assertEquals(out.rateLimitRules.map((r) => [r.ruleIndex, r.limit.requests, r.limit.unit]), [
    [0, 10, "hour"],
    [1, 100, "hour"],
    [2, 1000, "hour"],
    [3, 100, "hour"],
    [4, 1000, "hour"],
  ]);
  assertEquals(out.rateLimitRules[0], {
    domain: "tollgate",
    policy: "default/envoy-ai-gateway-token-ratelimit-policy",
    ruleIndex: 0,
    route,
    descriptors: [{ key: route, value: route }, { key: "rule-0-match-0" }],
    limit: { requests: 10, unit: "hour" },
    shadowMode: false,
  });
  assertEquals(out.llmRequestCosts.map((c) => [c.metadataKey, c.type, c.cel]), [
    ["llm_input_token", "InputToken", undefined],
    ["llm_cached_input_token", "CachedInputToken", undefined],
    ["llm_cached_write_input_token", "CachedWriteInputToken", undefined],
    ["llm_output_token", "OutputToken", undefined],
    ["llm_total_token", "TotalToken", undefined],
    ["llm_cel_calculated_token", "CEL", "input_tokens == uint(3) ? 100000000 : 0"],
  ]);
});

Deno.test("compileGateway weighs endpoints by backendRef weight and orders catch-all rules last", async () => {
  const out = await compileExample("v1beta1", { ANTHROPIC_API_KEY: "sk-ant-test" });
  assertEquals(out.edge.listener.port, 8080);
  assertEquals(out.edge.routes.map((r) => [r.name, r.match.headers.map((h) => h.exact)]), [
    ["httproute/llm/chat/rule/0/match/0/*", ["claude-sonnet"]],
    ["httproute/llm/chat/rule/0/match/1/*", ["claude-sonnet-latest"]],
    ["httproute/llm/chat/rule/1/match/0/*", []],
  ]);
  const [first] = out.edge.routes;
  assertEquals([first?.timeoutMs, first?.retryPolicy?.perTryTimeoutMs, first?.retryPolicy?.numRetries], [
    120_000,
    45_000,
    1,
  ]);
  assertEquals(out.edge.clusters[0]?.connectTimeoutMs, 3_000);
  // Anthropic (weight 3) has two addresses, Azure (weight 1) one: 3+3 against 2 keeps the 3:1 split.
  assertEquals(out.edge.clusters[0]?.priorities.map((level) => level.map((e) => [e.host, e.port, e.weight, e.tls])), [[
    ["127.0.0.1", 18085, 3, false],
    ["127.0.0.1", 18086, 3, false],
    ["localhost", 443, 2, true],
  ]]);
  assertEquals(out.models, [
    { id: "claude-sonnet", ownedBy: "Anthropic", created: 1716285600 },
    { id: "claude-sonnet-latest", ownedBy: "Anthropic", created: 1716285600 },
  ]);
  const azure = out.backends.find((b) => b.name === "llm/azure");
  assertEquals(azure?.refs, [
    { id: "llm/azure/route/chat/rule/0/ref/1", route: "llm/chat", rule: 0, modelNameOverride: "gpt-4o" },
    { id: "llm/azure/route/chat/rule/1/ref/0", route: "llm/chat", rule: 1 },
  ]);
  assertEquals(azure?.auth, {
    type: "AzureAPIKey",
    policy: "llm/azure-key",
    secret: { namespace: "llm", name: "azure-key", key: "apiKey" },
  });
});

Deno.test("compileGateway builds Exact and Distinct selectors, selector-less rules and response-only costs", async () => {
  const out = await compileExample("v1beta1", { ANTHROPIC_API_KEY: "sk-ant-test" });
  const route = "httproute/llm/chat/rule/0/match/0/*";
  const routeKey = { kind: "genericKey", descriptorKey: route, descriptorValue: route };
  const allTraffic = { kind: "genericKey", descriptorKey: "rule-1-match--1", descriptorValue: "rule-1-match--1" };
  assertEquals(out.edge.routes[0]?.rateLimits, [
    {
      actions: [
        routeKey,
        {
          kind: "headerValueMatch",
          descriptorKey: "rule-0-match-0",
          descriptorValue: "rule-0-match-0",
          expectMatch: true,
          headers: [{ name: "x-tenant", exact: "free" }],
        },
        { kind: "requestHeaders", headerName: "x-user-id", descriptorKey: "rule-0-match-1", skipIfAbsent: false },
      ],
      applyOnStreamDone: false,
    },
    // No request cost: Envoy's default of one hit; the response cost gets its own stream-done entry.
    { actions: [routeKey, allTraffic], applyOnStreamDone: false },
    {
      actions: [routeKey, allTraffic],
      applyOnStreamDone: true,
      hitsAddend: { metadata: { namespace: "io.envoy.ai_gateway", key: "llm_total_token" } },
    },
  ]);
  const rules = out.rateLimitRules.filter((r) => r.route === route);
  assertEquals(rules.map((r) => [r.descriptors, r.limit, r.shadowMode]), [
    [
      [{ key: route, value: route }, { key: "rule-0-match-0", value: "rule-0-match-0" }, { key: "rule-0-match-1" }],
      { requests: 5, unit: "minute" },
      false,
    ],
    [[{ key: route, value: route }, { key: "rule-1-match--1", value: "rule-1-match--1" }], {
      requests: 100000,
      unit: "day",
    }, true],
  ]);
  // Envoy Gateway keys counters per route, so each generated route carries its own copy of the rules.
  assertEquals(out.rateLimitRules.length, 6);
});

Deno.test("compileGateway writes the backend identity where the attempt stream looks for it", async () => {
  const out = await compileExample("basic");
  const endpoint = out.edge.clusters[0]?.priorities[0]?.[0];
  assertEquals(
    endpoint?.metadata[BACKEND_METADATA_NAMESPACE]?.[BACKEND_METADATA_KEY],
    "default/envoy-ai-gateway-basic-openai",
  );
});

Deno.test("compileGateway is deterministic", async () => {
  const loaded = await loadResources([`${TESTDATA}token_ratelimit`, `${TESTDATA}basic`]);
  const a = compileGateway(loaded.resources, OPTIONS);
  const b = compileGateway([...loaded.resources].reverse(), OPTIONS);
  assert(a.ok);
  assertEquals(JSON.stringify(a), JSON.stringify(b));
});
