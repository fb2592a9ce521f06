// The OpenAI-compatible surface the router stream answers: which paths exist, which methods they take, and how
// a request body becomes a routing decision. Pure: the stream machine calls these and emits the result.
import type { GatewaySnapshot } from "../../control/snapshot.ts";
import type { OpenAIError } from "./errors.ts";

export type EndpointKind = "chatCompletions" | "completions" | "embeddings" | "messages" | "models";

export interface Endpoint {
  readonly kind: EndpointKind;
  /** Whose API this is, and so whose error format the client expects. */
  readonly api: "openai" | "anthropic";
  readonly path: string;
  readonly method: "GET" | "POST";
  /** Whether the body carries `model`, so routing waits for it. */
  readonly routedByBody: boolean;
}

const ENDPOINTS: readonly Endpoint[] = [
  { kind: "chatCompletions", api: "openai", path: "/v1/chat/completions", method: "POST", routedByBody: true },
  { kind: "completions", api: "openai", path: "/v1/completions", method: "POST", routedByBody: true },
  { kind: "embeddings", api: "openai", path: "/v1/embeddings", method: "POST", routedByBody: true },
  { kind: "models", api: "openai", path: "/v1/models", method: "GET", routedByBody: false },
  { kind: "messages", api: "anthropic", path: "/anthropic/v1/messages", method: "POST", routedByBody: true },
];

/** The API a path belongs to, for answering errors in the right format even on unknown paths. */
export function apiOfPath(path: string): "openai" | "anthropic" {
  return pathOnly(path).startsWith("/anthropic/") ? "anthropic" : "openai";
}
const BY_PATH = new Map(ENDPOINTS.map((e) => [e.path, e]));

/** Path without its query string. */
export function pathOnly(path: string): string {
  const q = path.indexOf("?");
  return q < 0 ? path : path.slice(0, q);
}

/** A JSON media type, or none at all (then the body must still parse as JSON). */
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

export function findEndpoint(method: string, path: string, contentType?: string): Endpoint | OpenAIError {
  const p = pathOnly(path);
  const endpoint = BY_PATH.get(p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p);
  if (!endpoint) {
    return {
      status: 404,
      type: "not_found_error",
      code: "unknown_path",
      message: `Unknown path ${JSON.stringify(p)}: this gateway serves ${ENDPOINTS.map((e) => e.path).join(", ")}`,
      details: "tollgate_unknown_path",
    };
  }
  if (method !== endpoint.method) {
    return {
      status: 405,
      type: "invalid_request_error",
      code: "method_not_allowed",
      message: `Method ${method} is not allowed on ${endpoint.path}; use ${endpoint.method}`,
      details: "tollgate_method_not_allowed",
      headers: { allow: endpoint.method },
    };
  }
  if (endpoint.routedByBody && contentType !== undefined && !JSON_TYPE.test(contentType)) {
    return {
      status: 415,
      type: "invalid_request_error",
      code: "unsupported_media_type",
      message: `Content-Type ${
        JSON.stringify(contentType)
      } is not supported on ${endpoint.path}; send application/json`,
      details: "tollgate_unsupported_media_type",
    };
  }
  return endpoint;
}

export function isEndpoint(e: Endpoint | OpenAIError): e is Endpoint {
  return "kind" in e;
}

/** What the router learned from a request body: enough to route it and to account for it later. */
export interface RoutedRequest {
  readonly endpoint: Exclude<EndpointKind, "models">;
  readonly api: "openai" | "anthropic";
  readonly model: string;
  readonly stream: boolean;
  /** The body exactly as the client sent it; attempts translate from this, so retries start from the same bytes. */
  readonly rawBody: Uint8Array;
  readonly body: Readonly<Record<string, unknown>>;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function malformed(message: string, param: string | null = null): OpenAIError {
  return {
    status: 400,
    type: "invalid_request_error",
    code: "invalid_request_body",
    param,
    message,
    details: "tollgate_malformed_body",
  };
}

/** Model names travel in a header (x-ai-eg-model), so anything that is not a printable header value is refused. */
const MODEL_NAME = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/;

export function routeRequestBody(
  endpoint: Endpoint,
  rawBody: Uint8Array,
  snapshot: GatewaySnapshot,
): RoutedRequest | OpenAIError {
  if (rawBody.length === 0) return malformed(`The request body of ${endpoint.path} is empty; send a JSON object`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(rawBody));
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return malformed(`The request body is not valid JSON: ${why}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return malformed("The request body must be a JSON object");
  }
  const body = parsed as Record<string, unknown>;
  const model = body.model;
  if (typeof model !== "string" || model.length === 0) {
    return malformed("'model' is required and must be a non-empty string", "model");
  }
  if (!MODEL_NAME.test(model)) {
    return malformed("'model' must be printable ASCII of at most 256 characters", "model");
  }
  if (body.stream !== undefined && typeof body.stream !== "boolean") {
    return malformed("'stream' must be a boolean", "stream");
  }
  if ((endpoint.kind === "chatCompletions" || endpoint.kind === "messages") && !Array.isArray(body.messages)) {
    return malformed("'messages' is required and must be an array", "messages");
  }
  if (!snapshot.acceptsAnyModel && !snapshot.modelIds.has(model)) {
    return {
      status: 404,
      type: "not_found_error",
      code: "model_not_found",
      param: "model",
      message: `The model ${JSON.stringify(model)} does not exist on this gateway`,
      details: "tollgate_unknown_model",
    };
  }
  const kind = endpoint.kind as RoutedRequest["endpoint"];
  return { endpoint: kind, api: endpoint.api, model, stream: body.stream === true, rawBody, body };
}

/** GET /v1/models, answered locally in OpenAI's list format. */
export function modelsListBody(snapshot: GatewaySnapshot): string {
  return JSON.stringify({
    object: "list",
    data: snapshot.models.map((m) => ({ id: m.id, object: "model", created: m.created, owned_by: m.ownedBy })),
  });
}
