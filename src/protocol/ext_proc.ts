// Helpers over the generated envoy.service.ext_proc.v3 types: reading Envoy's header maps and building the
// responses a processor sends back. Pure functions; no I/O.
import type {
  BodyResponse,
  HeaderMutation,
  HeadersResponse,
  HttpHeaders,
  ProcessingRequest,
  ProcessingResponse,
} from "./gen/envoy/service/ext_proc/v3/external_processor.ts";
import { CommonResponse_ResponseStatus } from "./gen/envoy/service/ext_proc/v3/external_processor.ts";
import type { HeaderValue, HeaderValueOption } from "./gen/envoy/config/core/v3/base.ts";
import { HeaderValueOption_HeaderAppendAction } from "./gen/envoy/config/core/v3/base.ts";
import type { StatusCode } from "./gen/envoy/type/v3/http_status.ts";
import type { ProcessingMode } from "./gen/envoy/extensions/filters/http/ext_proc/v3/processing_mode.ts";
import {
  ProcessingMode_BodySendMode as BodyMode,
  ProcessingMode_HeaderSendMode as HeaderMode,
} from "./gen/envoy/extensions/filters/http/ext_proc/v3/processing_mode.ts";

export { BodyMode, HeaderMode };

/** gRPC initial metadata naming the role of an ExtProc stream ("upstream" for the per-attempt filter); only the
 * filter config sets it, never the HTTP request. */
export const ROLE_METADATA = "x-tollgate-role";
export type { ProcessingMode, ProcessingRequest, ProcessingResponse };

const utf8 = new TextDecoder();
const encoder = new TextEncoder();

/** Lower-cased header name → value. Envoy sends names lower-cased; values arrive in `raw_value` since Envoy 1.27. */
export type Headers = ReadonlyMap<string, string>;

export function readHeaders(headers: HttpHeaders | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of headers?.headers?.headers ?? []) out.set(h.key.toLowerCase(), headerValueText(h));
  return out;
}

function headerValueText(h: HeaderValue): string {
  return h.rawValue.length > 0 ? utf8.decode(h.rawValue) : h.value;
}

/** One header to set, overwriting any value already present (client-sent copies included). */
export function overwriteHeader(key: string, value: string): HeaderValueOption {
  // raw_value rather than value: Envoy rejects mutations that set `value` when it runs with
  // send_bytes_in_raw_value semantics, and raw bytes work everywhere.
  return {
    header: { key, value: "", rawValue: encoder.encode(value) },
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    keepEmptyValue: false,
  };
}

export function headerMutation(set: Readonly<Record<string, string>>, remove: readonly string[] = []): HeaderMutation {
  return { setHeaders: Object.entries(set).map(([k, v]) => overwriteHeader(k, v)), removeHeaders: [...remove] };
}

export interface CommonOptions {
  readonly headerMutation?: HeaderMutation;
  readonly body?: Uint8Array;
  readonly clearRouteCache?: boolean;
  /** CONTINUE_AND_REPLACE: the body given replaces the original and no further body messages are sent. */
  readonly replace?: boolean;
}

function common(o: CommonOptions): HeadersResponse & BodyResponse {
  return {
    response: {
      status: o.replace ? CommonResponse_ResponseStatus.CONTINUE_AND_REPLACE : CommonResponse_ResponseStatus.CONTINUE,
      headerMutation: o.headerMutation,
      bodyMutation: o.body ? { mutation: { $case: "body", value: o.body } } : undefined,
      trailers: undefined,
      clearRouteCache: o.clearRouteCache ?? false,
    },
  };
}

export type Phase =
  | "requestHeaders"
  | "requestBody"
  | "requestTrailers"
  | "responseHeaders"
  | "responseBody"
  | "responseTrailers";

/** The response that answers a message of `phase`: ext_proc requires exactly the matching type. */
export function continueResponse(phase: Phase, o: CommonOptions = {}): ProcessingResponse {
  switch (phase) {
    case "requestHeaders":
    case "responseHeaders":
    case "requestBody":
    case "responseBody":
      return { response: { $case: phase, value: common(o) } } as ProcessingResponse;
    case "requestTrailers":
    case "responseTrailers":
      return { response: { $case: phase, value: { headerMutation: o.headerMutation } } };
  }
}

export interface ImmediateReply {
  readonly status: number;
  readonly body: Uint8Array | string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Short machine-readable reason; Envoy records it as the response code details. */
  readonly details: string;
}

export function immediateResponse(r: ImmediateReply): ProcessingResponse {
  const body = typeof r.body === "string" ? encoder.encode(r.body) : r.body;
  return {
    response: {
      $case: "immediateResponse",
      value: {
        status: { code: r.status as StatusCode },
        headers: headerMutation({ "content-type": r.contentType ?? "application/json", ...r.headers }),
        body,
        grpcStatus: undefined,
        details: r.details,
      },
    },
  };
}

/** The processing mode the router-level filter is rendered with (and what the server assumes by default). */
export function routerProcessingMode(): ProcessingMode {
  return {
    requestHeaderMode: HeaderMode.SEND,
    responseHeaderMode: HeaderMode.SEND,
    requestBodyMode: BodyMode.BUFFERED,
    responseBodyMode: BodyMode.BUFFERED,
    requestTrailerMode: HeaderMode.SKIP,
    responseTrailerMode: HeaderMode.SKIP,
  };
}

/** The upstream-level filter only needs the request headers of each attempt. */
export function attemptProcessingMode(): ProcessingMode {
  return {
    requestHeaderMode: HeaderMode.SEND,
    responseHeaderMode: HeaderMode.SKIP,
    requestBodyMode: BodyMode.NONE,
    responseBodyMode: BodyMode.NONE,
    requestTrailerMode: HeaderMode.SKIP,
    responseTrailerMode: HeaderMode.SKIP,
  };
}

/** Envoy's DEFAULT for headers means SEND; for trailers it means SKIP. */
export function sendsHeaders(mode: HeaderMode): boolean {
  return mode !== HeaderMode.SKIP;
}
export function sendsTrailers(mode: HeaderMode): boolean {
  return mode === HeaderMode.SEND;
}
export function sendsBody(mode: BodyMode): boolean {
  return mode !== BodyMode.NONE;
}
