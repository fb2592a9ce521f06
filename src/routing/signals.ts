// Gathers the signals of one query: the category classifier (built in or remote), keyword rules, embedding
// similarity and context length. Remote calls run concurrently, each with its own deadline; a signal that fails is
// recorded as an error and treated as absent, never as a reason to fail the request.
import type { Clock } from "../observability/clock.ts";
import { type CategoryClassifier, trainCategoryClassifierAsync } from "./category_classifier.ts";
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

const byObject = new WeakMap<ClassifierConfig, Promise<CategoryClassifier>>();
/** By content, so a reloaded config whose examples did not change is not trained again; the last few are kept. */
const byContent = new Map<string, Promise<CategoryClassifier>>();
const KEPT_TRAININGS = 8;

/**
 * The built-in classifier of a config: trained once (at config load, or on first use) without holding the event
 * loop, shared by every config object with the same examples and parameters. Requests that arrive while it trains
 * wait for it.
 */
export function builtinClassifier(config: ClassifierConfig & { kind: "builtin" }): Promise<CategoryClassifier> {
  const known = byObject.get(config);
  if (known) return known;
  const key = JSON.stringify([config.examples, config.l2, config.epochs]);
  let training = byContent.get(key);
  if (!training) {
    training = trainCategoryClassifierAsync(config.examples, { l2: config.l2, epochs: config.epochs });
    byContent.set(key, training);
    while (byContent.size > KEPT_TRAININGS) byContent.delete(byContent.keys().next().value!);
  }
  byObject.set(config, training);
  return training;
}

/** `promise`, or the signal's reason as soon as it aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
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
      const { category, confidence } = (await abortable(builtinClassifier(c), signal)).classify(query);
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
