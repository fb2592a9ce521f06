// Where the Anthropic Messages family differs: how a Messages body is framed for each backend, and how each
// backend's streamed answer becomes Anthropic stream events.
//
// - Anthropic: POST {prefix or /v1}/messages, "model" and "stream" in the body, the anthropic-version header.
// - Bedrock InvokeModel: POST /model/{modelId}/invoke (or /invoke-with-response-stream); the model is in the path
//   only (Bedrock rejects "model" and "stream" as extra inputs) and the body carries anthropic_version. The stream is
//   AWS event-stream "chunk" frames whose payload {"bytes": base64} is one Anthropic event's JSON.
//   https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html
// - Vertex AI: POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:rawPredict (or
//   :streamRawPredict); no "model" in the body, anthropic_version instead, "stream" kept. The stream is Anthropic SSE.
//   https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude
import type { BackendSchemaName, ClientError, TranslateRequest, UpstreamRequest } from "./translator.ts";
import { jsonBytes } from "./translator.ts";
import type { AnthropicEvent, Json } from "./anthropic_messages.ts";
import { inexpressible, isJsonObject, parseJson } from "./anthropic_messages.ts";
import { SseParser } from "../sse.ts";
import type { AwsEvent } from "../aws_event_stream.ts";
import { Buffer } from "node:buffer";

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
import { AwsEventStreamParser } from "../aws_event_stream.ts";

/** What a chunk of a streamed body held: the events it completed, then why the rest cannot be read, if so. */
export interface DecodedEvents {
  readonly events: readonly AnthropicEvent[];
  readonly error: string | undefined;
}

/** Turns a backend's streamed body into Anthropic events. Events before an unreadable spot are still returned, so
 * the result does not depend on where the chunks were cut. */
export interface AnthropicStreamDecoder {
  push(chunk: Uint8Array, endOfStream: boolean): DecodedEvents;
}

export interface AnthropicBackend {
  readonly name: BackendSchemaName;
  /** Whether image URLs can be forwarded for the backend to fetch. */
  readonly urlImages: boolean;
  /** Whether a streamed answer arrives as AWS event-stream frames rather than SSE. */
  readonly eventStream: boolean;
  /**
   * The upstream request for a Messages body that still carries "model". `raw`, when given, is the same body as
   * the client sent it, forwarded untouched where the backend takes the body as is.
   */
  frame(body: Json, r: TranslateRequest, raw?: Uint8Array): UpstreamRequest | ClientError;
  streamDecoder(): AnthropicStreamDecoder;
}

const JSON_TYPE = "application/json";

/** One path segment; a lone surrogate (which encodeURIComponent throws on) becomes U+FFFD. */
function segment(s: string): string {
  return encodeURIComponent(s.toWellFormed());
}

function withoutModelAndStream(body: Json): Json {
  const { model: _model, stream: _stream, ...rest } = body;
  return rest;
}

export const anthropicBackend: AnthropicBackend = {
  name: "Anthropic",
  urlImages: true,
  eventStream: false,
  frame(body, r, raw) {
    const headers = { "content-type": JSON_TYPE, "anthropic-version": r.backend.version ?? "2023-06-01" };
    const path = `${r.backend.prefix ?? "/v1"}/messages`;
    if (raw) return { path, headers, body: raw };
    return { path, headers, body: jsonBytes(r.stream ? { ...body, stream: true } : body) };
  },
  streamDecoder: sseDecoder,
};

export const awsAnthropicBackend: AnthropicBackend = {
  name: "AWSAnthropic",
  urlImages: false,
  eventStream: true,
  frame(body, r) {
    if (r.model === "") return inexpressible("AWSAnthropic", "the model id is empty", "model");
    // As the AWS SDK does, the model id is one path segment: ARNs and ":" version suffixes are escaped.
    const path = `/model/${segment(r.model)}/${r.stream ? "invoke-with-response-stream" : "invoke"}`;
    const accept: Record<string, string> = r.stream ? { "x-amzn-bedrock-accept": JSON_TYPE } : { accept: JSON_TYPE };
    const out = { anthropic_version: r.backend.version ?? "bedrock-2023-05-31", ...withoutModelAndStream(body) };
    return { path, headers: { "content-type": JSON_TYPE, ...accept }, body: jsonBytes(out) };
  },
  streamDecoder: awsDecoder,
};

