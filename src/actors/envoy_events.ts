// The events a stream actor receives from the ExtProc transport, one per ProcessingRequest case, plus the end of
// the gRPC stream. Parsed once here so machines never look at the oneof.
import type {
  HttpBody,
  HttpHeaders,
  HttpTrailers,
} from "../protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import type { Phase, ProcessingRequest, ProcessingResponse } from "../protocol/ext_proc.ts";
import type { UsageEvent } from "../usage/usage_event.ts";

export type EnvoyEvent =
  | {
    readonly type: "envoy.requestHeaders";
    readonly headers: HttpHeaders;
    /** ProcessingRequest.attributes: filter name → attribute name → value (e.g. xds.upstream_host_metadata). */
    readonly attributes: Readonly<Record<string, Readonly<Record<string, unknown>> | undefined>>;
  }
  | { readonly type: "envoy.requestBody"; readonly body: HttpBody }
  | { readonly type: "envoy.requestTrailers"; readonly trailers: HttpTrailers }
  | { readonly type: "envoy.responseHeaders"; readonly headers: HttpHeaders }
  | { readonly type: "envoy.responseBody"; readonly body: HttpBody }
  | { readonly type: "envoy.responseTrailers"; readonly trailers: HttpTrailers }
  /** Envoy half-closed the gRPC stream: no more messages will come. */
  | { readonly type: "envoy.closed" };

export type EnvoyMessageEvent = Exclude<EnvoyEvent, { type: "envoy.closed" }>;

/** What a stream actor asks its transport to do. */
export type StreamEmitted =
  | { readonly type: "reply"; readonly response: ProcessingResponse }
  /** The peer broke the protocol; the transport ends the gRPC stream with INVALID_ARGUMENT and this message. */
  | { readonly type: "violation"; readonly message: string }
  /** The request is over: its usage event, for the publisher. */
  | { readonly type: "usage"; readonly event: UsageEvent };

export function toEnvoyEvent(req: ProcessingRequest): EnvoyMessageEvent | undefined {
  const r = req.request;
  switch (r?.$case) {
    case "requestHeaders":
      return { type: "envoy.requestHeaders", headers: r.value, attributes: req.attributes };
    case "requestBody":
      return { type: "envoy.requestBody", body: r.value };
    case "requestTrailers":
      return { type: "envoy.requestTrailers", trailers: r.value };
    case "responseHeaders":
      return { type: "envoy.responseHeaders", headers: r.value };
    case "responseBody":
      return { type: "envoy.responseBody", body: r.value };
    case "responseTrailers":
      return { type: "envoy.responseTrailers", trailers: r.value };
    default:
      return undefined;
  }
}

export function phaseOf(event: EnvoyMessageEvent): Phase {
  return event.type.slice("envoy.".length) as Phase;
}
