// The EdgeConfig behind deploy/envoy/envoy.yaml, and the script that renders it:
//   node_modules/.bin/deno run -A deploy/envoy/render_example.ts
// Two models routed by x-ai-eg-model; gpt-4o-mini falls back from OpenAI (priority 0) to Azure OpenAI (priority 1);
// a per-user token budget checked before the upstream and charged when the stream is done.
// test/envoy_config_test.ts fails when envoy.yaml is not what this renders.
import type { EdgeConfig, RateLimitEntry } from "../../src/edge/config.ts";
import { routerExtProcFilter, upstreamExtProcFilter } from "../../src/edge/filter_defaults.ts";
import { renderEnvoyYaml } from "../../src/edge/render_envoy.ts";

export const EXAMPLE_EXTPROC_SOCKET = "/run/tollgate/extproc.sock";
const extproc = `unix://${EXAMPLE_EXTPROC_SOCKET}`;

const userTokenActions = [
  { kind: "genericKey", descriptorKey: "rule", descriptorValue: "user-tokens" },
  { kind: "requestHeaders", headerName: "x-user-id", descriptorKey: "user_id", skipIfAbsent: false },
] as const;

/** Check the budget before the upstream (an addend of 0 adds nothing), charge the tokens used when done. */
const userTokenBudget: readonly RateLimitEntry[] = [
  { actions: userTokenActions, applyOnStreamDone: false, hitsAddend: { number: 0 } },
  {
    actions: userTokenActions,
    applyOnStreamDone: true,
    hitsAddend: { metadata: { namespace: "io.envoy.ai_gateway", key: "llm_total_token" } },
  },
];

const byModel = (model: string) => ({ prefix: "/", headers: [{ name: "x-ai-eg-model", exact: model }] });

export const exampleEdgeConfig: EdgeConfig = {
  listener: { host: "0.0.0.0", port: 1975 },
  maxRequestBodyBytes: 4 * 1024 * 1024,
  routerExtProc: routerExtProcFilter(extproc),
  rateLimit: {
    domain: "tollgate",
    target: "127.0.0.1:8081",
    timeoutMs: 100,
    failureModeDeny: true,
    enableXRateLimitHeaders: true,
  },
  routes: [
    {
      name: "gpt-4o-mini",
      match: byModel("gpt-4o-mini"),
      cluster: "gpt-4o-mini",
      timeoutMs: 120_000,
      retryPolicy: {
        retryOn: ["connect-failure", "reset", "retriable-status-codes"],
        numRetries: 1,
        perTryTimeoutMs: 60_000,
        retriableStatusCodes: [429, 500, 502, 503],
        previousPriorities: true,
        backOff: { baseMs: 100, maxMs: 1_000 },
      },
      rateLimits: userTokenBudget,
      autoHostRewrite: true,
    },
    {
      name: "llama-3.1-8b-instruct",
      match: byModel("llama-3.1-8b-instruct"),
      cluster: "llama-3.1-8b-instruct",
      timeoutMs: 120_000,
      rateLimits: userTokenBudget,
      autoHostRewrite: false,
    },
  ],
  clusters: [
    {
      name: "gpt-4o-mini",
      priorities: [
        [{
          host: "api.openai.com",
          port: 443,
          weight: 1,
          tls: true,
          metadata: { "aigateway.envoy.io": { backend: "default/openai" } },
        }],
        [{
          host: "example.openai.azure.com",
          port: 443,
          weight: 1,
          tls: true,
          metadata: { "aigateway.envoy.io": { backend: "default/azure-openai" } },
        }],
      ],
      connectTimeoutMs: 5_000,
      upstreamExtProc: upstreamExtProcFilter(extproc),
    },
    {
      name: "llama-3.1-8b-instruct",
      priorities: [[
        {
          host: "10.0.0.12",
          port: 8000,
          weight: 1,
          tls: false,
          metadata: { "aigateway.envoy.io": { backend: "default/vllm" } },
        },
        {
          host: "10.0.0.13",
          port: 8000,
          weight: 1,
          tls: false,
          metadata: { "aigateway.envoy.io": { backend: "default/vllm" } },
        },
      ]],
      connectTimeoutMs: 2_000,
      upstreamExtProc: upstreamExtProcFilter(extproc),
    },
  ],
  accessLog: "stdout",
};

export function renderExample(): string {
  return renderEnvoyYaml(exampleEdgeConfig, { extProcSocketPath: EXAMPLE_EXTPROC_SOCKET });
}

if (import.meta.main) {
  await Deno.writeTextFile(new URL("./envoy.yaml", import.meta.url), renderExample());
}
