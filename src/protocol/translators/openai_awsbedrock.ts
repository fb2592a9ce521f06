// OpenAI chat completions ↔ AWS Bedrock Converse / ConverseStream (embeddings go to Titan, see
// bedrock_titan_embeddings.ts). The request side is bedrock_converse.ts; this file turns Bedrock's answers into
// chat.completion objects and chat.completion.chunk server-sent events.
//
// Bedrock's answers carry no model, no id and no creation time: the model is the one asked for, the id comes from
// x-amzn-requestid and `created` from the Date header, so a translation depends on its inputs only.
import { AwsEventStreamParser } from "../aws_event_stream.ts";
import type { AwsEvent } from "../aws_event_stream.ts";
import { sseEvent } from "../sse.ts";
import { count, mergeUsage, usage as tokenUsage } from "../usage.ts";
import type { TokenUsage } from "../usage.ts";
import { bedrockTitanEmbeddings } from "./bedrock_titan_embeddings.ts";
import { bedrockErrorBody, bedrockModelPath, toConverseRequest } from "./bedrock_converse.ts";
import { clientErrorBody, jsonBytes } from "./translator.ts";
import type { ClientError, ResponseTranslator, TranslateRequest, Translator, UpstreamRequest } from "./translator.ts";

type Json = Record<string, unknown>;

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DONE = encoder.encode("data: [DONE]\n\n");

export const openaiAwsBedrock: Translator = {
  request(r: TranslateRequest): UpstreamRequest | ClientError {
    if (r.endpoint === "embeddings") return bedrockTitanEmbeddings.request(r);
    if (r.endpoint !== "chatCompletions") {
      const message = `Cannot translate request for AWS Bedrock: the ${r.endpoint} endpoint is not supported`;
      return { status: 422, message };
    }
    const converse = toConverseRequest(r.body);
    if ("status" in converse) return converse;
    const path = bedrockModelPath(r.model, r.stream ? "converse-stream" : "converse");
    if (typeof path !== "string") return path;
    const accept = r.stream ? "application/vnd.amazon.eventstream" : "application/json";
    return { path, headers: { "content-type": "application/json", accept }, body: jsonBytes(converse) };
  },
  response(r: TranslateRequest): ResponseTranslator {
    if (r.endpoint === "embeddings") return bedrockTitanEmbeddings.response(r);
    return r.stream ? new ConverseStreamTranslator(r) : new ConverseTranslator(r);
  },
};

const FINISH_REASONS: Readonly<Record<string, string>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  tool_use: "tool_calls",
  content_filtered: "content_filter",
  guardrail_intervened: "content_filter",
};

/** Bedrock's stop reason as OpenAI's finish_reason; reasons OpenAI has no word for (malformed_*) read as "stop". */
export function finishReason(stopReason: unknown): string {
  return (typeof stopReason === "string" ? FINISH_REASONS[stopReason] : undefined) ?? "stop";
}

/**
 * Bedrock usage → our TokenUsage and OpenAI's usage object. Bedrock's inputTokens leaves out the tokens read from
 * or written to the prompt cache; OpenAI's prompt_tokens (and our inputTokens) count them, with the cached part in
 * prompt_tokens_details.cached_tokens.
 */
export function converseUsage(u: unknown): { usage: TokenUsage; openai: Json | undefined } {
  const o = isObject(u) ? u : {};
  const read = count(o.cacheReadInputTokens);
  const write = count(o.cacheWriteInputTokens);
  const input = count(o.inputTokens);
  const prompt = input === undefined ? undefined : input + (read ?? 0) + (write ?? 0);
  const completion = count(o.outputTokens);
  const total = prompt !== undefined && completion !== undefined ? prompt + completion : count(o.totalTokens);
  const usage = tokenUsage({
    inputTokens: prompt,
    outputTokens: completion,
    totalTokens: total,
    cachedInputTokens: read,
    cacheCreationInputTokens: write,
  });
  if (prompt === undefined && completion === undefined && total === undefined) return { usage, openai: undefined };
  return {
    usage,
    openai: {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: total,
      ...(read !== undefined ? { prompt_tokens_details: { cached_tokens: read } } : {}),
    },
  };
}

/** What every answer to one request shares: the envelope (id, created, model) and the handling of errors. */
abstract class BedrockAnswer {
  usage: TokenUsage = {};
  readonly responseModel = undefined;
  failure: string | undefined;
  protected status = 200;
  protected upstreamHeaders: ReadonlyMap<string, string> = new Map();
  #error: Uint8Array[] = [];
  #identity: { id: string; created: number } | undefined;

  constructor(protected readonly request: TranslateRequest) {}

