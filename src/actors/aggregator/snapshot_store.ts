// Aggregator snapshots in the NATS KV bucket TOLLGATE_AGGREGATOR, one per replica:
//
//   head.<replica>              {"v":1,"stream":…,"seq":…,"slot":0|1,"chunks":n,"bytes":…,"sha256":…,"encoding":"gzip"}
//   chunk.<replica>.<slot>.<i>  the gzipped snapshot, cut to fit NATS's max_payload
//
// A snapshot can outgrow one message (a million counters are tens of megabytes of JSON), so it is gzipped and cut
// into chunks. Two slots alternate: the chunks of a new snapshot go to the slot the head does not point to, and the
// head is written last, so a crash mid-write leaves the previous snapshot whole. Keys are reused (history 1), so the
// bucket holds at most two snapshots per replica.
//
// Per replica rather than shared: replicas snapshot at their own pace and never overwrite each other. Every snapshot
// is the fold of a log prefix, so a replica without one of its own (a new replica) starts from the most advanced one
// of any replica instead of replaying the whole stream.
import type { JetStreamClient, KV } from "nats";

export const SNAPSHOT_BUCKET = "TOLLGATE_AGGREGATOR";

export interface LoadedSnapshot {
  /** Whose snapshot it is. */
  readonly replica: string;
  readonly seq: number;
  /** The uncompressed snapshot (AggregatorCore's encoding). */
  readonly bytes: Uint8Array;
}

export interface SnapshotStore {
  /**
   * This replica's snapshot, else the one with the highest sequence of any replica, else undefined. Only snapshots
   * of the stream incarnation `streamId` count: sequences of a deleted and recreated stream start again at 1. Those
   * that fail their checksum are skipped (with `onSkip`).
   */
  load(
    replica: string,
    streamId: string,
    onSkip?: (replica: string, err: Error) => void,
  ): Promise<LoadedSnapshot | undefined>;
  /** Writes a snapshot; saves are queued, never interleaved. Resolves with the compressed size. */
  save(replica: string, streamId: string, seq: number, bytes: Uint8Array): Promise<number>;
}

export interface KvSnapshotStoreOptions {
  readonly bucket?: string;
  /** Of the bucket's stream when this call creates it (1 for one server, 3 for a cluster). */
  readonly replicas?: number;
  /** Largest chunk; default NATS's max_payload less 64 KiB for headers, at most 1 MiB. */
  readonly maxChunkBytes?: number;
  /** The server's max_payload (NatsConnection.info.max_payload; default 1 MiB). */
  readonly maxPayload?: number;
}

interface Head {
  readonly v: 1;
  /** The stream incarnation the sequence belongs to (its name and creation time). */
  readonly stream: string;
  readonly seq: number;
  readonly slot: 0 | 1;
  readonly chunks: number;
  readonly bytes: number;
  readonly sha256: string;
  readonly encoding: "gzip";
}

export class SnapshotStoreError extends Error {
  override readonly name = "SnapshotStoreError";
}

/** Opens (creating if needed) the bucket. */
export async function openSnapshotStore(js: JetStreamClient, o: KvSnapshotStoreOptions = {}): Promise<SnapshotStore> {
  const kv = await js.views.kv(o.bucket ?? SNAPSHOT_BUCKET, {
    history: 1,
    replicas: o.replicas ?? 1,
    // Reads from the stream leader: a head and its chunks come from the same, current copy.
    allow_direct: false,
  });
  const maxPayload = o.maxPayload ?? 1 << 20;
  const chunk = o.maxChunkBytes ?? Math.min(1 << 20, Math.max(4096, maxPayload - (64 << 10)));
  return new KvSnapshotStore(kv, chunk);
}

