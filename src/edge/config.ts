// The topology the edge serves, in Envoy's own terms: one listener, an HTTP filter chain (router-level ext_proc,
// ratelimit, router), routes matched on path prefix and exact headers, clusters with endpoints in priority levels,
// retry policies, and an upstream-level ext_proc filter per cluster. `tollgate render envoy` writes the same
// topology as an Envoy bootstrap, so whatever the edge does here, real Envoy does from the rendered file.
import type { ProcessingMode } from "../protocol/ext_proc.ts";

export interface EdgeConfig {
  readonly listener: { readonly host: string; readonly port: number };
  /** Envoy's per-connection buffer limit, for any buffered body: a request body beyond it gets 413, a buffered
   * response body 500. */
  readonly maxRequestBodyBytes: number;
  /** The router-level ext_proc filter, first in the HCM filter chain. */
  readonly routerExtProc?: ExtProcFilterConfig;
  /** The ratelimit HTTP filter, after ext_proc so it sees the headers and metadata ext_proc set. */
  readonly rateLimit?: RateLimitFilterConfig;
  /** First match wins, as in an Envoy virtual host. */
  readonly routes: readonly RouteConfig[];
  readonly clusters: readonly ClusterConfig[];
  /** One JSON line per request; "stdout", a file path, or absent for none. */
  readonly accessLog?: string;
}

export interface ExtProcFilterConfig {
  /** gRPC target in grpc-js syntax: "unix:///run/tollgate/extproc.sock" or "127.0.0.1:1063". */
  readonly target: string;
  readonly processingMode: ProcessingMode;
  readonly allowModeOverride: boolean;
  /** Envoy's message_timeout: how long to wait for each response (Envoy's default is 200 ms). */
  readonly messageTimeoutMs: number;
  /** false: a processor failure answers 500 (504 on timeout). true: the request continues without the processor. */
  readonly failureModeAllow: boolean;
  /** metadata_options.receiving_namespaces.untyped: dynamic metadata accepted from the processor. */
  readonly receivingNamespaces: readonly string[];
  /** grpc_service.initial_metadata, sent on every stream (the role header lives here). */
  readonly initialMetadata: Readonly<Record<string, string>>;
  /** request_attributes sent with the request headers, e.g. "xds.upstream_host_metadata", "xds.route_name". */
  readonly requestAttributes: readonly string[];
  /** Envoy's HeaderMutationRules; unset means Envoy's defaults (see mutation_rules.ts). */
  readonly mutationRules?: HeaderMutationRules;
}

export interface HeaderMutationRules {
  readonly allowAllRouting?: boolean;
  readonly allowEnvoy?: boolean;
  readonly disallowSystem?: boolean;
  readonly disallowAll?: boolean;
  readonly disallowIsError?: boolean;
}

export interface RateLimitFilterConfig {
  readonly domain: string;
  /** gRPC target of envoy.service.ratelimit.v3.RateLimitService. */
  readonly target: string;
  readonly timeoutMs: number;
  /** true: if the service fails or times out, answer 500; false (Envoy's default): let the request through. */
  readonly failureModeDeny: boolean;
  /** Adds X-RateLimit-Limit/Remaining/Reset (draft RFC version 03) to responses. */
  readonly enableXRateLimitHeaders: boolean;
}

export interface HeaderMatch {
  readonly name: string;
  readonly exact: string;
}

export interface RouteConfig {
  readonly name: string;
  readonly match: { readonly prefix: string; readonly headers: readonly HeaderMatch[] };
  readonly cluster: string;
  /** Whole-request upstream timeout; 0 disables it (Envoy's default is 15 s). */
  readonly timeoutMs: number;
  readonly retryPolicy?: RetryPolicy;
  readonly rateLimits: readonly RateLimitEntry[];
  /** Rewrites the Host header to the chosen endpoint's hostname (auto_host_rewrite). */
  readonly autoHostRewrite: boolean;
}

export type RetryOn = "5xx" | "gateway-error" | "connect-failure" | "reset" | "retriable-status-codes";

export interface RetryPolicy {
  readonly retryOn: readonly RetryOn[];
  readonly numRetries: number;
  /** 0 means no per-try timeout. */
  readonly perTryTimeoutMs: number;
  readonly retriableStatusCodes: readonly number[];
  /** envoy.retry_priorities.previous_priorities: each retry moves to the next priority level. */
  readonly previousPriorities: boolean;
  readonly backOff: { readonly baseMs: number; readonly maxMs: number };
}

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly tls: boolean;
  /** Endpoint metadata by filter namespace; the upstream ext_proc filter reads it as xds.upstream_host_metadata
   * (that is how an attempt learns which backend Envoy picked). */
  readonly metadata: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export interface ClusterConfig {
  readonly name: string;
  /** priorities[0] is served first; the others only on retry with previous_priorities (or when 0 is empty). */
  readonly priorities: readonly (readonly Endpoint[])[];
  readonly connectTimeoutMs: number;
  /** The upstream-level ext_proc filter of this cluster, run once per attempt. */
  readonly upstreamExtProc?: ExtProcFilterConfig;
}

/** One entry of a route's rate_limits: the descriptor it builds and when it is sent. */
export interface RateLimitEntry {
  readonly actions: readonly DescriptorAction[];
  /** Sent when the stream is done instead of before the upstream; the answer is ignored. */
  readonly applyOnStreamDone: boolean;
  /** Fixed number, or a %DYNAMIC_METADATA(namespace:key)% reference resolved on stream done. */
  readonly hitsAddend?: { readonly number: number } | { readonly metadata: { namespace: string; key: string } };
}

export type DescriptorAction =
  | {
    readonly kind: "requestHeaders";
    readonly headerName: string;
    readonly descriptorKey: string;
    readonly skipIfAbsent: boolean;
  }
  | { readonly kind: "genericKey"; readonly descriptorKey: string; readonly descriptorValue: string }
  /** Envoy's header_value_match: adds (descriptorKey, descriptorValue) when the headers match (or, with
   * expectMatch false, when they do not); otherwise the whole descriptor is skipped. */
  | {
    readonly kind: "headerValueMatch";
    readonly descriptorKey: string;
    readonly descriptorValue: string;
    readonly expectMatch: boolean;
    readonly headers: readonly HeaderMatch[];
  }
  | {
    readonly kind: "metadata";
    readonly descriptorKey: string;
    readonly namespace: string;
    readonly key: string;
    readonly defaultValue?: string;
  };
