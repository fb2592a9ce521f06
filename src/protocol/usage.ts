// Token usage as a provider reported it. Every field is unset unless the provider said so: a missing count is
// never a zero, because a zero would be billed and rate-limited as if it were true.

export interface TokenUsage {
  readonly inputTokens?: number;
  readonly outputTokens?: number;
  readonly totalTokens?: number;
  /** Input tokens served from the provider's prompt cache. */
  readonly cachedInputTokens?: number;
  /** Input tokens written into the provider's prompt cache. */
  readonly cacheCreationInputTokens?: number;
  readonly reasoningTokens?: number;
}

const KEYS = [
  "inputTokens",
  "outputTokens",
  "totalTokens",
  "cachedInputTokens",
  "cacheCreationInputTokens",
  "reasoningTokens",
] as const;

/** Later reports win field by field; a field the later report leaves unset keeps its earlier value. */
export function mergeUsage(earlier: TokenUsage, later: TokenUsage): TokenUsage {
  const out: Record<string, number> = {};
  for (const k of KEYS) {
    const v = later[k] ?? earlier[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** A non-negative integer count from provider JSON, or undefined when absent or not a count. */
export function count(v: unknown): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : undefined;
}

/** Builds a usage object keeping only the fields that are set (exactOptionalPropertyTypes-friendly). */
export function usage(fields: { [K in keyof TokenUsage]?: number | undefined }): TokenUsage {
  const out: Record<string, number> = {};
  for (const k of KEYS) if (fields[k] !== undefined) out[k] = fields[k]!;
  return out;
}
