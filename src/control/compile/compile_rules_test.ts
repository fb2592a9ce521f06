// Compilation rules seen one at a time on small inline configurations: policy attachment, retry defaults, the
// limits of what the edge can express, and the errors that say so.
import { assertEquals } from "../../../test/support/assert.ts";
import { parseResources } from "../resources/load.ts";
import { formatResourceError } from "../resources/errors.ts";
import { compileGateway } from "./compile_gateway.ts";
import type { CompileOptions, CompileResult } from "./compiled.ts";

const OPTIONS: CompileOptions = {
  extProcTarget: "127.0.0.1:1063",
  messageTimeoutMs: 500,
  failureModeAllow: true,
  rateLimit: { target: "127.0.0.1:8081", domain: "tollgate", timeoutMs: 100, failureModeDeny: true },
};

const BASE = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: eg
  listeners: [{name: http, protocol: HTTP, port: 1975}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {name: a}
spec:
  schema: {name: OpenAI, prefix: /v1}
  backendRef: {name: be, kind: Backend, group: gateway.envoyproxy.io}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: be}
spec:
  endpoints: [{fqdn: {hostname: upstream.local, port: 8000}}]`;

const route = (rules: string, name = "r") =>
  `apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: ${name}}
spec:
  parentRefs: [{name: gw}]
  rules:
${rules}`;
const MODEL_RULE = `    - matches: [{headers: [{name: X-AI-EG-Model, value: m}]}]
      backendRefs: [{name: a}]`;
const policy = (name: string, target: string, body: string) =>
  `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: ${name}}
spec:
  targetRefs: [${target}]
