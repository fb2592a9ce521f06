// The two ext_proc filter configurations Tollgate runs with, shared by the edge, the compiler and the Envoy
// renderer so that all three describe the same thing.
import { attemptProcessingMode, ROLE_METADATA, routerProcessingMode } from "../protocol/ext_proc.ts";
import type { ExtProcFilterConfig } from "./config.ts";
import { AI_GATEWAY_NAMESPACE } from "./access_log.ts";

export interface FilterOptions {
  /** Envoy's message_timeout; Envoy AI Gateway uses 10 s because a body can take time to translate. */
  readonly messageTimeoutMs?: number;
  readonly failureModeAllow?: boolean;
}

/** Router level: headers and buffered bodies both ways; the processor may switch the response to STREAMED. */
export function routerExtProcFilter(target: string, o: FilterOptions = {}): ExtProcFilterConfig {
  return {
    target,
    processingMode: routerProcessingMode(),
    allowModeOverride: true,
    messageTimeoutMs: o.messageTimeoutMs ?? 10_000,
    failureModeAllow: o.failureModeAllow ?? false,
    receivingNamespaces: [AI_GATEWAY_NAMESPACE],
    initialMetadata: {},
    requestAttributes: [],
  };
}

/** Upstream level, once per attempt: request headers only, plus which endpoint (backend) Envoy picked. */
export function upstreamExtProcFilter(target: string, o: FilterOptions = {}): ExtProcFilterConfig {
  return {
    target,
    processingMode: attemptProcessingMode(),
    // As Envoy AI Gateway configures its upstream filter; the attempt stream never sends an override.
    allowModeOverride: true,
    messageTimeoutMs: o.messageTimeoutMs ?? 10_000,
    failureModeAllow: o.failureModeAllow ?? false,
    receivingNamespaces: [AI_GATEWAY_NAMESPACE],
    initialMetadata: { [ROLE_METADATA]: "upstream" },
    requestAttributes: ["xds.upstream_host_metadata", "xds.cluster_name", "xds.route_name"],
  };
}
