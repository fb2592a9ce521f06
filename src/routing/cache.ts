// The semantic cache: answers a repeated (exact mode) or paraphrased (similarity mode) question from a stored
// response instead of calling a model. Entries never cross a scope (a route, or whatever the caller puts there) or
// a model: the same question to two routes, or routed to two models, are two entries.
//
//   exact       the key is SHA-256 of (scope, model, normalised text); a hit has similarity 1
//   similarity  additionally, the entry of the same scope and model whose embedding has the highest cosine
//               similarity with the query's, when that is ≥ threshold; a query without an embedding is looked up
//               exactly
//
// Entries live ttlMs from when they were stored (a hit does not extend them: answers go stale); at most maxEntries
// are kept and the least recently used (stored or hit) goes first. This file holds the in-memory backend, one per
// process; cache_nats_kv.ts shares one cache between all sidecars.
import { createHash } from "node:crypto";

export interface CacheQuery {
  readonly scope: string;
  readonly model: string;
  readonly text: string;
  readonly embedding?: readonly number[];
}

export interface CachedResponse {
  readonly body: Uint8Array;
  readonly contentType: string;
}

export interface CacheHit {
  /** Shared with the cache: do not modify the body. */
  readonly response: CachedResponse;
  /** 1 for an exact hit, the cosine similarity otherwise. */
  readonly similarity: number;
  /** The entry's key (hex SHA-256), stable across processes. */
  readonly key: string;
}

export interface SemanticCache {
  /** A hit, or undefined. Rejects with SemanticCacheError when the backend fails; callers treat that as a miss. */
  lookup(q: CacheQuery, signal?: AbortSignal): Promise<CacheHit | undefined>;
  /** Stores (or replaces) the entry for `q`. The body is copied. */
  store(q: CacheQuery, response: CachedResponse): Promise<void>;
}

export type CacheMode = "exact" | "similarity";

export interface CacheOptions {
  readonly mode: CacheMode;
  /** Minimum cosine similarity for a similarity hit, in (0, 1]; default 0.9. */
  readonly threshold?: number;
  readonly ttlMs: number;
  readonly maxEntries: number;
}

export interface MemoryCacheOptions extends CacheOptions {
  /** Epoch milliseconds; injected by tests. */
  readonly now?: () => number;
}

export const DEFAULT_SIMILARITY_THRESHOLD = 0.9;

export class SemanticCacheError extends Error {
  override readonly name = "SemanticCacheError";
}

/** Throws a RangeError naming the first invalid option. */
export function validateCacheOptions(o: CacheOptions): void {
  if (o.mode !== "exact" && o.mode !== "similarity") {
    throw new RangeError(`Invalid cache mode "${String(o.mode)}": expected "exact" or "similarity"`);
  }
  if (o.threshold !== undefined && !(o.threshold > 0 && o.threshold <= 1)) {
    throw new RangeError(`Invalid cache similarity threshold ${o.threshold}: expected a number in (0, 1]`);
  }
  if (!(Number.isFinite(o.ttlMs) && o.ttlMs > 0)) {
    throw new RangeError(`Invalid cache ttlMs ${o.ttlMs}: expected a positive number of milliseconds`);
  }
  if (!(Number.isSafeInteger(o.maxEntries) && o.maxEntries >= 1)) {
    throw new RangeError(`Invalid cache maxEntries ${o.maxEntries}: expected an integer ≥ 1`);
  }
}

/**
 * The text as the exact key sees it: Unicode NFC, runs of whitespace as one space, trimmed. Case is kept: code,
 * identifiers and units are case-sensitive, and a wrong hit costs more than a miss.
 */
export function normaliseCacheText(text: string): string {
  return text.normalize("NFC").replace(/\s+/g, " ").trim();
}

/**
 * Hex SHA-256 of the scope, model and normalised text (JSON-encoded, so no separator can be forged). Synchronous
 * node:crypto rather than crypto.subtle: the Web Crypto digest is asynchronous and costs a round trip through the
 * event loop, several times the hash itself for a prompt-sized input.
 */
export function cacheKey(q: Pick<CacheQuery, "scope" | "model" | "text">): string {
  return createHash("sha256").update(JSON.stringify([q.scope, q.model, normaliseCacheText(q.text)])).digest("hex");
}

/** The vector scaled to length 1, or undefined for an empty, zero or non-finite vector. */
export function unitVector(v: readonly number[]): Float32Array | undefined {
  let sum = 0;
  for (const x of v) sum += x * x;
  if (v.length === 0 || !(sum > 0) || !Number.isFinite(sum)) return undefined;
  const norm = Math.sqrt(sum);
  return Float32Array.from(v, (x) => x / norm);
}

