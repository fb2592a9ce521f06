// The semantic cache in a NATS KV bucket, shared by every sidecar: an answer stored by one is a hit for all.
//
//   b.<key>    the entry: {"v":1,"scope","model","text","contentType","body":<base64>,"storedAt","expiresAt"}
//   i.m.<key>  its index record: {"v":1,"scope","model","storedAt","expiresAt","unit":<base64 float32 LE>?}
//   i.t.<key>  the last time any sidecar answered from it: {"v":1,"at"}
//
// <key> is cacheKey() (hex SHA-256 of scope, model and normalised text), so an exact lookup is one KV get. For
// similarity lookups and for the size limit every instance keeps a local index of the i.* records, fed by watching
// the bucket: the body of an entry is fetched only on a hit, so sidecars do not all receive every cached answer.
//
// Expiry: each entry carries its expiresAt (wall-clock ms: sidecars must keep their clocks in sync, as NTP does) and
// is a miss after it. A bucket created by openNatsKvCacheBucket also has max_age = ttlMs, so NATS drops expired
// entries by itself; without it, the instance that next enforces the size limit deletes them.
//
// Size limit: after a store, if the index holds more than maxEntries live entries, the storing instance deletes the
// least recently used ones (by store time and the i.t.* hit times every instance writes, at most one per entry per
// touchIntervalMs). Deletes are conditional on the revision seen, so an entry stored again meanwhile survives. Two
// instances storing at the same moment may both evict, so the bucket can briefly hold a few entries fewer than the
// limit; never durably more.
import type { JetStreamClient, KV, KvEntry, QueuedIterator } from "nats";
import {
  type CachedResponse,
  type CacheHit,
  cacheKey,
  type CacheOptions,
  type CacheQuery,
  DEFAULT_SIMILARITY_THRESHOLD,
  normaliseCacheText,
  type SemanticCache,
  SemanticCacheError,
  unitCosine,
  unitVector,
  validateCacheOptions,
} from "./cache.ts";
import { decodeBase64, decodeUnit, encodeBase64, encodeUnit } from "./cache_codec.ts";

export const SEMANTIC_CACHE_BUCKET = "TOLLGATE_SEMANTIC_CACHE";

export interface NatsKvCacheOptions extends CacheOptions {
  /** Largest entry written, in bytes of its JSON record; a bigger response is not stored. Default 1 MiB − 64 KiB. */
  readonly maxValueBytes?: number;
  /** How often, at most, a hit on one entry is written for the LRU order of other sidecars. Default ttlMs / 10,
   * between 1 s and 60 s. */
  readonly touchIntervalMs?: number;
  /** Epoch milliseconds; injected by tests. */
  readonly now?: () => number;
}

export interface NatsKvCache extends SemanticCache, AsyncDisposable {
  /** Resolves when the local index holds every record that was in the bucket when the watch started. */
  ready(): Promise<void>;
  /** Live entries in the local index. */
  readonly size: number;
  /** Stops the watch and waits for writes in flight. */
  close(): Promise<void>;
}

/** Opens (creating if needed) the shared bucket: one value per key, entries dropped by NATS after ttlMs. */
export function openNatsKvCacheBucket(
  js: JetStreamClient,
  o: { readonly bucket?: string; readonly ttlMs: number; readonly replicas?: number },
): Promise<KV> {
  return js.views.kv(o.bucket ?? SEMANTIC_CACHE_BUCKET, { history: 1, ttl: o.ttlMs, replicas: o.replicas ?? 1 });
}

/** A semantic cache on `kv`, shared with every other instance on the same bucket. */
export function createNatsKvCache(kv: KV, o: NatsKvCacheOptions): NatsKvCache {
  validateCacheOptions(o);
  return new KvCache(kv, o);
}

interface IndexEntry {
  readonly group: string;
  readonly unit: Float32Array | undefined;
  readonly expiresAt: number;
  /** Revision of the i.m record, for conditional deletes. */
  readonly revision: number;
  lastUsed: number;
}

interface BodyRecord {
  readonly v: 1;
  readonly scope: string;
  readonly model: string;
  readonly text: string;
  readonly contentType: string;
  readonly body: string;
  readonly storedAt: number;
  readonly expiresAt: number;
}

interface IndexRecord {
  readonly v: 1;
  readonly scope: string;
  readonly model: string;
  readonly storedAt: number;
  readonly expiresAt: number;
  readonly unit?: string;
}

const encoder = new TextEncoder();
const groupOf = (scope: string, model: string) => JSON.stringify([scope, model]);

