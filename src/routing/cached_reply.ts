// The semantic cache stores one shape, a complete OpenAI chat.completion (JSON), whatever the client asked for:
// a streamed answer is assembled into one before it is stored, and a hit is rendered back as
// chat.completion.chunk events ending with `data: [DONE]` when the client asked for a stream. Pure.
import { SseParser } from "../protocol/sse.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface CachedBody {
  readonly body: Uint8Array;
  readonly contentType: string;
}

type Json = Record<string, unknown>;

/** The cached completion as the client wants it: the JSON itself, or SSE chunks. */
export function renderCachedReply(cached: CachedBody, stream: boolean): CachedBody {
  if (!stream) return cached;
  let completion: Json;
  try {
    completion = JSON.parse(decoder.decode(cached.body)) as Json;
  } catch {
    throw new Error("The cached response is not JSON");
  }
  const base = {
    id: completion.id ?? "chatcmpl-cached",
    object: "chat.completion.chunk",
    created: completion.created ?? 0,
    model: completion.model ?? "",
  };
  const events: Json[] = [];
  const choices = Array.isArray(completion.choices) ? completion.choices as Json[] : [];
  for (const [position, choice] of choices.entries()) {
    const index = typeof choice.index === "number" ? choice.index : position;
    const message = (choice.message ?? {}) as Json;
    const delta: Json = { role: message.role ?? "assistant", content: message.content ?? "" };
    if (message.refusal !== undefined && message.refusal !== null) delta.refusal = message.refusal;
    if (Array.isArray(message.tool_calls)) {
      delta.tool_calls = (message.tool_calls as Json[]).map((call, i) => ({ index: i, ...call }));
    }
    events.push({ ...base, choices: [{ index, delta, logprobs: null, finish_reason: null }] });
    events.push({
      ...base,
      choices: [{ index, delta: {}, logprobs: null, finish_reason: choice.finish_reason ?? "stop" }],
    });
  }
  const text = events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n";
  return { body: encoder.encode(text), contentType: "text/event-stream" };
}

interface ChoiceState {
  role: string;
  content: string;
  refusal: string | undefined;
  toolCalls: Map<number, { id?: string; type?: string; name: string; arguments: string }>;
  finishReason: string | null;
}

/**
 * A streamed chat answer (OpenAI chunks, as the client received them) as one chat.completion, or undefined when
 * the stream is not complete (no `[DONE]`), carries an error, or has a chunk that is not JSON. A choice that never
 * said why it finished finished normally ("stop"): the stream did end.
 */
export function assembleChatStream(sse: Uint8Array): Uint8Array | undefined {
  const parser = new SseParser();
  const events = [...parser.push(sse), ...parser.end()];
  let head: Json | undefined;
  let usage: unknown;
  let done = false;
  const choices = new Map<number, ChoiceState>();
  for (const e of events) {
    if (e.data === "[DONE]") {
      done = true;
      continue;
    }
    let chunk: Json;
    try {
      chunk = JSON.parse(e.data) as Json;
    } catch {
      return undefined;
    }
    if (chunk.error !== undefined) return undefined;
    head ??= chunk;
    if (chunk.usage) usage = chunk.usage;
    for (const c of Array.isArray(chunk.choices) ? chunk.choices as Json[] : []) {
      const index = typeof c.index === "number" ? c.index : 0;
      let state = choices.get(index);
      if (!state) {
        state = { role: "assistant", content: "", refusal: undefined, toolCalls: new Map(), finishReason: null };
        choices.set(index, state);
      }
      const delta = (c.delta ?? {}) as Json;
      if (typeof delta.role === "string") state.role = delta.role;
      if (typeof delta.content === "string") state.content += delta.content;
      if (typeof delta.refusal === "string") state.refusal = (state.refusal ?? "") + delta.refusal;
      for (const t of Array.isArray(delta.tool_calls) ? delta.tool_calls as Json[] : []) {
        const at = typeof t.index === "number" ? t.index : 0;
        const call = state.toolCalls.get(at) ?? { name: "", arguments: "" };
        const fn = (t.function ?? {}) as Json;
        if (typeof t.id === "string") call.id = t.id;
        if (typeof t.type === "string") call.type = t.type;
        if (typeof fn.name === "string") call.name += fn.name;
        if (typeof fn.arguments === "string") call.arguments += fn.arguments;
        state.toolCalls.set(at, call);
      }
      if (typeof c.finish_reason === "string") state.finishReason = c.finish_reason;
    }
  }
  if (!done || !head || choices.size === 0) return undefined;
  const completion: Json = {
    id: head.id,
    object: "chat.completion",
    created: head.created,
    model: head.model,
    choices: [...choices.entries()].sort((a, b) => a[0] - b[0]).map(([index, c]) => ({
      index,
      message: {
        role: c.role,
        content: c.toolCalls.size > 0 && c.content === "" ? null : c.content,
        ...(c.refusal === undefined ? {} : { refusal: c.refusal }),
        ...(c.toolCalls.size > 0
          ? {
            tool_calls: [...c.toolCalls.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => ({
              id: t.id,
              type: t.type ?? "function",
              function: { name: t.name, arguments: t.arguments },
            })),
          }
          : {}),
      },
      logprobs: null,
      finish_reason: c.finishReason ?? "stop",
    })),
    ...(usage === undefined ? {} : { usage }),
  };
  return encoder.encode(JSON.stringify(completion));
}
