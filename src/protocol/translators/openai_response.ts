// The response side for backends that already answer in OpenAI's shape (OpenAI, every OpenAI-compatible server,
// Azure OpenAI): the bytes go to the client unchanged; usage and the model are read on the way. The one rewrite
// is hiding the usage chunk that costs forced into a stream the client did not ask usage for.
import { sseEvent, SseParser } from "../sse.ts";
import { mergeUsage, type TokenUsage } from "../usage.ts";
import { openAIUsage } from "./openai_usage.ts";
import { clientErrorBody, type ResponseTranslator, type TranslateRequest } from "./translator.ts";

const decoder = new TextDecoder();

export function clientAskedForUsage(body: Readonly<Record<string, unknown>>): boolean {
  return (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
}

export function openAIResponse(r: TranslateRequest): ResponseTranslator {
  const hideUsage = r.stream && r.forceStreamUsage && !clientAskedForUsage(r.body);
  let streaming = r.stream;
  let status = 200;
  let usage: TokenUsage = {};
  let responseModel: string | undefined;
  let failure: string | undefined;
  const sse = new SseParser();
  const buffered: Uint8Array[] = [];

  const readObject = (o: Record<string, unknown>) => {
    if (typeof o.model === "string") responseModel = o.model;
    if (o.usage) usage = mergeUsage(usage, openAIUsage(o.usage));
  };

  const streamed = (chunk: Uint8Array, endOfStream: boolean): Uint8Array => {
    const events = [...sse.push(chunk), ...(endOfStream ? sse.end() : [])];
    if (!hideUsage) {
      for (const e of events) readEvent(e.data);
      return chunk;
    }
    // Rewriting: only the events the client would have seen without the forced include_usage.
    const parts: Uint8Array[] = [];
    for (const e of events) {
      const o = readEvent(e.data);
      if (o && Array.isArray(o.choices) && o.choices.length === 0 && o.usage) continue;
      if (o && "usage" in o) {
        delete o.usage;
        parts.push(sseEvent(JSON.stringify(o), e.event));
      } else parts.push(sseEvent(e.data, e.event));
    }
    return concat(parts);
  };

  const readEvent = (data: string): Record<string, unknown> | undefined => {
    if (data === "[DONE]") return undefined;
    try {
      const o = JSON.parse(data);
      if (typeof o === "object" && o !== null) {
        readObject(o);
        return o;
      }
    } catch {
      failure ??= "An event of the upstream stream is not JSON";
    }
    return undefined;
  };

  return {
    headers(s, headers) {
      status = s;
      streaming = (headers.get("content-type") ?? "").startsWith("text/event-stream");
      return {};
    },
    body(chunk, endOfStream) {
      if (streaming) return streamed(chunk, endOfStream);
      buffered.push(chunk);
      if (!endOfStream) return chunk;
      const whole = decoder.decode(concat(buffered));
      if (whole.length === 0) return chunk;
      try {
        readObject(JSON.parse(whole));
      } catch {
        failure = `The upstream answered ${status} with a body that is not JSON`;
        // A 2xx we cannot read is not something to forward as success.
        if (status < 300) return clientErrorBody("openai", 502, "The upstream returned a response that is not JSON");
      }
      return chunk;
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

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
