import { assertEquals } from "../../../test/support/assert.ts";
import { parseResources } from "./load.ts";
import { formatResourceError } from "./errors.ts";
import { validateReferences } from "./references.ts";

/** Parses documents (which must be schema-valid) and returns the reference errors, formatted. */
function referenceErrors(...docs: string[]): string[] {
  const { resources, errors } = parseResources(docs.join("\n---\n"), "refs.yaml");
  assertEquals(errors, []);
  return validateReferences(resources).map(formatResourceError);
}

const backend = (name: string, ns = "default") =>
  `apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {name: ${name}, namespace: ${ns}}
spec:
  schema: {name: OpenAI}
  backendRef: {name: be, kind: Backend, group: gateway.envoyproxy.io}`;
const endpoints = (ns = "default") =>
  `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: be, namespace: ${ns}}
spec:
  endpoints: [{ip: {address: 127.0.0.1, port: 8080}}]`;
const apiKeyPolicy = (name: string, target: string, secret = "key") =>
  `apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {name: ${name}}
spec:
  targetRefs: [{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: ${target}}]
  type: APIKey
  apiKey: {secretRef: {name: ${secret}}}`;
const secret = (data: string) => `apiVersion: v1\nkind: Secret\nmetadata: {name: key}\n${data}`;

Deno.test("validateReferences accepts a Secret key given in data or in stringData", () => {
  assertEquals(referenceErrors(backend("a"), endpoints(), apiKeyPolicy("p", "a"), secret("data: {apiKey: YQ==}")), []);
  assertEquals(
    referenceErrors(backend("a"), endpoints(), apiKeyPolicy("p", "a"), secret("stringData: {apiKey: a}")),
    [],
  );
});

Deno.test("validateReferences reports a Secret without the key the policy type reads", () => {
  assertEquals(referenceErrors(backend("a"), endpoints(), apiKeyPolicy("p", "a"), secret("stringData: {token: a}")), [
    'refs.yaml#2 BackendSecurityPolicy default/p spec.apiKey.secretRef.name: Secret "default/key" has no key "apiKey"',
  ]);
});

Deno.test("validateReferences reports two security policies on one backend, and a policy attached to nothing", () => {
  const unattached = `apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata: {name: lonely}
spec:
  type: APIKey
  apiKey: {secretRef: {name: key}}`;
  assertEquals(
    referenceErrors(
      backend("a"),
      endpoints(),
      apiKeyPolicy("first", "a"),
      apiKeyPolicy("second", "a"),
      unattached,
      secret("stringData: {apiKey: a}"),
    ),
    [
      'refs.yaml#3 BackendSecurityPolicy default/second spec.targetRefs[0].name: AIServiceBackend "default/a" already ' +
      'has BackendSecurityPolicy "default/first"',
      "refs.yaml#4 BackendSecurityPolicy default/lonely spec.targetRefs: Policy is not attached to any AIServiceBackend",
    ],
  );
});

Deno.test("validateReferences attaches a v1alpha1 policy through the deprecated backendSecurityPolicyRef", () => {
  const legacy = `apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata: {name: a}
spec:
  schema: {name: AWSBedrock}
  backendRef: {name: be, kind: Backend, group: gateway.envoyproxy.io}
  backendSecurityPolicyRef: {name: aws, kind: BackendSecurityPolicy, group: aigateway.envoyproxy.io}`;
  const aws = `apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata: {name: aws}
spec:
  type: AWSCredentials
  awsCredentials: {region: us-east-1, credentialsFile: {secretRef: {name: key}, profile: dev}}`;
  assertEquals(referenceErrors(legacy, endpoints(), aws, secret("stringData: {credentials: x}")), []);
});

Deno.test("validateReferences resolves cross-namespace backendRefs and refuses InferencePool backends", () => {
  const route = `apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: r}
spec:
  rules:
    - backendRefs:
        - {name: a, namespace: shared}
        - {name: pool, group: inference.networking.k8s.io, kind: InferencePool}`;
  assertEquals(referenceErrors(route, backend("a", "shared"), endpoints("shared")), [
    "refs.yaml#0 AIGatewayRoute default/r spec.rules[0].backendRefs[1].kind: InferencePool backends are not supported " +
    "by Tollgate",
  ]);
});

Deno.test("validateReferences checks what a traffic policy may target", () => {
  const policy = (target: string) =>
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: t}
spec:
  ${target}
  retry: {numRetries: 1}`;
  const gateway = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: eg
  listeners: [{name: http, protocol: HTTP, port: 80}]`;
  assertEquals(
    referenceErrors(policy("targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}"), gateway),
    [],
  );
  assertEquals(referenceErrors(policy("targetRefs: [{group: gateway.networking.k8s.io, kind: GRPCRoute, name: x}]")), [
    "refs.yaml#0 BackendTrafficPolicy default/t spec.targetRefs[0].kind: Must target a Gateway or an HTTPRoute of " +
    "gateway.networking.k8s.io (an AIGatewayRoute's route)",
  ]);
  assertEquals(referenceErrors(policy("targetRefs: []")), [
    "refs.yaml#0 BackendTrafficPolicy default/t spec.targetRefs: Policy targets nothing",
  ]);
});