${body}`;
const ON_ROUTE = "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}";
const ON_GATEWAY = "{group: gateway.networking.k8s.io, kind: Gateway, name: gw}";

function compile(docs: string[], options: CompileOptions = OPTIONS): CompileResult {
  const { resources, errors } = parseResources([BASE, ...docs].join("\n---\n"), "c.yaml");
  assertEquals(errors.map(formatResourceError), []);
  return compileGateway(resources, options);
}

function errorsOf(result: CompileResult): string[] {
  return result.ok ? [] : result.errors.map(formatResourceError);
}

Deno.test("an empty retry block gets Envoy Gateway's defaults, minus the gRPC and HTTP/2-only triggers", () => {
  const out = compile([route(MODEL_RULE), policy("t", ON_ROUTE, "  retry: {}")]);
  assertEquals(out.ok && out.edge.routes[0]?.retryPolicy, {
    retryOn: ["connect-failure", "retriable-status-codes"],
    numRetries: 2,
    perTryTimeoutMs: 0,
    retriableStatusCodes: [503],
    previousPriorities: false,
    backOff: { baseMs: 25, maxMs: 250 },
  });
  // Header names match case-insensitively, so they are compiled lower-cased as Envoy compares them.
  assertEquals(out.ok && out.edge.routes[0]?.match.headers, [{ name: "x-ai-eg-model", exact: "m" }]);
  assertEquals(out.ok && out.edge.routes[0]?.timeoutMs, 60_000);
});

Deno.test("a policy on the route replaces the one on its Gateway", () => {
  const out = compile([
    route(MODEL_RULE),
    policy("gateway-wide", ON_GATEWAY, "  retry: {numRetries: 7}\n  timeout: {http: {requestTimeout: 5m}}"),
    policy("route-only", ON_ROUTE, "  retry: {numRetries: 1}"),
  ]);
  assertEquals(out.ok && [out.edge.routes[0]?.retryPolicy?.numRetries, out.edge.routes[0]?.timeoutMs], [1, 60_000]);
});

Deno.test("a Gateway policy applies to every route attached to that Gateway", () => {
  const out = compile([
    route(MODEL_RULE),
    policy("gateway-wide", ON_GATEWAY, "  retry: {numRetries: 7}\n  timeout: {http: {requestTimeout: 5m}}"),
  ]);
  assertEquals(out.ok && [out.edge.routes[0]?.retryPolicy?.numRetries, out.edge.routes[0]?.timeoutMs], [7, 300_000]);
});

Deno.test("two policies on the same route conflict and the younger one is reported", () => {
  const older = policy("older", ON_ROUTE, "  retry: {numRetries: 1}")
    .replace("metadata: {name: older}", "metadata: {name: older, creationTimestamp: '2024-01-01T00:00:00Z'}");
  const younger = policy("a-younger", ON_ROUTE, "  retry: {numRetries: 2}")
    .replace("metadata: {name: a-younger}", "metadata: {name: a-younger, creationTimestamp: '2025-01-01T00:00:00Z'}");
  assertEquals(errorsOf(compile([route(MODEL_RULE), older, younger])), [
    "c.yaml#5 BackendTrafficPolicy default/a-younger spec.targetRefs: Conflicts with BackendTrafficPolicy " +
    '"default/older" for AIGatewayRoute "default/r": only one policy per route (or per Gateway) takes effect',
  ]);
});

Deno.test("retry triggers and priority pacing the edge cannot express are errors", () => {
  const body = "  retry:\n    numAttemptsPerPriority: 2\n    retryOn: {triggers: [5xx, retriable-4xx, unavailable]}";
  assertEquals(errorsOf(compile([route(MODEL_RULE), policy("t", ON_ROUTE, body)])), [
    "c.yaml#4 BackendTrafficPolicy default/t spec.retry.numAttemptsPerPriority: Tollgate's edge moves to the next " +
    "priority on every retry; must be 0 or 1",
    'c.yaml#4 BackendTrafficPolicy default/t spec.retry.retryOn.triggers[1]: Retry trigger "retriable-4xx" is not ' +
    "supported by Tollgate's edge",
    'c.yaml#4 BackendTrafficPolicy default/t spec.retry.retryOn.triggers[2]: Retry trigger "unavailable" is not ' +
    "supported by Tollgate's edge",
  ]);
});

Deno.test("regular expression matches are errors, in routes and in rate-limit selectors", () => {
  const regexRule = `    - matches: [{headers: [{type: RegularExpression, name: x-ai-eg-model, value: "gpt-.*"}]}]
      backendRefs: [{name: a}]`;
  const limits = `  rateLimit:
    global:
      rules:
        - clientSelectors: [{headers: [{name: x-org, type: RegularExpression, value: "a.*"}]}]
          limit: {requests: 1, unit: Second}`;
  assertEquals(errorsOf(compile([route(regexRule), policy("t", ON_ROUTE, limits)])), [
    "c.yaml#3 AIGatewayRoute default/r spec.rules[0].matches[0].headers[0].type: RegularExpression header matches " +
    "are not supported by Tollgate's edge",
    "c.yaml#4 BackendTrafficPolicy default/t spec.rateLimit.global.rules[0].clientSelectors[0].headers[0].type: " +
    "RegularExpression selectors are not supported by Tollgate's edge",
  ]);
});

Deno.test("an inverted Exact selector matches requests whose header differs", () => {
  const limits = `  rateLimit:
    global:
      rules:
        - clientSelectors: [{headers: [{name: x-org, value: internal, invert: true}]}]
          limit: {requests: 1, unit: Second}`;
  const out = compile([route(MODEL_RULE), policy("t", ON_ROUTE, limits)]);
  assertEquals(out.ok && out.edge.routes[0]?.rateLimits[0]?.actions[1], {
    kind: "headerValueMatch",
    descriptorKey: "rule-0-match-0",
    descriptorValue: "rule-0-match-0",
    expectMatch: false,
    headers: [{ name: "x-org", exact: "internal" }],
  });
  assertEquals(out.ok && out.edge.rateLimit, {
    domain: "tollgate",
    target: "127.0.0.1:8081",
    timeoutMs: 100,
    failureModeDeny: true,
    enableXRateLimitHeaders: true,
  });
});

Deno.test("global rate limits without a rate limit service are an error", () => {
  const limits = "  rateLimit:\n    global:\n      rules: [{limit: {requests: 1, unit: Second}}]";
  const { rateLimit: _, ...noService } = OPTIONS;
  assertEquals(errorsOf(compile([route(MODEL_RULE), policy("t", ON_ROUTE, limits)], noService)), [
    "c.yaml#4 BackendTrafficPolicy default/t spec.rateLimit: Global rate limits need a rate limit service: compile " +
    "with the rateLimit option",
  ]);
});

Deno.test("a rule whose backendRefs all weigh 0 has nothing to route to", () => {
  const rule = "    - backendRefs: [{name: a, weight: 0}]";
  assertEquals(errorsOf(compile([route(rule)])), [
    "c.yaml#3 AIGatewayRoute default/r spec.rules[0].backendRefs: Rule has no backend with a non-zero weight",
  ]);
});

Deno.test("the listener port comes from the Gateway unless the options set it, and must be unambiguous", () => {
  const other = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: other}
spec:
  gatewayClassName: eg
  listeners: [{name: http, protocol: HTTP, port: 8080}, {name: tls, protocol: HTTPS, port: 8443}]`;
  const unattached = route(MODEL_RULE).replace("  parentRefs: [{name: gw}]\n", "");
  assertEquals(errorsOf(compile([unattached, other])), [
    "c.yaml#0 Gateway default/gw spec.listeners: HTTP listeners use several ports (1975, 8080); Tollgate's edge has " +
    "one listener: set the listenerPort option",
  ]);
  const out = compile([unattached, other], { ...OPTIONS, listenerPort: 9000 });
  assertEquals(out.ok && out.edge.listener.port, 9000);
  const single = compile([route(MODEL_RULE), other]);
  assertEquals(single.ok && single.edge.listener.port, 1975);
});

