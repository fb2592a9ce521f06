// The token estimate of a request before it runs: an upper bound in spirit, cheap to compute, never a tokenizer.
//
// Prompt: the text the model reads (messages, system, tools, prompt, input), at one token per 4 ASCII characters
// (rounded up) plus one token per non-ASCII character (CJK and most other scripts take about one token a character or
// more, so chars/4 would under-count them), plus MESSAGE_OVERHEAD tokens per message and REPLY_PRIMING for a chat.
// An image, audio or file part counts MEDIA_PART tokens whatever its size (its base64 is not text the model reads).
// Output: what the request allows the model to write — max_completion_tokens, max_tokens or max_output_tokens (the
// first one set), times `n` (or `best_of`) choices; the configured default when none is set; never more than the
// configured cap. Embeddings produce no output.
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";

export interface TokenEstimate {
  readonly inputTokens: number;
  readonly outputTokens: number;
}

export interface EstimateOptions {
  /** Output estimate when the request sets no limit. */
  readonly defaultOutputTokens: number;
  /** Cap on the output estimate (per request, all choices together). */
  readonly maxOutputTokens?: number;
}

export const MESSAGE_OVERHEAD = 4;
export const REPLY_PRIMING = 3;
export const MEDIA_PART = 1_600;

const MEDIA_TYPES = new Set([
  "image_url",
  "image",
  "input_image",
  "input_audio",
  "audio",
  "file",
  "input_file",
  "document",
  "video",
]);

type Body = Readonly<Record<string, unknown>>;

export function estimateTokens(
  request: Pick<RoutedRequest, "endpoint" | "body">,
  options: EstimateOptions,
): TokenEstimate {
  const b = request.body;
  switch (request.endpoint) {
    case "chatCompletions":
      return {
        inputTokens: messagesTokens(b.messages) + contentTokens([b.tools, b.functions, b.response_format]) +
          REPLY_PRIMING,
        outputTokens: outputTokens(b, ["max_completion_tokens", "max_tokens", "max_output_tokens"], ["n"], options),
      };
    case "completions":
      return {
        inputTokens: contentTokens([b.prompt, b.suffix]),
        outputTokens: outputTokens(b, ["max_tokens"], ["n", "best_of"], options),
      };
    case "embeddings":
      return { inputTokens: contentTokens(b.input), outputTokens: 0 };
    case "messages":
      return {
        inputTokens: messagesTokens(b.messages) + contentTokens([b.system, b.tools]) + REPLY_PRIMING,
        outputTokens: outputTokens(b, ["max_tokens"], [], options),
      };
  }
}

function messagesTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  return messages.length * MESSAGE_OVERHEAD + contentTokens(messages);
}

function outputTokens(b: Body, limits: readonly string[], choices: readonly string[], o: EstimateOptions): number {
  const limit = limits.map((k) => b[k]).find(isCount) ?? o.defaultOutputTokens;
  const n = Math.max(1, ...choices.map((k) => b[k]).filter(isCount));
  const total = limit * n;
  return o.maxOutputTokens === undefined ? total : Math.min(total, o.maxOutputTokens);
}

function isCount(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

/** Tokens of every string in a JSON value (object keys included: tool schemas are read by the model), walked
 * without recursion so a deeply nested body cannot overflow the stack. */
export function contentTokens(value: unknown): number {
  let tokens = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === "string") tokens += textTokens(v);
    else if (typeof v === "number") tokens += 1; // a token id in a completions prompt
    else if (Array.isArray(v)) { for (const x of v) stack.push(x); }
    else if (typeof v === "object" && v !== null) {
      const type = (v as { type?: unknown }).type;
      if (typeof type === "string" && MEDIA_TYPES.has(type)) {
        tokens += MEDIA_PART;
        continue;
      }
      for (const [k, x] of Object.entries(v)) {
        if (k !== "type") tokens += textTokens(k);
        stack.push(x);
      }
    }
  }
  return tokens;
}

/** ceil(ASCII characters / 4) + one per other character (a surrogate pair is one character). */
export function textTokens(s: string): number {
  let ascii = 0;
  let other = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) ascii++;
    else if (c < 0xdc00 || c > 0xdfff) other++; // a low surrogate completes the pair already counted
  }
  return Math.ceil(ascii / 4) + other;
}
