// BackendTrafficPolicy of gateway.envoyproxy.io/v1alpha1, reduced to what a token gateway needs: global rate-limit
// rules with costs, retry, and timeouts. Envoy Gateway's other cluster settings are named so that using one is a clear
// "not supported" error instead of a silently ignored field.
import { z } from "zod";
import { duration, policyTargetReference, unsupported } from "./common.ts";

export const RATE_LIMIT_UNITS = ["Second", "Minute", "Hour", "Day", "Month", "Year"] as const;
export type RateLimitUnit = (typeof RATE_LIMIT_UNITS)[number];

const headerSelector = z.strictObject({
  name: z.string().min(1).max(256),
  type: z.enum(["Exact", "RegularExpression", "Distinct"]).optional(),
  value: z.string().max(1024).optional(),
  invert: z.boolean().optional(),
}).superRefine((h, ctx) => {
  if (h.type === "Distinct") {
    if (h.value !== undefined) {
      ctx.addIssue({ code: "custom", path: ["value"], message: "Must not be set for Distinct" });
    }
    if (h.invert === true) ctx.addIssue({ code: "custom", path: ["invert"], message: "Must not be set for Distinct" });
  } else if (h.value === undefined) {
    ctx.addIssue({ code: "custom", path: ["value"], message: `Field is required for ${h.type ?? "Exact"} matches` });
  }
});

const clientSelector = z.strictObject({
  headers: z.array(headerSelector).max(16).optional(),
  methods: unsupported(),
  path: unsupported(),
  sourceCIDR: unsupported(),
});

const costSpecifier = z.strictObject({
  from: z.enum(["Number", "Metadata"]),
  number: z.number().int().min(0).optional(),
  metadata: z.strictObject({ namespace: z.string().min(1), key: z.string().min(1) }).optional(),
}).superRefine((c, ctx) => {
  const field = c.from === "Number" ? "number" : "metadata";
  const other = c.from === "Number" ? "metadata" : "number";
  if (c[field] === undefined) {
    ctx.addIssue({ code: "custom", path: [field], message: `Field is required when from is ${c.from}` });
  }
  if (c[other] !== undefined) {
    ctx.addIssue({ code: "custom", path: [other], message: `Field is not allowed when from is ${c.from}` });
  }
});

const rateLimitRule = z.strictObject({
  clientSelectors: z.array(clientSelector).max(8).optional(),
  limit: z.strictObject({ requests: z.number().int().min(0), unit: z.enum(RATE_LIMIT_UNITS) }),
  cost: z.strictObject({ request: costSpecifier.optional(), response: costSpecifier.optional() }).optional(),
  shared: z.literal(false, { error: "Shared rate-limit buckets are not supported by Tollgate" }).optional(),
  shadowMode: z.boolean().optional(),
});

const retry = z.strictObject({
  numRetries: z.number().int().min(0).optional(),
  numAttemptsPerPriority: z.number().int().min(0).optional(),
  retryOn: z.strictObject({
    triggers: z.array(z.enum([
      "5xx",
      "gateway-error",
      "reset",
      "connect-failure",
      "retriable-4xx",
      "refused-stream",
      "retriable-status-codes",
      "cancelled",
      "deadline-exceeded",
      "internal",
      "resource-exhausted",
      "unavailable",
    ])).optional(),
    httpStatusCodes: z.array(z.number().int().min(100).max(599)).optional(),
  }).optional(),
  perRetry: z.strictObject({
    timeout: duration.optional(),
    backOff: z.strictObject({ baseInterval: duration.optional(), maxInterval: duration.optional() }).optional(),
  }).optional(),
});

/** Outlier detection: accepted so Envoy AI Gateway's fallback example loads; the edge has no ejection (yet). */
const passiveHealthCheck = z.strictObject({
  splitExternalLocalOriginErrors: z.boolean().optional(),
  interval: duration.optional(),
  consecutiveLocalOriginFailures: z.number().int().min(0).optional(),
  consecutiveGatewayErrors: z.number().int().min(0).optional(),
  consecutive5XxErrors: z.number().int().min(0).optional(),
  baseEjectionTime: duration.optional(),
  maxEjectionPercent: z.number().int().min(0).max(100).optional(),
  failurePercentageThreshold: z.number().int().min(0).max(100).optional(),
});

export const backendTrafficPolicySpec = z.strictObject({
  targetRefs: z.array(policyTargetReference).optional(),
  /** Deprecated singular form of targetRefs. */
  targetRef: policyTargetReference.optional(),
  targetSelectors: unsupported(),
  mergeType: unsupported(),
  rateLimit: z.strictObject({
    type: z.literal("Global", { error: 'Only "Global" rate limits are supported by Tollgate' }).optional(),
    global: z.strictObject({ rules: z.array(rateLimitRule).max(128) }).optional(),
    local: unsupported(),
  }).optional(),
  retry: retry.optional(),
  timeout: z.strictObject({
    tcp: z.strictObject({ connectTimeout: duration.optional() }).optional(),
    http: z.strictObject({
      requestTimeout: duration.optional(),
      connectionIdleTimeout: unsupported(),
      maxConnectionDuration: unsupported(),
    }).optional(),
  }).optional(),
  healthCheck: z.strictObject({ passive: passiveHealthCheck.optional(), active: unsupported() }).optional(),
  loadBalancer: unsupported(),
  circuitBreaker: unsupported(),
  proxyProtocol: unsupported(),
  tcpKeepalive: unsupported(),
  connection: unsupported(),
  dns: unsupported(),
  http2: unsupported(),
  faultInjection: unsupported(),
  useClientProtocol: unsupported(),
  compression: unsupported(),
  responseOverride: unsupported(),
  httpUpgrade: unsupported(),
  requestBuffer: unsupported(),
  telemetry: unsupported(),
}).superRefine((spec, ctx) => {
  if ((spec.targetRefs === undefined) === (spec.targetRef === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: ["targetRefs"],
      message: "Exactly one of targetRefs or targetRef must be set",
    });
  }
});

export type BackendTrafficPolicySpec = z.output<typeof backendTrafficPolicySpec>;
export type RateLimitRuleSpec = z.output<typeof rateLimitRule>;
export type RetrySpec = z.output<typeof retry>;
export type CostSpecifier = z.output<typeof costSpecifier>;
export type HeaderSelector = z.output<typeof headerSelector>;
