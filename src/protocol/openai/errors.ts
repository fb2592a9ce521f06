// OpenAI's error envelope: {"error": {"message", "type", "param", "code"}}. Clients (the official SDKs included)
// read `error.message` and the HTTP status, so every failure we answer for an OpenAI-compatible path uses it.
import type { ImmediateReply } from "../ext_proc.ts";

export type OpenAIErrorType =
  | "invalid_request_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error"
  | "upstream_error";

export interface OpenAIError {
  readonly status: number;
  readonly message: string;
  readonly type: OpenAIErrorType;
  readonly code?: string | null;
  readonly param?: string | null;
  /** Envoy response code details, e.g. "tollgate_malformed_body". */
  readonly details: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export function openAIErrorBody(e: OpenAIError): string {
  return JSON.stringify({ error: { message: e.message, type: e.type, param: e.param ?? null, code: e.code ?? null } });
}

export function openAIErrorReply(e: OpenAIError): ImmediateReply {
  return {
    status: e.status,
    body: openAIErrorBody(e),
    details: e.details,
    ...(e.headers ? { headers: e.headers } : {}),
  };
}

/** The same error for an Anthropic-compatible client: {"type":"error","error":{"type","message"}}. */
export function anthropicErrorBody(e: OpenAIError): string {
  const type = e.status === 429
    ? "rate_limit_error"
    : e.status === 404
    ? "not_found_error"
    : e.status === 413
    ? "request_too_large"
    : e.status >= 500
    ? "api_error"
    : "invalid_request_error";
  return JSON.stringify({ type: "error", error: { type, message: e.message } });
}

/** An error in the format of the client's API. */
export function clientErrorReply(api: "openai" | "anthropic", e: OpenAIError): ImmediateReply {
  if (api === "openai") return openAIErrorReply(e);
  return {
    status: e.status,
    body: anthropicErrorBody(e),
    details: e.details,
    ...(e.headers ? { headers: e.headers } : {}),
  };
}
