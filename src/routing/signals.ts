// Gathers the signals of one query: the category classifier (built in or remote), keyword rules, embedding
// similarity and context length. Remote calls run concurrently, each with its own deadline; a signal that fails is
// recorded as an error and treated as absent, never as a reason to fail the request.
import type { Clock } from "../observability/clock.ts";
import { type CategoryClassifier, trainCategoryClassifier } from "./category_classifier.ts";
import type { ClassifierConfig, ContextRuleConfig } from "./config.ts";
import type { EmbeddingClient } from "./embedding_client.ts";
import type { EmbeddingScore, EmbeddingSignals } from "./embedding_signal.ts";
import type { KeywordSignal } from "./keyword_signal.ts";
import { classifyRemote } from "./remote_classifier.ts";

export interface GatheredSignals {
  readonly classification?: { readonly category: string; readonly confidence: number };
  readonly classifierError?: string;
  readonly keywords: ReadonlySet<string>;
  readonly embeddingScores: readonly EmbeddingScore[];
  readonly embeddingError?: string;
  readonly contexts: ReadonlySet<string>;
}

export interface SignalSources {
  readonly classifier: ClassifierConfig;
  readonly keywords: readonly KeywordSignal[];
  readonly embeddings: EmbeddingSignals | undefined;
  readonly embeddingClient: EmbeddingClient | undefined;
  readonly contexts: readonly ContextRuleConfig[];
  readonly fetch: typeof fetch;
  readonly clock: Clock;
}

const trained = new WeakMap<ClassifierConfig, CategoryClassifier>();

/** The built-in classifier of a config, trained once per config object (at load, or on first use). */
export function builtinClassifier(config: ClassifierConfig & { kind: "builtin" }): CategoryClassifier {
  let c = trained.get(config);
  if (!c) {
    c = trainCategoryClassifier(config.examples, { l2: config.l2, epochs: config.epochs });
    trained.set(config, c);
  }
  return c;
}

export async function gatherSignals(
  s: SignalSources,
  query: string,
  estimatedTokens: number,
  signal: AbortSignal,
): Promise<GatheredSignals> {
  const keywords = new Set(s.keywords.filter((k) => k.matches(query)).map((k) => k.name));
  const contexts = new Set(
    s.contexts.filter((c) =>
      (c.minTokens === undefined || estimatedTokens >= c.minTokens) &&
      (c.maxTokens === undefined || estimatedTokens <= c.maxTokens)
    ).map((c) => c.name),
  );
  const [classified, embedded] = await Promise.all([
    classify(s, query, signal),
    embeddingScores(s, query, signal),
  ]);
  return { keywords, contexts, ...classified, ...embedded };
}

async function classify(
  s: SignalSources,
  query: string,
  signal: AbortSignal,
): Promise<Pick<GatheredSignals, "classification" | "classifierError">> {
  const c = s.classifier;
  if (c.kind === "none") return {};
  if (query.trim() === "") return { classifierError: "the request has no user text to classify" };
  try {
    if (c.kind === "builtin") {
      const { category, confidence } = builtinClassifier(c).classify(query);
      return { classification: { category, confidence } };
    }
    const result = await classifyRemote(
      query,
      { url: c.url, timeoutMs: c.timeoutMs, fetch: s.fetch, clock: s.clock },
      signal,
    );
    return { classification: result };
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    return { classifierError: (e as Error).message };
  }
}

async function embeddingScores(
  s: SignalSources,
  query: string,
  signal: AbortSignal,
): Promise<Pick<GatheredSignals, "embeddingScores" | "embeddingError">> {
  if (!s.embeddings || s.embeddings.empty || !s.embeddingClient || query.trim() === "") return { embeddingScores: [] };
  try {
    const [vector] = await s.embeddingClient.embed([query], signal);
    return { embeddingScores: await s.embeddings.score(vector!, signal) };
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    return { embeddingScores: [], embeddingError: (e as Error).message };
  }
}