export const gcpAnthropicBackend: AnthropicBackend = {
  name: "GCPAnthropic",
  urlImages: false,
  eventStream: false,
  frame(body, r) {
    const { project, region } = r.location ?? {};
    if (!project || !region) {
      return inexpressible("GCPAnthropic", "the backend has no GCP project and region to build the Vertex AI path");
    }
    if (r.model === "") return inexpressible("GCPAnthropic", "the model name is empty", "model");
    // Vertex model ids carry their version after "@" (claude-sonnet-4@20250514), which stays readable in the path.
    const model = segment(r.model).replaceAll("%40", "@");
    const path = `/v1/projects/${segment(project)}/locations/${segment(region)}` +
      `/publishers/anthropic/models/${model}:${r.stream ? "streamRawPredict" : "rawPredict"}`;
    const out = {
      anthropic_version: r.backend.version ?? "vertex-2023-10-16",
      ...withoutModelAndStream(body),
      ...(r.stream ? { stream: true } : {}),
    };
    return { path, headers: { "content-type": JSON_TYPE }, body: jsonBytes(out) };
  },
  streamDecoder: sseDecoder,
};

function eventOf(text: string, fallbackType?: string): AnthropicEvent | string {
  const data = parseJson(text);
  const type = isJsonObject(data) && typeof data.type === "string" ? data.type : fallbackType;
  if (!isJsonObject(data) || type === undefined) return `an event is not Anthropic JSON: ${text.slice(0, 200)}`;
  return { type, data, raw: text };
}

/** Collects events until the first one that is not an event (a string saying why). */
function collect(items: readonly (AnthropicEvent | string)[], error?: string): DecodedEvents {
  const events: AnthropicEvent[] = [];
  for (const item of items) {
    if (typeof item === "string") return { events, error: item };
    events.push(item);
  }
  return { events, error };
}

function sseDecoder(): AnthropicStreamDecoder {
  const parser = new SseParser();
  return {
    push(chunk, end) {
      const parsed = [...parser.push(chunk), ...(end ? parser.end() : [])];
      return collect(parsed.filter((e) => e.data !== "").map((e) => eventOf(e.data, e.event)));
    },
  };
}

/** Bedrock exceptions, as the Anthropic error types an Anthropic client would have seen. */
const AWS_EXCEPTION_TYPES: Readonly<Record<string, string>> = {
  throttlingException: "rate_limit_error",
  validationException: "invalid_request_error",
  serviceUnavailableException: "overloaded_error",
  modelTimeoutException: "api_error",
  modelStreamErrorException: "api_error",
  internalServerException: "api_error",
};

const utf8 = new TextDecoder();

function awsEvent(e: AwsEvent): AnthropicEvent | string | undefined {
  const payload = parseJson(e.payload);
  if (e.messageType !== "event") {
    const message = isJsonObject(payload) && typeof payload.message === "string" ? payload.message : e.eventType;
    const data = { type: "error", error: { type: AWS_EXCEPTION_TYPES[e.eventType] ?? "api_error", message } };
    return { type: "error", data, raw: JSON.stringify(data) };
  }
  if (e.eventType !== "chunk") return undefined;
  const bytes = isJsonObject(payload) ? payload.bytes : undefined;
  if (typeof bytes !== "string") return "a chunk event has no base64 bytes";
  // Validated, then decoded natively: atob plus a per-character copy cost ~20 µs a chunk.
  if (bytes.length % 4 !== 0 || !BASE64.test(bytes)) return "a chunk event's bytes are not base64";
  return eventOf(utf8.decode(Buffer.from(bytes, "base64")));
}

/**
 * Frames are cut out here and handed to the parser one at a time: the parser decodes (and CRC-checks) a whole
 * chunk at once and throws for all of it, which would lose the good frames before a bad one.
 */
function awsDecoder(): AnthropicStreamDecoder {
  const parser = new AwsEventStreamParser();
  let buffer = new Uint8Array(0);
  let broken: string | undefined;
  return {
    push(chunk, end) {
      if (broken !== undefined) return { events: [], error: broken };
      const joined = new Uint8Array(buffer.length + chunk.length);
      joined.set(buffer);
      joined.set(chunk, buffer.length);
      const items: (AnthropicEvent | string)[] = [];
      let at = 0;
      while (joined.length - at >= 4) {
        const total = new DataView(joined.buffer, at, 4).getUint32(0);
        if (joined.length - at < total) break;
        try {
          for (const e of parser.push(joined.subarray(at, at + Math.max(total, 4)))) {
            const item = awsEvent(e);
            if (item !== undefined) items.push(item);
          }
        } catch (e) {
          items.push(`a frame is corrupt: ${e instanceof Error ? e.message : String(e)}`);
          break;
        }
        at += total;
      }
      buffer = joined.slice(at);
      const cut = end && buffer.length > 0
        ? `the stream ended inside a frame (${buffer.length} bytes left)`
        : undefined;
      const decoded = collect(items, cut);
      broken = decoded.error;
      return decoded;
    },
  };
}
