// The response side of the OpenAI-client translators of the Anthropic family: a backend's answer (message JSON, SSE
// or Bedrock event-stream) becomes an OpenAI chat.completion, chat.completion.chunk SSE ending in `data: [DONE]`, or
// OpenAI's error envelope. Not thread-safe: one per attempt.
import type { ResponseTranslator, TranslateRequest } from "./translator.ts";
import { clientErrorBody, jsonBytes } from "./translator.ts";
import type { TokenUsage } from "../usage.ts";
import { sseEvent } from "../sse.ts";
import { concatBytes, isJsonObject, parseJson, tokenUsageOf, upstreamErrorMessage } from "./anthropic_messages.ts";
import type { AnthropicBackend } from "./anthropic_backends.ts";
import { anthropicMessageToOpenAI } from "./anthropic_response_mapping.ts";
import type { OpenAIStreamState } from "./anthropic_stream_mapping.ts";
import { initialOpenAIStreamState, stepOpenAIStream, usageChunk } from "./anthropic_stream_mapping.ts";

/** Wall-clock time in milliseconds since the epoch, for `created`: injected so tests pin it. */
export type WallClock = () => number;

const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder();

export function openAIResponseTranslator(
  r: TranslateRequest,
  backend: AnthropicBackend,
  now: WallClock,
): ResponseTranslator {
  const created = Math.floor(now() / 1000);
  // With forceStreamUsage the client did not ask: the usage is still read (Anthropic always reports it in the
  // stream), but the chunk carrying it is not sent.
  const includeUsage = isJsonObject(r.body.stream_options) && r.body.stream_options.include_usage === true;
  let mode: "stream" | "buffer" | "error" = r.stream ? "stream" : "buffer";
  let status = 200;
  const buffered: Uint8Array[] = [];
  const decoder = backend.streamDecoder();
  let state: OpenAIStreamState = initialOpenAIStreamState(r.model, created);
  let closed = false;
  let usage: TokenUsage = {};
  let responseModel: string | undefined;
  let failure: string | undefined;

  const errorEvent = (code: number, message: string) => sseEvent(utf8.decode(clientErrorBody("openai", code, message)));
  const failStream = (why: string): Uint8Array => {
    failure = why;
    closed = true;
    return errorEvent(502, why);
  };

  const streamBody = (chunk: Uint8Array, end: boolean): Uint8Array => {
    if (closed) return EMPTY;
    const out: Uint8Array[] = [];
    const decoded = decoder.push(chunk, end);
    for (const event of decoded.events) {
      const step = stepOpenAIStream(state, event);
      state = step.state;
      for (const c of step.chunks) out.push(sseEvent(JSON.stringify(c)));
      if (state.error) {
        failure = `The ${backend.name} stream reported an error: ${state.error.message}`;
        out.push(errorEvent(state.error.status, state.error.message));
        closed = true;
        break;
      }
      if (state.stopped) {
        const last = includeUsage ? usageChunk(state) : undefined;
        if (last) out.push(sseEvent(JSON.stringify(last)));
        out.push(sseEvent("[DONE]"));
        closed = true;
        break;
      }
    }
    usage = tokenUsageOf(state.usage);
    responseModel = state.reportedModel;
    if (!closed && decoded.error !== undefined) {
      out.push(failStream(`Cannot read the ${backend.name} stream: ${decoded.error}`));
    } else if (end && !closed) out.push(failStream(`The ${backend.name} stream ended before message_stop`));
    return concatBytes(out);
  };

  const wholeBody = (body: Uint8Array): Uint8Array => {
    if (mode === "error") return clientErrorBody("openai", status, upstreamErrorMessage(body, status));
    const mapped = anthropicMessageToOpenAI(parseJson(body), r.model, created);
    if (!mapped) {
      failure = `The ${backend.name} answer is not an Anthropic message`;
      return clientErrorBody("openai", 502, failure);
    }
    usage = tokenUsageOf(mapped.usage);
    responseModel = mapped.model;
    return jsonBytes(mapped.completion);
  };

  return {
    headers(upstreamStatus) {
      status = upstreamStatus;
      if (status < 200 || status > 299) mode = "error";
      return { "content-type": mode === "stream" ? "text/event-stream" : "application/json" };
    },
    body(chunk, endOfStream) {
      if (mode === "stream") return streamBody(chunk, endOfStream);
      buffered.push(chunk);
      return endOfStream ? wholeBody(concatBytes(buffered)) : EMPTY;
    },
    get usage() {
      return usage;
    },
    get responseModel() {
      return responseModel;
    },
    get failure() {
      return failure;
    },
  };
}
