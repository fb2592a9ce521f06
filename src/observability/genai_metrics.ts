// The OpenTelemetry GenAI semantic conventions (v1.37+, where gen_ai.system became gen_ai.provider.name) in
// Prometheus form, as the OpenTelemetry Prometheus exporter would write them: dots become underscores, a unit in
// seconds adds `_seconds`, and an annotation unit such as `{token}` adds nothing. Bucket boundaries are the
// conventions' advice. https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/
//
// One observation set per finished request (src/observability/request_facts.ts), recorded by every role that runs
// an ExtProc server. Labels are bounded: operation, provider and error type are small sets; routes and backends
// come from the configuration; models come from clients and providers, so each model label keeps its first
// `modelCap` values and records later ones as "_OTHER". A tenant label exists only when configured, with its own cap.
import { Histogram, type Registry } from "prom-client";
import { BoundedLabel } from "./bounded_label.ts";
import type { RequestFacts } from "./request_facts.ts";

export const TOKEN_BUCKETS = [
  1,
  4,
  16,
  64,
  256,
  1024,
  4096,
  16384,
  65536,
  262144,
  1048576,
  4194304,
  16777216,
  67108864,
];
export const DURATION_BUCKETS = [
  0.01,
  0.02,
  0.04,
  0.08,
  0.16,
  0.32,
  0.64,
  1.28,
  2.56,
  5.12,
  10.24,
  20.48,
  40.96,
  81.92,
];
export const TTFT_BUCKETS = [
  0.001,
  0.005,
  0.01,
  0.02,
  0.04,
  0.06,
  0.08,
  0.1,
  0.25,
  0.5,
  0.75,
  1.0,
  2.5,
  5.0,
  7.5,
  10.0,
];
export const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];

const COMMON = [
  "gen_ai_operation_name",
  "gen_ai_provider_name",
  "gen_ai_original_model",
  "gen_ai_request_model",
  "gen_ai_response_model",
  "ai_route",
  "ai_backend",
] as const;

type Common = typeof COMMON[number] | "tenant";

export interface TenantLabelOptions {
  /** Request header whose value becomes the `tenant` label (e.g. x-user-id), lower case. */
  readonly header: string;
  /** Distinct tenants kept by name; the rest are recorded as "other". */
  readonly cap: number;
}

export interface GenAiMetricsOptions {
  readonly tenant?: TenantLabelOptions | undefined;
  /** Distinct values kept per model label (default 200). */
  readonly modelCap?: number;
}

export class GenAiMetrics {
  readonly tokenUsage: Histogram<Common | "gen_ai_token_type">;
  readonly requestDuration: Histogram<Common | "error_type">;
  readonly timeToFirstToken: Histogram<Common>;
  readonly timePerOutputToken: Histogram<Common>;
  readonly tenantHeader: string | undefined;
  readonly #tenants: BoundedLabel | undefined;
  readonly #originalModels: BoundedLabel;
  readonly #requestModels: BoundedLabel;
  readonly #responseModels: BoundedLabel;

  constructor(registry: Registry, o: GenAiMetricsOptions = {}) {
    const registers = [registry];
    const common: Common[] = [...COMMON, ...(o.tenant ? ["tenant" as const] : [])];
    this.tenantHeader = o.tenant?.header.toLowerCase();
    this.#tenants = o.tenant ? new BoundedLabel(o.tenant.cap, "other") : undefined;
    const modelCap = o.modelCap ?? 200;
    this.#originalModels = new BoundedLabel(modelCap, "_OTHER");
    this.#requestModels = new BoundedLabel(modelCap, "_OTHER");
    this.#responseModels = new BoundedLabel(modelCap, "_OTHER");
    this.tokenUsage = new Histogram({
      name: "gen_ai_client_token_usage",
      help: "Number of input and output tokens used per request, as the provider reported them " +
        "(gen_ai.client.token.usage).",
      labelNames: [...common, "gen_ai_token_type"],
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.requestDuration = new Histogram({
      name: "gen_ai_server_request_duration_seconds",
      help: "Time from the request headers to the end of the response, as the gateway saw it; error_type is set " +
        "when the request failed (gen_ai.server.request.duration).",
      labelNames: [...common, "error_type"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.timeToFirstToken = new Histogram({
      name: "gen_ai_server_time_to_first_token_seconds",
      help: "Time from the request headers to the first response body byte of a successful streamed response " +
        "(gen_ai.server.time_to_first_token).",
      labelNames: common,
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.timePerOutputToken = new Histogram({
      name: "gen_ai_server_time_per_output_token_seconds",
      help: "Time per output token after the first of a successful streamed response: (duration - time to first " +
        "token) / (output tokens - 1) (gen_ai.server.time_per_output_token).",
      labelNames: common,
      buckets: TPOT_BUCKETS,
      registers,
    });
  }

  record(f: RequestFacts): void {
    const labels: Partial<Record<Common, string>> = { gen_ai_operation_name: f.operation };
    if (f.provider !== undefined) labels.gen_ai_provider_name = f.provider;
    if (f.originalModel !== undefined) labels.gen_ai_original_model = this.#originalModels.of(f.originalModel);
    if (f.requestModel !== undefined) labels.gen_ai_request_model = this.#requestModels.of(f.requestModel);
    if (f.responseModel !== undefined) labels.gen_ai_response_model = this.#responseModels.of(f.responseModel);
    if (f.route !== undefined) labels.ai_route = f.route;
    if (f.backend !== undefined) labels.ai_backend = f.backend;
    if (this.#tenants && f.tenant !== undefined) labels.tenant = this.#tenants.of(f.tenant);
    const seconds = Math.max(0, f.endedAt - f.startedAt) / 1000;
    this.requestDuration.observe(f.errorType === undefined ? labels : { ...labels, error_type: f.errorType }, seconds);
    const { inputTokens, outputTokens } = f.usage;
    if (inputTokens !== undefined) this.tokenUsage.observe({ ...labels, gen_ai_token_type: "input" }, inputTokens);
    if (outputTokens !== undefined) this.tokenUsage.observe({ ...labels, gen_ai_token_type: "output" }, outputTokens);
    if (f.errorType !== undefined || !f.stream || f.ttftMs === undefined) return;
    this.timeToFirstToken.observe(labels, f.ttftMs / 1000);
    if (outputTokens !== undefined && outputTokens > 1) {
      this.timePerOutputToken.observe(labels, Math.max(0, seconds - f.ttftMs / 1000) / (outputTokens - 1));
    }
  }
}
