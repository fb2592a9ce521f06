// Envoy's HTTP ratelimit filter (envoy.filters.http.ratelimit) with its gRPC RLS client. `check` is the request-time
// call made before the upstream; `applyOnStreamDone` is the fire-and-forget call for the entries marked
// apply_on_stream_done, whose answer never changes the response that has already been sent.
//
// Envoy's rules followed here (configuration/http_filters/rate_limit_filter, rate_limit.proto):
// - no descriptor for the request: the service is not called at all;
// - OVER_LIMIT: a local reply with rate_limited_status (429) and `x-envoy-ratelimited: true`;
// - a failed or timed-out call: 500 (status_on_error) when failure_mode_deny, otherwise the request goes on;
// - enable_x_ratelimit_headers DRAFT_VERSION_03: X-RateLimit-Limit/Remaining/Reset from the descriptor statuses,
//   on the upstream response when allowed and on the local reply when limited; the service's
//   response_headers_to_add go to the same places, its request_headers_to_add to the request sent upstream.
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import type { RateLimitFilterConfig, RouteConfig } from "./config.ts";
import {
  buildDescriptors,
  decodeRlsRequest,
  type DescriptorContext,
  encodeRlsRequest,
  type RlsDescriptor,
  type RlsRequest,
} from "./rate_limit_descriptors.ts";
import {
  type RateLimitResponse,
  RateLimitResponse_Code,
  type RateLimitResponse_DescriptorStatus,
  RateLimitResponse_RateLimit_Unit,
  RateLimitServiceService,
} from "../protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import type { HeaderValue } from "../protocol/gen/envoy/config/core/v3/base.ts";
import type { Clock } from "../observability/clock.ts";
import type { Logger } from "../observability/logger.ts";

export type RateLimitDecision =
  | {
    readonly kind: "allow";
    /** Added to the upstream response (lower-case names). */
    readonly responseHeaders: Record<string, string>;
    /** The service's request_headers_to_add, for the request sent upstream. */
    readonly requestHeaders: Record<string, string>;
  }
  | {
    readonly kind: "limited";
    readonly status: 429;
    readonly responseHeaders: Record<string, string>;
    /** The service's raw_body, when it sent one, as the body of the local reply. */
    readonly body?: Uint8Array;
  }
  | { readonly kind: "error"; readonly status: 500 };

export interface RateLimitFilterDeps {
  readonly clock: Clock;
  readonly logger: Logger;
}

export class RateLimitServiceError extends Error {
  override readonly name = "RateLimitServiceError";
}

/** RateLimitService with a codec that keeps the per-descriptor hits_addend (see rate_limit_descriptors.ts); the
 * fake RLS in tests serves the same definition. */
export const rateLimitServiceDefinition = {
  shouldRateLimit: {
    ...RateLimitServiceService.shouldRateLimit,
    requestSerialize: (value: RlsRequest): Buffer => Buffer.from(encodeRlsRequest(value)),
    requestDeserialize: (value: Buffer): RlsRequest => decodeRlsRequest(value),
  },
} as const;

/** A fresh one each time: the edge adds to these records. */
function allow(): RateLimitDecision {
  return { kind: "allow", responseHeaders: {}, requestHeaders: {} };
}

/** What the filter does with the service's answer, or with the failure to get one. */
export function decide(
  result: RateLimitResponse | Error,
  config: Pick<RateLimitFilterConfig, "failureModeDeny" | "enableXRateLimitHeaders">,
): RateLimitDecision {
  if (result instanceof Error) return config.failureModeDeny ? { kind: "error", status: 500 } : allow();
  const responseHeaders = config.enableXRateLimitHeaders ? xRateLimitHeaders(result.statuses) : {};
  addHeaderValues(responseHeaders, result.responseHeadersToAdd);
  // Envoy treats every code but OVER_LIMIT (UNKNOWN included) as under the limit.
  if (result.overallCode === RateLimitResponse_Code.OVER_LIMIT) {
    responseHeaders["x-envoy-ratelimited"] = "true";
    const limited = { kind: "limited", status: 429, responseHeaders } as const;
    return result.rawBody.length > 0 ? { ...limited, body: result.rawBody } : limited;
  }
  return { kind: "allow", responseHeaders, requestHeaders: addHeaderValues({}, result.requestHeadersToAdd) };
}

const WINDOW_SECONDS: ReadonlyMap<RateLimitResponse_RateLimit_Unit, number> = new Map([
  [RateLimitResponse_RateLimit_Unit.SECOND, 1],
  [RateLimitResponse_RateLimit_Unit.MINUTE, 60],
  [RateLimitResponse_RateLimit_Unit.HOUR, 3600],
  [RateLimitResponse_RateLimit_Unit.DAY, 86_400],
  // WEEK (7) is newer than the generated enum; envoyproxy/ratelimit's week is 7 fixed days.
  [7 as RateLimitResponse_RateLimit_Unit, 7 * 86_400],
  [RateLimitResponse_RateLimit_Unit.MONTH, 30 * 86_400],
  [RateLimitResponse_RateLimit_Unit.YEAR, 365 * 86_400],
]);