Deno.test("fqdn endpoints keep their hostname, and a Backend with tls settings is dialled with TLS", () => {
  const tlsBackend = BASE.replace(
    "  endpoints: [{fqdn: {hostname: upstream.local, port: 8000}}]",
    "  endpoints: [{fqdn: {hostname: upstream.local, port: 8000}}]\n  tls: {wellKnownCACertificates: System}",
  );
  const { resources } = parseResources([tlsBackend, route(MODEL_RULE)].join("\n---\n"), "c.yaml");
  const out = compileGateway(resources, OPTIONS);
  assertEquals(out.ok && out.backends[0]?.endpoints, [{ host: "upstream.local", port: 8000, tls: true }]);
  assertEquals(out.ok && out.backends[0]?.schema, { name: "OpenAI", prefix: "/v1" });
});

Deno.test("header and body mutations are carried per backend and per backendRef", () => {
  const rule = `    - backendRefs:
        - name: a
          modelNameOverride: gpt-4o-mini
          headerMutation: {set: [{name: x-route, value: r}], remove: [x-debug]}
          bodyMutation: {set: [{path: service_tier, value: '"flex"'}]}`;
  const withBackendMutation = BASE.replace(
    "  schema: {name: OpenAI, prefix: /v1}",
    "  schema: {name: OpenAI, prefix: /v1}\n  headerMutation: {remove: [x-internal]}",
  );
  const { resources } = parseResources([withBackendMutation, route(rule)].join("\n---\n"), "c.yaml");
  const out = compileGateway(resources, OPTIONS);
  assertEquals(out.ok && out.backends[0]?.headerMutation, { set: [], remove: ["x-internal"] });
  assertEquals(out.ok && out.backends[0]?.refs, [{
    id: "default/a/route/r/rule/0/ref/0",
    route: "default/r",
    rule: 0,
    modelNameOverride: "gpt-4o-mini",
    headerMutation: { set: [{ name: "x-route", value: "r" }], remove: ["x-debug"] },
    bodyMutation: { set: [{ path: "service_tier", value: '"flex"' }], remove: [] },
  }]);
});
