// The contract every translator keeps. One translator per pair of schemas, named <client>_<backend>.ts
// (openai_awsbedrock.ts): the client's API on one side, the backend's native API on the other.
//
// - request() is pure: (client request, backend) → the upstream request, or an error the client sees. It must be
//   idempotent: every attempt (retry, fallback to another provider) translates again from the original body.
// - response() makes a small per-stream translator: it is fed the upstream status and headers, then body chunks
//   (the whole body when buffered, chunk by chunk when streamed; a chunk may end anywhere, even mid-event), and
//   returns what the client gets, in the client's schema. It never throws: an upstream body it cannot read becomes
//   an error in the client's format (and `failure` says why, for the logs).
// - usage fields stay unset unless the provider reported them; never a fake 0.
import type { TokenUsage } from "../usage.ts";

export type ClientApi = "openai" | "anthropic";
export type ClientEndpoint = "chatCompletions" | "completions" | "embeddings" | "messages";

export type BackendSchemaName =
  | "OpenAI"
  | "Cohere"
  | "AWSBedrock"
  | "AzureOpenAI"
  | "GCPVertexAI"
  | "GCPAnthropic"
  | "Anthropic"
  | "AWSAnthropic";

export interface BackendSchema {
  readonly name: BackendSchemaName;
  /** API version: Azure's api-version, Anthropic's anthropic_version on AWS/GCP, ... */
  readonly version?: string;
  /** Path prefix replacing the client's "/v1" (OpenAI-compatible servers such as Groq: "/openai/v1"). */
  readonly prefix?: string;
}

/** Where the backend lives, for the translators whose path depends on it (Vertex AI: project and region). */
export interface BackendLocation {
  readonly region?: string;
  readonly project?: string;
}

export interface TranslateRequest {
  readonly endpoint: ClientEndpoint;
  /** The client's body, parsed once where it entered. */
  readonly body: Readonly<Record<string, unknown>>;
  /** The client's body exactly as sent (pass-through translators forward it untouched when they can). */
  readonly rawBody: Uint8Array;
  /** The model to ask the backend for: the client's model, or the backendRef's modelNameOverride. */
  readonly model: string;
  readonly stream: boolean;
  /** Costs are configured: a streamed chat must report usage even if the client did not ask for it. The request
   * asks for it (stream_options.include_usage); the response hides the extra usage from such a client. */
  readonly forceStreamUsage: boolean;
  readonly backend: BackendSchema;
  readonly location?: BackendLocation;
}

export interface UpstreamRequest {
  /** :path, query included. */
  readonly path: string;
  /** Headers to set on the upstream request (content-type, anthropic-version, ...). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** A request the backend cannot take: 400 malformed for this API, 422 valid but not expressible for the backend. */
export interface ClientError {
  readonly status: 400 | 422;
  readonly message: string;
  readonly param?: string;
}

export interface ResponseTranslator {
  /** The upstream answered; returns the headers to set on the client's response (content-type mostly). */
  headers(status: number, headers: ReadonlyMap<string, string>): Readonly<Record<string, string>>;
  /** One body chunk; returns the bytes the client gets for it (possibly empty). */
  body(chunk: Uint8Array, endOfStream: boolean): Uint8Array;
  /** Usage reported so far. */
  readonly usage: TokenUsage;
  /** The model the provider says answered, when it says. */
  readonly responseModel: string | undefined;
  /** Set when the upstream body could not be read; the client got an error in its format instead. */
  readonly failure: string | undefined;
}

export interface Translator {
  request(r: TranslateRequest): UpstreamRequest | ClientError;
  response(r: TranslateRequest): ResponseTranslator;
}

export function isClientError(x: UpstreamRequest | ClientError): x is ClientError {
  return "status" in x;
}

const encoder = new TextEncoder();

export function jsonBytes(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** The client's error envelope: OpenAI's {"error":{...}} or Anthropic's {"type":"error","error":{...}}. */
export function clientErrorBody(api: ClientApi, status: number, message: string, param?: string): Uint8Array {
  if (api === "anthropic") {
    return jsonBytes({ type: "error", error: { type: anthropicErrorType(status), message } });
  }
  return jsonBytes({
    error: { message, type: openAIErrorType(status), param: param ?? null, code: null },
  });
}

function openAIErrorType(status: number): string {
  if (status === 429) return "rate_limit_error";
  if (status === 401 || status === 403) return "authentication_error";
  if (status === 404) return "not_found_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

function anthropicErrorType(status: number): string {
  if (status === 429) return "rate_limit_error";
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 529) return "overloaded_error";
  return status >= 500 ? "api_error" : "invalid_request_error";
}
