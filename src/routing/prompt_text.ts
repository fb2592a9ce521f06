// The text routing looks at, read from a client request body once: the last user turn (what the user asks now,
// which the signals classify), the text guards scan (everything but the model's own turns) and the whole
// conversation (the cache key). OpenAI chat and completions and Anthropic messages; content parts other than text
// (images, audio) carry no text and are skipped.

export interface PromptText {
  /** The last user turn: what classification, keyword and embedding signals look at. */
  readonly query: string;
  /** System, user and tool text: what PII and jailbreak guards scan. */
  readonly guarded: string;
  /** Every turn with its role, in order: what identifies a conversation for the cache. */
  readonly conversation: string;
  /** A rough prompt size in tokens (about four characters a token), for context-length signals and windows. */
  readonly estimatedTokens: number;
}

type Endpoint = "chatCompletions" | "completions" | "messages" | "embeddings";

export function promptText(endpoint: Endpoint, body: Readonly<Record<string, unknown>>): PromptText {
  const turns: { role: string; text: string }[] = [];
  if (endpoint === "completions" || endpoint === "embeddings") {
    const input = endpoint === "completions" ? body.prompt : body.input;
    const text = typeof input === "string" ? input : Array.isArray(input) ? input.filter(isString).join("\n") : "";
    turns.push({ role: "user", text });
  } else {
    if (endpoint === "messages") turns.push({ role: "system", text: contentText(body.system) });
    for (const m of Array.isArray(body.messages) ? body.messages : []) {
      if (typeof m !== "object" || m === null) continue;
      const message = m as Record<string, unknown>;
      const role = typeof message.role === "string" ? message.role : "user";
      turns.push({ role, text: contentText(message.content) });
    }
  }
  const present = turns.filter((t) => t.text.length > 0);
  let query = "";
  for (let i = present.length - 1; i >= 0; i--) {
    if (present[i]!.role === "user") {
      query = present[i]!.text;
      break;
    }
  }
  const guarded = present.filter((t) => t.role !== "assistant").map((t) => t.text).join("\n");
  const conversation = present.map((t) => `${t.role}: ${t.text}`).join("\n");
  return { query, guarded, conversation, estimatedTokens: estimateTokens(present.map((t) => t.text).join("\n")) };
}

/** About four characters of English per token, the rule of thumb OpenAI gives; good enough to pick a window. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

function isString(x: unknown): x is string {
  return typeof x === "string";
}

/** A string, or an array of parts: {type:"text",text} (both APIs), Anthropic tool_result blocks with content. */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  const parts: string[] = [];
  for (const part of content) {
    if (typeof part === "string") parts.push(part);
    else if (typeof part === "object" && part !== null) {
      const p = part as Record<string, unknown>;
      if (typeof p.text === "string") parts.push(p.text);
      else if (p.type === "tool_result") parts.push(contentText(p.content));
    }
  }
  return parts.filter((p) => p.length > 0).join("\n");
}