/** Cosine similarity of two unit vectors; undefined when their dimensions differ. */
export function unitCosine(a: Float32Array, b: Float32Array): number | undefined {
  if (a.length !== b.length) return undefined;
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return Math.min(1, dot);
}

interface MemoryEntry {
  readonly key: string;
  readonly group: string;
  readonly text: string;
  readonly unit: Float32Array | undefined;
  readonly response: CachedResponse;
  readonly expiresAt: number;
}

function groupOf(q: Pick<CacheQuery, "scope" | "model">): string {
  return JSON.stringify([q.scope, q.model]);
}

export interface MemorySemanticCache extends SemanticCache {
  /** Entries currently held (expired ones are dropped first). */
  readonly size: number;
}

/** An in-memory semantic cache for one process. Throws a RangeError on invalid options. */
export function createMemoryCache(o: MemoryCacheOptions): MemorySemanticCache {
  validateCacheOptions(o);
  return new MemoryCache(o);
}

class MemoryCache implements MemorySemanticCache {
  readonly #o: MemoryCacheOptions;
  readonly #now: () => number;
  readonly #threshold: number;
  /** Least recently used first. */
  readonly #lru = new Map<string, MemoryEntry>();
  /** Soonest to expire first: every entry lives ttlMs from its store, so store order is expiry order. */
  readonly #byExpiry = new Map<string, MemoryEntry>();
  readonly #groups = new Map<string, Set<MemoryEntry>>();

  constructor(o: MemoryCacheOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#threshold = o.threshold ?? DEFAULT_SIMILARITY_THRESHOLD;
  }

  lookup(q: CacheQuery, signal?: AbortSignal): Promise<CacheHit | undefined> {
    // Synchronous work behind the asynchronous interface: errors become rejections, as from any backend.
    try {
      signal?.throwIfAborted();
      return Promise.resolve(this.#lookup(q));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #lookup(q: CacheQuery): CacheHit | undefined {
    const key = cacheKey(q);
    this.#expire();
    const group = groupOf(q);
    const exact = this.#lru.get(key);
    // The key covers scope and model; comparing them and the text as well makes a hash collision a miss.
    if (exact && exact.group === group && exact.text === normaliseCacheText(q.text)) {
      return this.#hit(exact, 1);
    }
    if (this.#o.mode !== "similarity" || q.embedding === undefined) return undefined;
    const unit = unitVector(q.embedding);
    if (!unit) return undefined;
    let best: MemoryEntry | undefined;
    let bestSimilarity = -Infinity;
    for (const entry of this.#groups.get(group) ?? []) {
      const similarity = entry.unit && unitCosine(unit, entry.unit);
      if (similarity !== undefined && similarity > bestSimilarity) {
        best = entry;
        bestSimilarity = similarity;
      }
    }
    return best && bestSimilarity >= this.#threshold ? this.#hit(best, bestSimilarity) : undefined;
  }

  store(q: CacheQuery, response: CachedResponse): Promise<void> {
    try {
      this.#store(q, response);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #store(q: CacheQuery, response: CachedResponse): void {
    const key = cacheKey(q);
    this.#remove(key);
    const entry: MemoryEntry = {
      key,
      group: groupOf(q),
      text: normaliseCacheText(q.text),
      unit: this.#o.mode === "similarity" && q.embedding ? unitVector(q.embedding) : undefined,
      response: { body: response.body.slice(), contentType: response.contentType },
      expiresAt: this.#now() + this.#o.ttlMs,
    };
    this.#lru.set(key, entry);
    this.#byExpiry.set(key, entry);
    if (entry.unit) {
      let set = this.#groups.get(entry.group);
      if (!set) this.#groups.set(entry.group, set = new Set());
      set.add(entry);
    }
    this.#expire();
    for (const oldest of this.#lru.keys()) {
      if (this.#lru.size <= this.#o.maxEntries) break;
      this.#remove(oldest);
    }
  }

  get size(): number {
    this.#expire();
    return this.#lru.size;
  }

  #hit(entry: MemoryEntry, similarity: number): CacheHit {
    this.#lru.delete(entry.key);
    this.#lru.set(entry.key, entry);
    return { response: entry.response, similarity, key: entry.key };
  }

  #expire(): void {
    const now = this.#now();
    for (const [key, entry] of this.#byExpiry) {
      if (entry.expiresAt > now) break;
      this.#remove(key);
    }
  }

  #remove(key: string): void {
    const entry = this.#lru.get(key);
    if (!entry) return;
    this.#lru.delete(key);
    this.#byExpiry.delete(key);
    const set = this.#groups.get(entry.group);
    if (set?.delete(entry) && set.size === 0) this.#groups.delete(entry.group);
  }
}
