// The response side of the Anthropic-client translators: the client already speaks the backend's schema, so the
// answer goes through as it came, except where the framing differs (Bedrock's event-stream becomes Anthropic SSE,
// a Bedrock or Vertex error becomes Anthropic's error envelope). Usage and the model are read along the way.
// Not thread-safe: one per attempt.
import type { ResponseTranslator, TranslateRequest } from "./translator.ts";
import { clientErrorBody } from "./translator.ts";
import type { TokenUsage } from "../usage.ts";
import { sseEvent } from "../sse.ts";
import type { AnthropicEvent, AnthropicUsageReport } from "./anthropic_messages.ts";
import {
  concatBytes,
  isAnthropicErrorBody,
  isJsonObject,
  mergeAnthropicUsage,
  parseJson,
  readAnthropicUsage,
  tokenUsageOf,
  upstreamErrorMessage,
} from "./anthropic_messages.ts";
import type { AnthropicBackend } from "./anthropic_backends.ts";

const EMPTY = new Uint8Array(0);

export function anthropicResponseTranslator(r: TranslateRequest, backend: AnthropicBackend): ResponseTranslator {
  // Only the Anthropic API answers exactly what an Anthropic client expects, errors included.
  const native = backend.name === "Anthropic";
  let mode: "stream" | "buffer" | "error" = r.stream ? "stream" : "buffer";
  let status = 200;
  const buffered: Uint8Array[] = [];
  const decoder = backend.streamDecoder();
  let report: AnthropicUsageReport = {};
  let responseModel: string | undefined;
  let failure: string | undefined;
  let closed = false;

  // message_start carries the model and the input counts, message_delta the cumulative output count.
  const observe = (e: AnthropicEvent): void => {
    const message = e.type === "message_start" && isJsonObject(e.data.message) ? e.data.message : undefined;
    if (message && typeof message.model === "string") responseModel = message.model;
    const reported = message ? message.usage : e.type === "message_delta" ? e.data.usage : undefined;
    if (reported !== undefined) report = mergeAnthropicUsage(report, readAnthropicUsage(reported));
  };

  const streamBody = (chunk: Uint8Array, end: boolean): Uint8Array => {
    // Anthropic SSE goes through as it came, even past a spot it cannot read (only the usage is lost then).
    if (closed) return backend.eventStream ? EMPTY : chunk;
    const decoded = decoder.push(chunk, end);
    decoded.events.forEach(observe);
    const out = backend.eventStream ? decoded.events.map((e) => sseEvent(e.raw, e.type)) : [chunk];
    if (decoded.error !== undefined) {
      failure = `Cannot read the ${backend.name} stream: ${decoded.error}`;
      closed = true;
      if (backend.eventStream) {
        out.push(sseEvent(new TextDecoder().decode(clientErrorBody("anthropic", 502, failure)), "error"));
      }
    }
    return concatBytes(out);
  };

  const wholeBody = (body: Uint8Array): Uint8Array => {
    const json = parseJson(body);
    if (mode === "error") {
      return isAnthropicErrorBody(json)
        ? body
        : clientErrorBody("anthropic", status, upstreamErrorMessage(body, status));
    }
    if (isJsonObject(json)) {
      report = readAnthropicUsage(json.usage);
      if (typeof json.model === "string") responseModel = json.model;
    }
    return body;
  };

  return {
    headers(upstreamStatus) {
      status = upstreamStatus;
      if (status < 200 || status > 299) mode = "error";
      if (native) return {};
      return { "content-type": mode === "stream" ? "text/event-stream" : "application/json" };
    },
    body(chunk, endOfStream) {
      if (mode === "stream") return streamBody(chunk, endOfStream);
      if (mode === "error" && native) return chunk;
      buffered.push(chunk);
      // A successful answer goes through as it comes; an error is rewritten once it is whole.
      if (mode === "buffer") {
        if (endOfStream) wholeBody(concatBytes(buffered));
        return chunk;
      }
      return endOfStream ? wholeBody(concatBytes(buffered)) : EMPTY;
    },
    get usage(): TokenUsage {
      return tokenUsageOf(report);
    },
    get responseModel() {
      return responseModel;
    },
    get failure() {
      return failure;
    },
  };
}
