// One JSON line per request, written when the stream is done (after the last response byte or a reset), like an
// Envoy access log with a json_format: what was asked, what answered, how long it took and what it cost.
import type { DynamicMetadata } from "./dynamic_metadata.ts";

export const AI_GATEWAY_NAMESPACE = "io.envoy.ai_gateway";

export interface AccessLogEntry {
  readonly start_time: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly duration_ms: number;
  readonly bytes_received: number;
  readonly bytes_sent: number;
  readonly request_id: string | null;
  readonly route: string | null;
  readonly model: string | null;
  /** The model the provider says answered. */
  readonly response_model: string | null;
  readonly backend: string | null;
  readonly upstream_host: string | null;
  readonly attempts: number;
  readonly response_code_details: string;
  /** Token usage and costs the processor wrote to dynamic metadata (namespace io.envoy.ai_gateway). */
  readonly usage: Record<string, unknown> | null;
}

export type AccessLogSink = (entry: AccessLogEntry) => void;

/** Keys of the namespace that describe the request rather than count tokens or costs. */
const NOT_USAGE = new Set(["content_length", "model", "response_model", "backend"]);

/** Token counts and costs from the namespace (the processor's own keys plus each llmRequestCosts metadataKey). */
export function usageFromMetadata(md: DynamicMetadata): Record<string, unknown> | null {
  const ns = md.get(AI_GATEWAY_NAMESPACE);
  if (!ns) return null;
  const usage = Object.fromEntries(Object.entries(ns).filter(([k]) => !NOT_USAGE.has(k)));
  return Object.keys(usage).length > 0 ? usage : null;
}

export function responseModelFromMetadata(md: DynamicMetadata): string | null {
  const v = md.get(AI_GATEWAY_NAMESPACE)?.response_model;
  return typeof v === "string" ? v : null;
}

/** "stdout" or a file path; lines are appended. */
export function accessLogSink(destination: string): AccessLogSink {
  const encoder = new TextEncoder();
  const out = destination === "stdout" ? Deno.stdout : Deno.openSync(destination, { create: true, append: true });
  return (entry) => {
    const bytes = encoder.encode(JSON.stringify(entry) + "\n");
    for (let at = 0; at < bytes.length;) at += out.writeSync(bytes.subarray(at));
  };
}