class KvCache implements NatsKvCache {
  readonly #kv: KV;
  readonly #o: NatsKvCacheOptions;
  readonly #now: () => number;
  readonly #threshold: number;
  readonly #touchEvery: number;
  readonly #maxValueBytes: number;
  readonly #index = new Map<string, IndexEntry>();
  readonly #touched = new Map<string, number>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #ready: Promise<void>;
  readonly #watching: Promise<void>;
  #watch: QueuedIterator<KvEntry> | undefined;
  #watchError: Error | undefined;
  #closed = false;
  #bucketExpires: Promise<boolean> | undefined;

  constructor(kv: KV, o: NatsKvCacheOptions) {
    this.#kv = kv;
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#threshold = o.threshold ?? DEFAULT_SIMILARITY_THRESHOLD;
    this.#touchEvery = o.touchIntervalMs ?? Math.max(1_000, Math.min(o.ttlMs / 10, 60_000));
    this.#maxValueBytes = o.maxValueBytes ?? (1 << 20) - (64 << 10);
    let initialised!: () => void;
    let failed!: (err: Error) => void;
    this.#ready = new Promise<void>((resolve, reject) => {
      initialised = resolve;
      failed = reject;
    });
    this.#ready.catch(() => {}); // Surfaced by ready() and lookups, not as an unhandled rejection.
    this.#watching = this.#run(initialised, failed);
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  get size(): number {
    const now = this.#now();
    let n = 0;
    for (const e of this.#index.values()) if (e.expiresAt > now) n++;
    return n;
  }

  async lookup(q: CacheQuery, signal?: AbortSignal): Promise<CacheHit | undefined> {
    signal?.throwIfAborted();
    const key = cacheKey(q);
    const similarity = this.#o.mode === "similarity" && q.embedding !== undefined;
    if (!similarity) return await this.#fetch(key, q, 1, signal);
    await abortable(this.#ready, signal);
    if (this.#watchError) {
      throw new SemanticCacheError("Semantic cache index is not being updated", { cause: this.#watchError });
    }
    const unit = unitVector(q.embedding!);
    const group = groupOf(q.scope, q.model);
    const now = this.#now();
    if (this.#index.get(key)?.group === group) return await this.#fetch(key, q, 1, signal);
    if (!unit) return undefined;
    let best: string | undefined;
    let bestSimilarity = -Infinity;
    for (const [k, e] of this.#index) {
      if (e.group !== group || !e.unit || e.expiresAt <= now) continue;
      const s = unitCosine(unit, e.unit);
      if (s !== undefined && s > bestSimilarity) {
        best = k;
        bestSimilarity = s;
      }
    }
    if (best === undefined || bestSimilarity < this.#threshold) return undefined;
    return await this.#fetch(best, undefined, bestSimilarity, signal);
  }

  async store(q: CacheQuery, response: CachedResponse): Promise<void> {
    if (this.#closed) throw new SemanticCacheError("Cannot store in the semantic cache: it is closed");
    const key = cacheKey(q);
    const storedAt = this.#now();
    const expiresAt = storedAt + this.#o.ttlMs;
    const body: BodyRecord = {
      v: 1,
      scope: q.scope,
      model: q.model,
      text: normaliseCacheText(q.text),
      contentType: response.contentType,
      body: encodeBase64(response.body),
      storedAt,
      expiresAt,
    };
    const bodyBytes = encoder.encode(JSON.stringify(body));
    if (bodyBytes.length > this.#maxValueBytes) {
      throw new SemanticCacheError(
        `Response of ${response.body.length} bytes not cached: its entry would exceed ${this.#maxValueBytes} bytes`,
      );
    }
    const unit = this.#o.mode === "similarity" && q.embedding ? unitVector(q.embedding) : undefined;
    const record: IndexRecord = { v: 1, scope: q.scope, model: q.model, storedAt, expiresAt };
    const indexBytes = encoder.encode(JSON.stringify(unit ? { ...record, unit: encodeUnit(unit) } : record));
    let revision: number;
    try {
      // The body first: an index record that a watcher sees always has its body.
      await this.#kv.put(`b.${key}`, bodyBytes);
      revision = await this.#kv.put(`i.m.${key}`, indexBytes);
    } catch (err) {
      throw new SemanticCacheError(`Cannot store in the semantic cache: ${(err as Error).message}`, { cause: err });
    }
    this.#index.set(key, { group: groupOf(q.scope, q.model), unit, expiresAt, revision, lastUsed: storedAt });
    await this.#evict();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.stop();
    await this.#watching;
    await Promise.allSettled([...this.#pending]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Reads b.<key>; a hit when it exists, is unexpired and (for an exact lookup) is the query's own text. */
  async #fetch(
    key: string,
    q: CacheQuery | undefined,
    similarity: number,
    signal: AbortSignal | undefined,
  ): Promise<CacheHit | undefined> {
    let entry: KvEntry | null;
    try {
      entry = await abortable(this.#kv.get(`b.${key}`), signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new SemanticCacheError(`Cannot read the semantic cache: ${(err as Error).message}`, { cause: err });
    }
    if (!entry || entry.operation !== "PUT") return undefined;
    let r: BodyRecord;
    try {
      r = entry.json<BodyRecord>();
    } catch {
      return undefined;
    }
    if (r?.v !== 1 || typeof r.body !== "string" || typeof r.contentType !== "string") return undefined;
    const now = this.#now();
    if (!(r.expiresAt > now)) return undefined;
    if (q && (r.scope !== q.scope || r.model !== q.model || r.text !== normaliseCacheText(q.text))) return undefined;
    this.#touch(key, now);
    return { response: { body: decodeBase64(r.body), contentType: r.contentType }, similarity, key };
  }

  #touch(key: string, now: number): void {
    const e = this.#index.get(key);
    if (e) e.lastUsed = Math.max(e.lastUsed, now);
    if (this.#closed || now - (this.#touched.get(key) ?? -Infinity) < this.#touchEvery) return;
    this.#touched.set(key, now);
    this.#track(this.#kv.put(`i.t.${key}`, encoder.encode(JSON.stringify({ v: 1, at: now }))));
  }

  #track(p: Promise<unknown>): void {
    const settled = p.catch(() => {}).finally(() => this.#pending.delete(settled));
    this.#pending.add(settled);
  }

  async #evict(): Promise<void> {
    const now = this.#now();
    const expired: string[] = [];
    const live: [string, IndexEntry][] = [];
    for (const [k, e] of this.#index) {
      if (e.expiresAt <= now) expired.push(k);
      else live.push([k, e]);
    }
    for (const k of expired) this.#index.delete(k);
    // Without max_age on the bucket nothing else removes expired entries.
    if (expired.length > 0 && !(await this.#bucketHasMaxAge())) {
      for (const k of expired) this.#track(this.#purge(k, undefined));
    }
    if (live.length <= this.#o.maxEntries) return;
    live.sort((a, b) => a[1].lastUsed - b[1].lastUsed || (a[0] < b[0] ? -1 : 1));
    const victims = live.slice(0, live.length - this.#o.maxEntries);
    for (const [k] of victims) this.#index.delete(k);
    await Promise.all(victims.map(([k, e]) => this.#purge(k, e.revision)));
  }

  /** Deletes the entry; with `revision`, only if its index record is still that revision. */
  async #purge(key: string, revision: number | undefined): Promise<void> {
    try {
      await this.#kv.purge(`i.m.${key}`, revision === undefined ? undefined : { previousSeq: revision });
    } catch {
      return; // Stored again since, or already gone: leave it.
    }
    this.#touched.delete(key);
    await Promise.allSettled([this.#kv.purge(`b.${key}`), this.#kv.purge(`i.t.${key}`)]);
  }

  #bucketHasMaxAge(): Promise<boolean> {
    this.#bucketExpires ??= this.#kv.status().then((s) => s.ttl > 0, () => false);
    return this.#bucketExpires;
  }

  async #run(initialised: () => void, failed: (err: Error) => void): Promise<void> {
    try {
      this.#watch = await this.#kv.watch({ key: "i.>", initializedFn: initialised });
      if (this.#closed) this.#watch.stop();
      for await (const entry of this.#watch) this.#apply(entry);
    } catch (err) {
      this.#watchError = err as Error;
      failed(
        new SemanticCacheError(`Cannot watch the semantic cache bucket: ${(err as Error).message}`, { cause: err }),
      );
      return;
    }
    if (!this.#closed) this.#watchError = new SemanticCacheError("The semantic cache watch ended");
    failed(new SemanticCacheError("The semantic cache was closed before its index was loaded"));
  }

  #apply(entry: KvEntry): void {
    const [, kind, key] = entry.key.split(".");
    if (key === undefined) return;
    if (kind === "m") {
      if (entry.operation !== "PUT") {
        this.#index.delete(key);
        return;
      }
      let r: IndexRecord;
      try {
        r = entry.json<IndexRecord>();
      } catch {
        return;
      }
      if (r?.v !== 1 || typeof r.expiresAt !== "number") return;
      const previous = this.#index.get(key);
      this.#index.set(key, {
        group: groupOf(r.scope, r.model),
        unit: typeof r.unit === "string" ? decodeUnit(r.unit) : undefined,
        expiresAt: r.expiresAt,
        revision: entry.revision,
        lastUsed: Math.max(r.storedAt, previous?.lastUsed ?? 0),
      });
    } else if (kind === "t" && entry.operation === "PUT") {
      const e = this.#index.get(key);
      try {
        const at = entry.json<{ at?: unknown }>().at;
        if (e && typeof at === "number") e.lastUsed = Math.max(e.lastUsed, at);
      } catch { /* not a touch record */ }
    }
  }
}

/** Settles with `p`, or rejects with the signal's reason as soon as it aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
