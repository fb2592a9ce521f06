// Decisions combine signals with all/any/not; the highest-priority decision whose condition holds wins (ties keep
// config order). A category condition holds when the classifier's top category is that one with at least the
// condition's confidence (or the router's threshold). Pure: the engine gathers the signals, this decides.
import type { Condition, DecisionConfig } from "./config.ts";

export interface SignalValues {
  /** Absent when no classifier ran or it failed. */
  readonly classification?: { readonly category: string; readonly confidence: number };
  readonly confidenceThreshold: number;
  readonly keywords: ReadonlySet<string>;
  readonly embeddings: ReadonlySet<string>;
  readonly contexts: ReadonlySet<string>;
}

export function holds(c: Condition, s: SignalValues): boolean {
  if ("category" in c) {
    const k = s.classification;
    return k !== undefined && k.category === c.category && k.confidence >= (c.minConfidence ?? s.confidenceThreshold);
  }
  if ("keyword" in c) return s.keywords.has(c.keyword);
  if ("embedding" in c) return s.embeddings.has(c.embedding);
  if ("context" in c) return s.contexts.has(c.context);
  if ("all" in c) return c.all.every((x) => holds(x, s));
  if ("any" in c) return c.any.some((x) => holds(x, s));
  return !holds(c.not, s);
}

/** `decisions` sorted highest priority first (the compiler does it). */
export function firstDecision(decisions: readonly DecisionConfig[], s: SignalValues): DecisionConfig | undefined {
  return decisions.find((d) => holds(d.when, s));
}