class KvSnapshotStore implements SnapshotStore {
  readonly #kv: KV;
  readonly #chunk: number;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(kv: KV, chunk: number) {
    this.#kv = kv;
    this.#chunk = chunk;
  }

  async load(
    replica: string,
    streamId: string,
    onSkip?: (replica: string, err: Error) => void,
  ): Promise<LoadedSnapshot | undefined> {
    const heads: { replica: string; head: Head }[] = [];
    for (const key of await this.#keys("head.*")) {
      const owner = key.slice("head.".length);
      const head = await this.#head(owner).catch((err) => (onSkip?.(owner, err as Error), undefined));
      if (head?.stream === streamId) heads.push({ replica: owner, head });
      else if (head) onSkip?.(owner, new SnapshotStoreError(`Snapshot is of another stream (${head.stream})`));
    }
    // Own first, then the most advanced; ties by name, so every replica picks the same one.
    heads.sort((a, b) =>
      Number(b.replica === replica) - Number(a.replica === replica) || b.head.seq - a.head.seq ||
      (a.replica < b.replica ? -1 : 1)
    );
    for (const { replica: owner, head } of heads) {
      try {
        return { replica: owner, seq: head.seq, bytes: await this.#read(owner, head) };
      } catch (err) {
        onSkip?.(owner, err as Error);
      }
    }
    return undefined;
  }

  save(replica: string, streamId: string, seq: number, bytes: Uint8Array): Promise<number> {
    const run = this.#queue.then(() => this.#save(replica, streamId, seq, bytes));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #save(replica: string, stream: string, seq: number, bytes: Uint8Array): Promise<number> {
    checkReplica(replica);
    const previous = await this.#head(replica).catch(() => undefined);
    const slot: 0 | 1 = previous?.slot === 0 ? 1 : 0;
    const packed = await gzip(bytes);
    const chunks = Math.max(1, Math.ceil(packed.length / this.#chunk));
    for (let i = 0; i < chunks; i++) {
      await this.#kv.put(chunkKey(replica, slot, i), packed.subarray(i * this.#chunk, (i + 1) * this.#chunk));
    }
    const sum = await sha256(packed);
    const head: Head = { v: 1, stream, seq, slot, chunks, bytes: packed.length, sha256: sum, encoding: "gzip" };
    await this.#kv.put(`head.${replica}`, new TextEncoder().encode(JSON.stringify(head)));
    // Chunks left in this slot by a bigger snapshot before: not needed any more.
    for (const key of await this.#keys(`chunk.${replica}.${slot}.*`)) {
      if (Number(key.slice(key.lastIndexOf(".") + 1)) >= chunks) await this.#kv.purge(key);
    }
    return packed.length;
  }

  /** Listed in full before anything is read: reading the bucket while nats.js 2.29 lists its keys lost keys. */
  async #keys(filter: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of await this.#kv.keys(filter)) keys.push(key);
    return keys;
  }

  async #head(replica: string): Promise<Head | undefined> {
    const entry = await this.#kv.get(`head.${replica}`);
    if (!entry || entry.operation !== "PUT") return undefined;
    const h = entry.json<Partial<Head>>();
    if (
      h?.v !== 1 || typeof h.stream !== "string" || !Number.isSafeInteger(h.seq) || (h.slot !== 0 && h.slot !== 1) ||
      !Number.isSafeInteger(h.chunks) || h.chunks! < 1 || typeof h.sha256 !== "string" || h.encoding !== "gzip"
    ) {
      throw new SnapshotStoreError(`Snapshot head of replica "${replica}" is not a version 1 head`);
    }
    return h as Head;
  }

  async #read(replica: string, head: Head): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < head.chunks; i++) {
      const entry = await this.#kv.get(chunkKey(replica, head.slot, i));
      if (!entry || entry.operation !== "PUT") {
        throw new SnapshotStoreError(`Snapshot of replica "${replica}" at ${head.seq} misses chunk ${i}`);
      }
      parts.push(entry.value);
    }
    const packed = concat(parts);
    if (packed.length !== head.bytes || await sha256(packed) !== head.sha256) {
      throw new SnapshotStoreError(`Snapshot of replica "${replica}" at ${head.seq} fails its checksum`);
    }
    return await gunzip(packed);
  }
}

/** Replica ids become KV key tokens and subject tokens. */
export function checkReplica(replica: string): void {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(replica)) {
    throw new SnapshotStoreError(`Invalid replica id "${replica}": use 1 to 64 of A-Z a-z 0-9 _ -`);
  }
}

function chunkKey(replica: string, slot: 0 | 1, i: number): string {
  return `chunk.${replica}.${slot}.${i}`;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function pipe(bytes: Uint8Array, through: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(through);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new CompressionStream("gzip"));
}

function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new DecompressionStream("gzip"));
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