  protected get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** Computed once per answer (the hash fallback reads the whole request body), after headers() has run. */
  protected envelope(object: string): { id: string; object: string; created: number; model: string } {
    if (!this.#identity) {
      const requestId = this.upstreamHeaders.get("x-amzn-requestid");
      const date = Date.parse(this.upstreamHeaders.get("date") ?? "");
      this.#identity = {
        id: `chatcmpl-${requestId ?? fnv1a(this.request.rawBody)}`,
        created: Number.isNaN(date) ? 0 : Math.floor(date / 1000),
      };
    }
    return { id: this.#identity.id, object, created: this.#identity.created, model: this.request.model };
  }

  /** A non-2xx answer is buffered whole and becomes one OpenAI error object. */
  protected errorBody(chunk: Uint8Array, endOfStream: boolean): Uint8Array {
    this.#error.push(chunk);
    return endOfStream ? bedrockErrorBody(this.status, this.upstreamHeaders, concat(this.#error)) : EMPTY;
  }
}

class ConverseTranslator extends BedrockAnswer implements ResponseTranslator {
  #chunks: Uint8Array[] = [];

  headers(status: number, headers: ReadonlyMap<string, string>): Readonly<Record<string, string>> {
    this.status = status;
    this.upstreamHeaders = headers;
    return { "content-type": "application/json" };
  }

  body(chunk: Uint8Array, endOfStream: boolean): Uint8Array {
    if (!this.ok) return this.errorBody(chunk, endOfStream);
    this.#chunks.push(chunk);
    if (!endOfStream) return EMPTY;
    let answer: unknown;
    try {
      answer = JSON.parse(decoder.decode(concat(this.#chunks)));
    } catch {
      answer = undefined;
    }
    const message = isObject(answer) && isObject(answer.output) ? answer.output.message : undefined;
    if (!isObject(answer) || !isObject(message) || !Array.isArray(message.content)) {
      this.failure = "Bedrock Converse answer is not JSON with output.message.content";
      return clientErrorBody("openai", 502, "AWS Bedrock returned a response the gateway could not read");
    }
    const { usage, openai } = converseUsage(answer.usage);
    this.usage = usage;
    return jsonBytes({
      ...this.envelope("chat.completion"),
      choices: [{
        index: 0,
        message: chatMessage(message.content),
        logprobs: null,
        finish_reason: finishReason(answer.stopReason),
      }],
      ...(openai ? { usage: openai } : {}),
    });
  }
}

/** Text blocks are joined into one content string; toolUse blocks become tool_calls; reasoning becomes
 * reasoning_content, the field OpenAI-compatible reasoning servers use. */
function chatMessage(blocks: readonly unknown[]): Json {
  let text: string | undefined;
  let reasoning: string | undefined;
  const calls: Json[] = [];
  for (const b of blocks) {
    if (!isObject(b)) continue;
    if (typeof b.text === "string") text = (text ?? "") + b.text;
    else if (isObject(b.toolUse) && typeof b.toolUse.name === "string") {
      const { toolUseId, name, input } = b.toolUse;
      calls.push({ id: toolUseId, type: "function", function: { name, arguments: JSON.stringify(input ?? {}) } });
    } else if (isObject(b.reasoningContent) && isObject(b.reasoningContent.reasoningText)) {
      const t = b.reasoningContent.reasoningText.text;
      if (typeof t === "string") reasoning = (reasoning ?? "") + t;
    }
  }
  return {
    role: "assistant",
    content: text ?? (calls.length > 0 ? null : ""),
    ...(reasoning !== undefined ? { reasoning_content: reasoning } : {}),
    ...(calls.length > 0 ? { tool_calls: calls } : {}),
  };
}

/** AWS event-stream frames → chat.completion.chunk events, one upstream event at a time. */
class ConverseStreamTranslator extends BedrockAnswer implements ResponseTranslator {
  readonly #parser = new AwsEventStreamParser();
  /** The client asked for the usage chunk; usage forced for costs alone is recorded but not shown. */
  readonly #showUsage: boolean;
  /** contentBlockIndex of each toolUse block → its index among the tool calls. */
  readonly #toolIndex = new Map<number, number>();
  #roleSent = false;
  #stopped = false;
  #done = false;

  constructor(request: TranslateRequest) {
    super(request);
    const options = request.body.stream_options;
    this.#showUsage = isObject(options) && options.include_usage === true;
  }

  headers(status: number, headers: ReadonlyMap<string, string>): Readonly<Record<string, string>> {
    this.status = status;
    this.upstreamHeaders = headers;
    return { "content-type": this.ok ? "text/event-stream" : "application/json" };
  }

  body(chunk: Uint8Array, endOfStream: boolean): Uint8Array {
    if (!this.ok) return this.errorBody(chunk, endOfStream);
    if (this.#done) return EMPTY;
    const out: Uint8Array[] = [];
    let events: AwsEvent[];
    try {
      events = this.#parser.push(chunk);
    } catch (e) {
      events = [];
      this.#fail(out, 502, `Bedrock event stream is corrupt: ${e instanceof Error ? e.message : String(e)}`);
    }
    for (const event of events) {
      if (!this.#done) this.#event(event, out);
    }
    if (endOfStream && !this.#done) {
      if (this.#parser.pending > 0 || !this.#stopped) this.#fail(out, 502, "Bedrock event stream ended early");
      else this.#finish(out);
    }
    return concat(out);
  }

  #event(e: AwsEvent, out: Uint8Array[]): void {
    let payload: unknown;
    try {
      payload = e.payload.length === 0 ? {} : JSON.parse(decoder.decode(e.payload));
    } catch {
      return this.#fail(out, 502, `Bedrock event ${e.eventType || e.messageType} is not JSON`);
    }
    const p = isObject(payload) ? payload : {};
    if (e.messageType !== "event") {
      const message = typeof p.message === "string" ? p.message : typeof p.Message === "string" ? p.Message : "";
      const status = EXCEPTION_STATUS[e.eventType] ?? 500;
      return this.#fail(out, status, `${e.eventType || "Bedrock stream error"}: ${message}`, message || undefined);
    }
    const index = typeof p.contentBlockIndex === "number" ? p.contentBlockIndex : 0;
    const start = isObject(p.start) ? p.start : {};
    const delta = isObject(p.delta) ? p.delta : {};
    if (e.eventType === "messageStart") this.#role(out);
    else if (e.eventType === "contentBlockStart" && isObject(start.toolUse)) {
      const k = this.#toolIndex.size;
      this.#toolIndex.set(index, k);
      const { toolUseId: id, name } = start.toolUse;
      this.#chunk(out, { tool_calls: [{ index: k, id, type: "function", function: { name, arguments: "" } }] });
    } else if (e.eventType === "contentBlockDelta") {
      const k = this.#toolIndex.get(index);
      const reasoning = isObject(delta.reasoningContent) ? delta.reasoningContent.text : undefined;
      if (typeof delta.text === "string") this.#chunk(out, { content: delta.text });
      else if (isObject(delta.toolUse) && typeof delta.toolUse.input === "string" && k !== undefined) {
        this.#chunk(out, { tool_calls: [{ index: k, function: { arguments: delta.toolUse.input } }] });
      } else if (typeof reasoning === "string") this.#chunk(out, { reasoning_content: reasoning });
    } else if (e.eventType === "messageStop") {
      this.#stopped = true;
      this.#chunk(out, {}, finishReason(p.stopReason));
    } else if (e.eventType === "metadata") {
      const { usage, openai } = converseUsage(p.usage);
      this.usage = mergeUsage(this.usage, usage);
      if (this.#showUsage && openai) out.push(this.#sse({ ...this.envelope(CHUNK), choices: [], usage: openai }));
    }
  }

  #role(out: Uint8Array[]): void {
    if (this.#roleSent) return;
    this.#roleSent = true;
    this.#chunk(out, { role: "assistant", content: "" });
  }

  #chunk(out: Uint8Array[], delta: Json, finish: string | null = null): void {
    if (!this.#roleSent && !("role" in delta)) this.#role(out);
    const choice = { index: 0, delta, logprobs: null, finish_reason: finish };
    // With include_usage, OpenAI sends "usage": null on every chunk but the last one.
    const usage = this.#showUsage ? { usage: null } : {};
    out.push(this.#sse({ ...this.envelope(CHUNK), choices: [choice], ...usage }));
  }

  #sse(value: unknown): Uint8Array {
    return sseEvent(JSON.stringify(value));
  }

  /** Mid-stream the status is already sent: the error travels as one more event, then [DONE]. */
  #fail(out: Uint8Array[], status: number, failure: string, message?: string): void {
    this.failure = failure;
    const text = message ?? "AWS Bedrock returned a stream the gateway could not read";
    out.push(sseEvent(decoder.decode(clientErrorBody("openai", status, text))));
    this.#finish(out);
  }

  #finish(out: Uint8Array[]): void {
    out.push(DONE);
    this.#done = true;
  }
}

const CHUNK = "chat.completion.chunk";

/** HTTP statuses of ConverseStream's exception events, as the API reference gives them. */
const EXCEPTION_STATUS: Readonly<Record<string, number>> = {
  internalServerException: 500,
  modelStreamErrorException: 424,
  serviceUnavailableException: 503,
  throttlingException: 429,
  validationException: 400,
};

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A stable stand-in id when Bedrock sent no request id: the same request always gets the same one. */
function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}
