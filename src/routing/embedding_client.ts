// Embeddings from an OpenAI-compatible /v1/embeddings endpoint the user runs (vLLM, TEI, Ollama, OpenAI itself),
// for embedding signals and the similarity cache. Each call has a deadline on the injected clock and honours the
// caller's signal; vectors are kept, unit-length, in a bounded LRU so a repeated prompt or an example phrase is
// embedded once, and concurrent requests for the same text share one call.
import type { Clock } from "../observability/clock.ts";
import type { EmbeddingEndpointConfig } from "./config.ts";

export class EmbeddingError extends Error {
  override readonly name = "EmbeddingError";
}

export interface EmbeddingClient {
  /** Unit vectors, one per text, in order. Rejects with EmbeddingError (or the signal's reason when aborted). */
  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]>;
}

export interface EmbeddingDeps {
  readonly fetch: typeof fetch;
  readonly clock: Clock;
}

export function createEmbeddingClient(config: EmbeddingEndpointConfig, deps: EmbeddingDeps): EmbeddingClient {
  return new CachedEmbeddingClient(config, deps);
}

class CachedEmbeddingClient implements EmbeddingClient {
  readonly #config: EmbeddingEndpointConfig;
  readonly #deps: EmbeddingDeps;
  /** Least recently used first. */
  readonly #cache = new Map<string, Float32Array>();
  readonly #inflight = new Map<string, Promise<Float32Array>>();

  constructor(config: EmbeddingEndpointConfig, deps: EmbeddingDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const missing: string[] = [];
    for (const t of texts) {
      if (!this.#cache.has(t) && !this.#inflight.has(t) && !missing.includes(t)) missing.push(t);
    }
    if (missing.length > 0) {
      const batch = this.#fetch(missing, signal);
      missing.forEach((t, i) => {
        const one = batch.then((vectors) => vectors[i]!);
        this.#inflight.set(t, one);
        // The batch's rejection reaches the caller through `one`; this handler only stops it being unhandled here.
        one.then((v) => this.#remember(t, v), () => {}).finally(() => this.#inflight.delete(t));
      });
    }
    return Promise.all(texts.map((t) => this.#lookup(t)));
  }

  #lookup(text: string): Promise<Float32Array> {
    const hit = this.#cache.get(text);
    if (hit) {
      this.#cache.delete(text);
      this.#cache.set(text, hit);
      return Promise.resolve(hit);
    }
    return this.#inflight.get(text)!;
  }

  #remember(text: string, vector: Float32Array): void {
    if (this.#config.cacheEntries <= 0) return;
    this.#cache.delete(text);
    this.#cache.set(text, vector);
    while (this.#cache.size > this.#config.cacheEntries) this.#cache.delete(this.#cache.keys().next().value!);
  }

  async #fetch(input: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const { url, model, timeoutMs } = this.#config;
    const deadline = new AbortController();
    const timer = this.#deps.clock.setTimeout(() => deadline.abort(), timeoutMs);
    const combined = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
    try {
      const res = await this.#deps.fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ model, input }),
        signal: combined,
      });
      if (!res.ok) {
        await res.body?.cancel();
        throw new EmbeddingError(`The embeddings endpoint ${url} answered ${res.status}`);
      }
      return parseEmbeddings(await res.json(), input.length, url);
    } catch (e) {
      if (e instanceof EmbeddingError) throw e;
      if (signal?.aborted) throw signal.reason;
      if (deadline.signal.aborted) {
        throw new EmbeddingError(`The embeddings endpoint ${url} did not answer within ${timeoutMs} ms`);
      }
      throw new EmbeddingError(`Cannot reach the embeddings endpoint ${url}: ${(e as Error).message}`, { cause: e });
    } finally {
      this.#deps.clock.clearTimeout(timer);
    }
  }
}

/** OpenAI's list: {"data": [{"index": i, "embedding": [...]}, ...]}, possibly out of order. */
function parseEmbeddings(json: unknown, count: number, url: string): Float32Array[] {
  const data = (json as { data?: unknown })?.data;
  if (!Array.isArray(data) || data.length !== count) {
    throw new EmbeddingError(`The embeddings endpoint ${url} returned ${describeCount(data)} for ${count} inputs`);
  }
  const out: Float32Array[] = new Array(count);
  data.forEach((item, position) => {
    const { index, embedding } = (item ?? {}) as { index?: unknown; embedding?: unknown };
    const at = typeof index === "number" ? index : position;
    if (!Array.isArray(embedding) || embedding.length === 0 || !embedding.every((x) => typeof x === "number")) {
      throw new EmbeddingError(`The embeddings endpoint ${url} returned an embedding that is not a list of numbers`);
    }
    const unit = toUnit(embedding as number[]);
    if (!unit || at < 0 || at >= count || out[at]) {
      throw new EmbeddingError(`The embeddings endpoint ${url} returned an unusable embedding at index ${at}`);
    }
    out[at] = unit;
  });
  return out;
}

function describeCount(data: unknown): string {
  return Array.isArray(data) ? `${data.length} embeddings` : "no embedding list";
}

function toUnit(v: readonly number[]): Float32Array | undefined {
  let sum = 0;
  for (const x of v) sum += x * x;
  if (!(sum > 0) || !Number.isFinite(sum)) return undefined;
  const norm = Math.sqrt(sum);
  return Float32Array.from(v, (x) => x / norm);
}

/** Cosine similarity of two unit vectors of the same length (0 when the lengths differ). */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return dot;
}
