// Retry and timeouts of one route rule, as Envoy Gateway renders a BackendTrafficPolicy's retry and timeout and as
// Envoy AI Gateway defaults a rule's request timeout. Fallback across priorities needs Envoy's previous_priorities
// retry plugin, so it is switched on whenever the rule's backendRefs span more than one priority.
import type { RetryOn, RetryPolicy } from "../../edge/config.ts";
import type { AIGatewayRouteRule } from "../resources/ai_gateway_route.ts";
import type { BackendTrafficPolicy } from "../resources/resource.ts";
import { durationMs } from "../resources/common.ts";
import { errorAt, type ResourceError } from "../resources/errors.ts";

/** Envoy AI Gateway's request timeout when a rule sets none (Envoy Gateway's own default is 15 s). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Envoy Gateway's cluster connect timeout. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Envoy Gateway's defaults for a retry block that leaves them out. */
const DEFAULT_NUM_RETRIES = 2;
const DEFAULT_RETRIABLE_STATUS = 503;
/** Envoy's retry back-off base; the maximum defaults to ten times the base. */
const DEFAULT_BACKOFF_BASE_MS = 25;

const EDGE_TRIGGERS: ReadonlySet<string> = new Set<RetryOn>([
  "5xx",
  "gateway-error",
  "connect-failure",
  "reset",
  "retriable-status-codes",
]);

export interface RuleTraffic {
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retryPolicy?: RetryPolicy;
}

export function compileRuleTraffic(
  rule: AIGatewayRouteRule,
  policy: BackendTrafficPolicy | undefined,
  spansPriorities: boolean,
  errors: ResourceError[],
): RuleTraffic {
  const requestTimeout = rule.timeouts?.request ?? policy?.spec.timeout?.http?.requestTimeout;
  const backendRequest = rule.timeouts?.backendRequest;
  let timeoutMs = requestTimeout === undefined ? DEFAULT_REQUEST_TIMEOUT_MS : durationMs(requestTimeout);
  const connect = policy?.spec.timeout?.tcp?.connectTimeout;
  const connectTimeoutMs = connect === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : durationMs(connect);
  const retry = policy?.spec.retry;
  if (!policy || !retry) {
    // Without retries a backend request is the whole request, so its timeout bounds the route.
    if (backendRequest !== undefined) timeoutMs = minTimeout(timeoutMs, durationMs(backendRequest));
    return { timeoutMs, connectTimeoutMs };
  }

  const at = (path: (string | number)[], message: string) =>
    errors.push(errorAt(policy.origin, ["spec", "retry", ...path], message));
  let retryOn: RetryOn[] = ["connect-failure", "retriable-status-codes"];
  let codes: number[] = [DEFAULT_RETRIABLE_STATUS];
  if (retry.retryOn) {
    const triggers = retry.retryOn.triggers ?? [];
    if (triggers.length > 0) {
      retryOn = [];
      triggers.forEach((t, i) => {
        if (EDGE_TRIGGERS.has(t)) retryOn.push(t as RetryOn);
        else at(["retryOn", "triggers", i], `Retry trigger "${t}" is not supported by Tollgate's edge`);
      });
    }
    // Envoy Gateway replaces the default status codes as soon as retryOn is given, even with no codes.
    codes = [...(retry.retryOn.httpStatusCodes ?? [])];
  }
  if (retry.numAttemptsPerPriority !== undefined && retry.numAttemptsPerPriority > 1) {
    at(["numAttemptsPerPriority"], "Tollgate's edge moves to the next priority on every retry; must be 0 or 1");
  }
  const base = retry.perRetry?.backOff?.baseInterval;
  const max = retry.perRetry?.backOff?.maxInterval;
  const baseMs = base === undefined ? DEFAULT_BACKOFF_BASE_MS : durationMs(base);
  const maxMs = max === undefined ? baseMs * 10 : durationMs(max);
  if (maxMs < baseMs) at(["perRetry", "backOff", "maxInterval"], "Must not be shorter than baseInterval");
  const perTry = retry.perRetry?.timeout ?? backendRequest;
  return {
    timeoutMs,
    connectTimeoutMs,
    retryPolicy: {
      retryOn,
      numRetries: retry.numRetries ?? DEFAULT_NUM_RETRIES,
      perTryTimeoutMs: perTry === undefined ? 0 : durationMs(perTry),
      retriableStatusCodes: codes,
      previousPriorities: spansPriorities || (retry.numAttemptsPerPriority ?? 0) > 0,
      backOff: { baseMs, maxMs },
    },
  };
}

/** 0 means "no timeout" in Envoy, so it never wins a minimum. */
function minTimeout(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}
