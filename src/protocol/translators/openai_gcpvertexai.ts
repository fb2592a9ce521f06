// OpenAI chat completions to Gemini on Vertex AI (generateContent, and streamGenerateContent?alt=sse when the client
// streams). The mapping lives in gemini_request_mapping.ts (request) and gemini_response_mapping.ts (response); this
// file holds the path and the per-stream response translator.
// https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference
import { sseEvent, SseParser } from "../sse.ts";
import type { TokenUsage } from "../usage.ts";
import { BACKEND_NAME, isObject, Rejection } from "./gemini_request_fields.ts";
import { toGenerateContentRequest } from "./gemini_request_mapping.ts";
import {
  initialStreamState,
  readGeminiResponse,
  type ResponseIds,
  type StreamContext,
  streamEnd,
  streamEvent,
  type StreamState,
  toChatCompletion,
  vertexErrorMessage,
} from "./gemini_response_mapping.ts";
import {
  type ClientError,
  clientErrorBody,
  jsonBytes,
  type ResponseTranslator,
  type TranslateRequest,
  type Translator,
  type UpstreamRequest,
} from "./translator.ts";

export interface VertexAiTranslatorOptions {
  /** For a response without responseId (Vertex sends one): the base of the completion and tool call ids. */
  readonly newId?: () => string;
  /** For a response without createTime (Vertex sends one): `created`, in seconds. */
  readonly nowSeconds?: () => number;
}

export function openaiGcpVertexAiTranslator(options: VertexAiTranslatorOptions = {}): Translator {
  const ids: ResponseIds = {
    newId: options.newId ?? (() => crypto.randomUUID().replaceAll("-", "")),
    nowSeconds: options.nowSeconds ?? (() => Math.floor(Date.now() / 1000)),
  };
  return {
    request: translateRequest,
    response: (r) => new VertexAiResponse(r, ids),
  };
}

export const openaiGcpVertexAi: Translator = openaiGcpVertexAiTranslator();

function translateRequest(r: TranslateRequest): UpstreamRequest | ClientError {
  if (r.endpoint !== "chatCompletions") {
    return { status: 422, message: `Cannot translate ${r.endpoint} for ${BACKEND_NAME}: only chat completions are` };
  }
  const project = r.location?.project;
  const region = r.location?.region;
  if (!project || !region) {
    return {
      status: 422,
      message: `Cannot reach ${BACKEND_NAME}: the GCP project and region are required in the BackendSecurityPolicy`,
    };
  }
  let body: Uint8Array;
  try {
    body = jsonBytes(toGenerateContentRequest(r.body));
  } catch (e) {
    if (e instanceof Rejection) return e.error;
    throw e;
  }
  // The host (aiplatform.googleapis.com for "global", {region}-aiplatform.googleapis.com otherwise) is the
  // backend's; the path names the project, region and model.
  const model = `projects/${encodeURIComponent(project)}/locations/${encodeURIComponent(region)}/publishers/google/` +
    `models/${encodeURIComponent(r.model)}`;
  const method = r.stream ? "streamGenerateContent?alt=sse" : "generateContent";
  return { path: `/v1/${model}:${method}`, headers: { "content-type": "application/json" }, body };
}

const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder();
const DONE = sseEvent("[DONE]");

/** Per stream, not thread-safe: one instance per upstream response. */
class VertexAiResponse implements ResponseTranslator {
  readonly #r: TranslateRequest;
  readonly #ids: ResponseIds;
  readonly #stream: StreamContext;
  #status = 200;
  #buffered: Uint8Array[] = [];
  #sse = new SseParser();
  #state: StreamState = initialStreamState;
  #usage: TokenUsage = {};
  #responseModel: string | undefined;
  #failure: string | undefined;
  #finished = false;

  constructor(r: TranslateRequest, ids: ResponseIds) {
    this.#r = r;
    this.#ids = ids;
    const options = r.body.stream_options;
    const includeUsage = isObject(options) && options.include_usage === true;
    this.#stream = { requestModel: r.model, includeUsage, ids };
  }

