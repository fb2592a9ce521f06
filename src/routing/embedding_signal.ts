// Embedding signals: a rule fires when the query is close enough (cosine similarity, best or mean over the rule's
// example phrases) to what the rule describes. The examples are embedded once, on first use, through the same
// client and cache as queries; a failed call is retried on the next request rather than remembered.
import { cosine, type EmbeddingClient } from "./embedding_client.ts";
import type { EmbeddingRuleConfig } from "./config.ts";

export interface EmbeddingScore {
  readonly name: string;
  readonly similarity: number;
  readonly matched: boolean;
}

export class EmbeddingSignals {
  readonly #rules: readonly EmbeddingRuleConfig[];
  readonly #client: EmbeddingClient;
  #examples: Promise<Float32Array[][]> | undefined;

  constructor(rules: readonly EmbeddingRuleConfig[], client: EmbeddingClient) {
    this.#rules = rules;
    this.#client = client;
  }

  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /** Scores every rule against the query's unit vector. */
  async score(query: Float32Array, signal?: AbortSignal): Promise<EmbeddingScore[]> {
    const examples = await this.#exampleVectors(signal);
    return this.#rules.map((rule, i) => {
      const sims = examples[i]!.map((e) => cosine(query, e));
      const similarity = rule.aggregation === "max" ? Math.max(...sims) : sims.reduce((a, b) => a + b, 0) / sims.length;
      return { name: rule.name, similarity, matched: similarity >= rule.threshold };
    });
  }

  #exampleVectors(signal: AbortSignal | undefined): Promise<Float32Array[][]> {
    if (!this.#examples) {
      const all = this.#rules.flatMap((r) => r.examples);
      const pending = this.#client.embed(all, signal).then((vectors) => {
        let at = 0;
        return this.#rules.map((r) => vectors.slice(at, at += r.examples.length));
      });
      this.#examples = pending;
      pending.catch(() => {
        if (this.#examples === pending) this.#examples = undefined;
      });
    }
    return this.#examples;
  }
}
