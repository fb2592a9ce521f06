// Resource shapes for the config benchmarks. "plain" is test/support/control_plane.ts's routeYaml: a route, its
// AIServiceBackend and its Backend. "rich" adds what real configurations carry per route (an API key policy with its
// Secret, a token count and a CEL price as request costs) and a token budget per user on the Gateway they share.
import { routeYaml } from "../../test/support/control_plane.ts";

/** A route with credentials and costs (--shape rich). */
export function richRouteYaml(model: string, port: number): string {
  return routeYaml({ model, port, apiKey: { placeholder: "sk-bench" } }).replace(
    "  rules:\n",
    `  parentRefs:
    - name: bench
  llmRequestCosts:
    - metadataKey: llm_total_token
      type: TotalToken
    - metadataKey: usd_micros
      type: CEL
      cel: (input_tokens * 2500u + output_tokens * 10000u + 999u) / 1000u
  rules:
`,
  );
}

/** The Gateway every rich route attaches to, with a token budget per user on all of them. */
export const RICH_GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bench
  namespace: default
spec:
  gatewayClassName: bench
  listeners:
    - name: http
      protocol: HTTP
      port: 1975
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: bench-budget
  namespace: default
spec:
  targetRefs:
    - name: bench
      kind: Gateway
      group: gateway.networking.k8s.io
  rateLimit:
    type: Global
    global:
      rules:
        - clientSelectors:
            - headers:
                - name: x-user-id
                  type: Distinct
          limit:
            requests: 100000
            unit: Hour
          cost:
            request:
              from: Number
              number: 0
            response:
              from: Metadata
              metadata:
                namespace: io.envoy.ai_gateway
                key: llm_total_token
`;