  get usage(): TokenUsage {
    return this.#usage;
  }
  get responseModel(): string | undefined {
    return this.#responseModel;
  }
  get failure(): string | undefined {
    return this.#failure;
  }

  get #streaming(): boolean {
    return this.#r.stream && this.#status >= 200 && this.#status < 300;
  }

  headers(status: number, _headers: ReadonlyMap<string, string>): Readonly<Record<string, string>> {
    this.#status = status;
    return { "content-type": this.#streaming ? "text/event-stream" : "application/json" };
  }

  body(chunk: Uint8Array, endOfStream: boolean): Uint8Array {
    if (this.#finished) return EMPTY;
    if (this.#streaming) return this.#streamed(chunk, endOfStream);
    this.#buffered.push(chunk);
    if (!endOfStream) return EMPTY;
    this.#finished = true;
    const text = decoder.decode(concat(this.#buffered));
    this.#buffered = [];
    return this.#status >= 200 && this.#status < 300 ? this.#completion(text) : this.#error(this.#status, text);
  }

  #completion(text: string): Uint8Array {
    const json = parseJson(text);
    const error = vertexErrorMessage(json);
    if (error !== undefined) return this.#fail(502, `${BACKEND_NAME} answered with an error: ${error}`, error);
    if (!isObject(json)) return this.#fail(502, `${BACKEND_NAME} answered with a body that is not a JSON object`);
    const response = readGeminiResponse(json);
    this.#usage = response.usage ?? {};
    this.#responseModel = response.modelVersion;
    return jsonBytes(toChatCompletion(response, this.#r.model, this.#ids));
  }

  #error(status: number, text: string): Uint8Array {
    const message = vertexErrorMessage(parseJson(text));
    if (message !== undefined) return clientErrorBody("openai", status, message);
    this.#failure = `${BACKEND_NAME} error body (HTTP ${status}) is not JSON: ${text.slice(0, 200)}`;
    return clientErrorBody("openai", status, `${BACKEND_NAME} answered HTTP ${status}`);
  }

  #fail(status: number, message: string, why = message): Uint8Array {
    this.#failure = why;
    return clientErrorBody("openai", status, message);
  }

  #streamed(chunk: Uint8Array, endOfStream: boolean): Uint8Array {
    const events = this.#sse.push(chunk);
    if (endOfStream) events.push(...this.#sse.end());
    const out: Uint8Array[] = [];
    for (const event of events) {
      if (event.data === "" || event.data === "[DONE]") continue;
      const json = parseJson(event.data);
      const error = vertexErrorMessage(json);
      if (error !== undefined) {
        out.push(this.#streamError(error, `${BACKEND_NAME} sent an error event: ${error}`));
        return concat(out);
      }
      if (!isObject(json)) {
        out.push(this.#streamError(`${BACKEND_NAME} sent a stream event that is not a JSON object`));
        return concat(out);
      }
      const response = readGeminiResponse(json);
      const next = streamEvent(this.#state, response, this.#stream);
      this.#state = next.state;
      this.#usage = next.state.usage;
      this.#responseModel = response.modelVersion ?? this.#responseModel;
      for (const c of next.chunks) out.push(sseEvent(JSON.stringify(c)));
    }
    if (endOfStream) {
      this.#finished = true;
      const end = streamEnd(this.#state, this.#stream);
      if (end.failure !== undefined) {
        out.push(this.#streamError(end.failure));
        return concat(out);
      }
      for (const c of end.chunks) out.push(sseEvent(JSON.stringify(c)));
      out.push(DONE);
    }
    return concat(out);
  }

  /** The OpenAI SDKs raise an event carrying "error" as an APIError; nothing follows it. */
  #streamError(message: string, why = message): Uint8Array {
    this.#finished = true;
    this.#failure = why;
    return sseEvent(decoder.decode(clientErrorBody("openai", 502, message)));
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