/** Draft 03 headers: Remaining and Reset of the window closest to its limit (the lowest limit_remaining, first one
 * on a tie), and Limit as that window's limit followed by the quota policy of every limit, `10, 10;w=60;name="x"`.
 * Only statuses that carry current_limit count; with none, no header is added. */
export function xRateLimitHeaders(statuses: readonly RateLimitResponse_DescriptorStatus[]): Record<string, string> {
  let closest: RateLimitResponse_DescriptorStatus | undefined;
  const policies: string[] = [];
  for (const status of statuses) {
    const limit = status.currentLimit;
    if (!limit) continue;
    if (!closest || status.limitRemaining < closest.limitRemaining) closest = status;
    const window = WINDOW_SECONDS.get(limit.unit);
    // A limit without a known unit has no window to describe; it still competes for the closest window.
    if (window === undefined) continue;
    policies.push(`${limit.requestsPerUnit};w=${window}${limit.name ? `;name="${limit.name}"` : ""}`);
  }
  if (!closest?.currentLimit) return {};
  return {
    "x-ratelimit-limit": [String(closest.currentLimit.requestsPerUnit), ...policies].join(", "),
    "x-ratelimit-remaining": String(closest.limitRemaining),
    // An absent duration_until_reset reads as a zero Duration, as in Envoy.
    "x-ratelimit-reset": String(closest.durationUntilReset?.seconds ?? 0),
  };
}

/** Appends header values, joining a repeated name with ", " (Envoy appends rather than replaces). */
function addHeaderValues(into: Record<string, string>, values: readonly HeaderValue[]): Record<string, string> {
  const decoder = new TextDecoder();
  for (const h of values) {
    const name = h.key.toLowerCase();
    const value = h.value !== "" ? h.value : decoder.decode(h.rawValue);
    into[name] = into[name] === undefined ? value : `${into[name]}, ${value}`;
  }
  return into;
}

export class RateLimitFilter implements Disposable {
  readonly #config: RateLimitFilterConfig;
  readonly #deps: RateLimitFilterDeps;
  readonly #client: grpc.Client;

  constructor(config: RateLimitFilterConfig, deps: RateLimitFilterDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#client = new grpc.Client(config.target, grpc.credentials.createInsecure());
  }

  /** The request-time check, before the upstream is chosen. Never rejects. */
  async check(route: RouteConfig, ctx: DescriptorContext): Promise<RateLimitDecision> {
    const descriptors = buildDescriptors(route.rateLimits, ctx, false);
    if (descriptors.length === 0) return allow();
    const result = await this.#call(descriptors).catch((err: unknown) => toError(err));
    if (result instanceof Error) {
      this.#deps.logger.warn(
        { err: result, route: route.name, failureModeDeny: this.#config.failureModeDeny },
        "Rate limit check failed",
      );
    }
    return decide(result, this.#config);
  }

  /** The call for apply_on_stream_done entries, once the response is over. Its answer is ignored, OVER_LIMIT
   * included: it only moves the budget for later requests. Never rejects. */
  async applyOnStreamDone(route: RouteConfig, ctx: DescriptorContext): Promise<void> {
    const descriptors = buildDescriptors(route.rateLimits, ctx, true);
    if (descriptors.length === 0) return;
    try {
      await this.#call(descriptors);
    } catch (err) {
      this.#deps.logger.debug({ err, route: route.name }, "Rate limit call on stream done failed");
    }
  }

  close(): void {
    this.#client.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** One ShouldRateLimit call, cancelled when timeoutMs passes on the injected clock. */
  #call(descriptors: RlsDescriptor[]): Promise<RateLimitResponse> {
    const { clock } = this.#deps;
    const { domain, timeoutMs } = this.#config;
    // Envoy leaves the request-level hits_addend unset; per-descriptor hits_addend carries the counts.
    const request: RlsRequest = { domain, descriptors, hitsAddend: 0 };
    const method = rateLimitServiceDefinition.shouldRateLimit;
    return new Promise((resolve, reject) => {
      let settled = false;
      let call: grpc.ClientUnaryCall | undefined;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clock.clearTimeout(timer);
        outcome();
      };
      const timer = clock.setTimeout(() =>
        settle(() => {
          call?.cancel();
          reject(new RateLimitServiceError(`Rate limit service did not answer within ${timeoutMs} ms`));
        }), timeoutMs);
      try {
        call = this.#client.makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          request,
          new grpc.Metadata(),
          {},
          (err, response) =>
            settle(() => {
              if (err) {
                reject(new RateLimitServiceError(`Rate limit service call failed: ${err.message}`, { cause: err }));
              } else if (!response) {
                reject(new RateLimitServiceError("Rate limit service call failed: empty response"));
              } else resolve(response);
            }),
        );
      } catch (err) {
        settle(() => reject(new RateLimitServiceError("Cannot call the rate limit service", { cause: err })));
      }
    });
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new RateLimitServiceError(String(err));
}
