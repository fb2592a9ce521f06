// The observability flags of the roles that route requests (`run`, `extproc`): OTLP tracing, off unless an endpoint
// is given by flag or by the standard OpenTelemetry environment, and the opt-in tenant label of the metrics.
import type { TenantLabelOptions } from "../observability/genai_metrics.ts";
import type { Logger } from "../observability/logger.ts";
import { otlpTracesUrl, RequestTracing } from "../observability/tracing.ts";
import { type Parsed, positiveIntFlag, stringFlag, UsageError } from "./args.ts";

export const OBSERVABILITY_FLAGS = {
  "otlp-endpoint": { type: "string" },
  "metrics-tenant-header": { type: "string" },
  "metrics-tenant-cap": { type: "string" },
} as const;

export const OBSERVABILITY_HELP =
  `  --otlp-endpoint URL      export traces (a span per request and per upstream attempt) over OTLP/HTTP to URL,
                           e.g. http://otel-collector:4318 ("/v1/traces" is appended); without it, tracing is on
                           only when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set
  --metrics-tenant-header H
                           add a "tenant" label, the value of request header H (e.g. x-user-id), to the request
                           and token metrics; off by default (one series per tenant)
  --metrics-tenant-cap N   distinct tenants kept by name; later ones are counted as "other" (default 100)`;

export interface ObservabilityOptions {
  /** The OTLP/HTTP traces URL; undefined: tracing off. */
  readonly otlpTracesUrl: string | undefined;
  readonly tenant: TenantLabelOptions | undefined;
  /** service.name of the spans: OTEL_SERVICE_NAME, or "tollgate". */
  readonly serviceName: string;
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

export function observabilityOptions(
  command: string,
  p: Parsed,
  env: Readonly<Record<string, string | undefined>>,
): ObservabilityOptions {
  let url: string | undefined;
  try {
    url = otlpTracesUrl(typeof p.values["otlp-endpoint"] === "string" ? p.values["otlp-endpoint"] : undefined, env);
  } catch (e) {
    throw new UsageError(`tollgate ${command}: ${(e as Error).message}`);
  }
  const header = stringFlag(p, "metrics-tenant-header", "").toLowerCase();
  if (header !== "" && !HEADER_NAME.test(header)) {
    throw new UsageError(`tollgate ${command}: --metrics-tenant-header must be a header name, got "${header}"`);
  }
  const cap = positiveIntFlag(command, p, "metrics-tenant-cap", 100);
  if (header === "" && p.values["metrics-tenant-cap"] !== undefined) {
    throw new UsageError(`tollgate ${command}: --metrics-tenant-cap needs --metrics-tenant-header`);
  }
  return {
    otlpTracesUrl: url,
    tenant: header === "" ? undefined : { header, cap },
    serviceName: env.OTEL_SERVICE_NAME?.trim() || "tollgate",
  };
}

/** The tracer of a role, or undefined when tracing is off. */
export function startTracing(o: ObservabilityOptions, role: string, logger: Logger): RequestTracing | undefined {
  if (o.otlpTracesUrl === undefined) return undefined;
  logger.info({ url: o.otlpTracesUrl }, "Exporting traces over OTLP/HTTP");
  return new RequestTracing({ url: o.otlpTracesUrl, role, logger, serviceName: o.serviceName });
}
