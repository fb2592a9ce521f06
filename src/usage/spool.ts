// The usage spool: a bounded, append-only local file that holds encoded usage events while NATS is away, so the
// sidecar keeps serving and nothing is lost. Records come back out in the order they went in, across restarts.
//
// File layout: the 8-byte header "TGSPOOL1", then frames `u32 length | u32 crc32(payload) | payload`, big endian.
//   payload kind 1, an event:  u8 1 | u16 id length | id | u16 subject length | subject | event bytes
//   payload kind 2, a marker:  u8 2 | f64 n — the first n events of this file are done (acked or evicted)
// Acknowledging appends a marker instead of rewriting the file; the file is truncated when everything is done and
// rewritten (to a temporary file, then renamed over) once the done part outweighs the live part. A frame whose
// length or checksum does not hold is a torn write (the process died mid-append): it and anything after it are
// dropped when the spool is opened. One process at a time: the file is locked while open.
//
// Every operation is synchronous on purpose: callers (the usage publisher's actors) interleave appends with a replay
// in progress, and a synchronous spool makes each operation atomic with respect to the others.
const MAGIC = new TextEncoder().encode("TGSPOOL1");
const HEADER = MAGIC.length;
const FRAME_HEAD = 8;
const KIND_EVENT = 1;
const KIND_DONE = 2;
const MAX_FIELD = 0xffff;
const MAX_FRAME = 64 * 1024 * 1024;

export type OverflowPolicy = "drop-oldest" | "reject-new";

export interface SpoolOptions {
  readonly path: string;
  /** Limit on the bytes of records not yet acknowledged (frames included). */
  readonly maxBytes: number;
  /** Limit on the number of records not yet acknowledged. */
  readonly maxRecords: number;
  /** When full: evict the oldest records to make room, or refuse the new one. */
  readonly overflow: OverflowPolicy;
  /** fdatasync after every write: survives a machine crash, not just a process crash, at a disk flush each. */
  readonly sync?: boolean;
  /** Rewrite the file once this many bytes of it are done and they outweigh the live part (default 1 MiB). */
  readonly compactBytes?: number;
}

export interface SpooledRecord {
  /** Position in this spool, increasing; valid until the spool is closed. */
  readonly index: number;
  readonly id: string;
  readonly subject: string;
  readonly bytes: Uint8Array;
}

export type AppendResult =
  | { readonly accepted: true; readonly index: number; readonly evicted: number }
  | { readonly accepted: false; readonly reason: "full" | "too_large" };

export interface SpoolRecovery {
  /** Records waiting in the file when it was opened. */
  readonly records: number;
  /** Bytes of a torn or corrupt tail that were cut off when it was opened (0 when the file was whole). */
  readonly tornBytes: number;
}

export class SpoolError extends Error {
  override readonly name = "SpoolError";
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEAD + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint32(4, crc32(payload));
  out.set(payload, FRAME_HEAD);
  return out;
}

function eventPayload(id: Uint8Array, subject: Uint8Array, bytes: Uint8Array): Uint8Array {
  const p = new Uint8Array(5 + id.length + subject.length + bytes.length);
  const view = new DataView(p.buffer);
  p[0] = KIND_EVENT;
  view.setUint16(1, id.length);
  p.set(id, 3);
  view.setUint16(3 + id.length, subject.length);
  p.set(subject, 5 + id.length);
  p.set(bytes, 5 + id.length + subject.length);
  return p;
}

function markerFrame(done: number): Uint8Array {
  const p = new Uint8Array(9);
  p[0] = KIND_DONE;
  new DataView(p.buffer).setFloat64(1, done);
  return frame(p);
}

function decodeEvent(index: number, payload: Uint8Array): SpooledRecord {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const idLength = view.getUint16(1);
  const subjectAt = 3 + idLength;
  const subjectLength = view.getUint16(subjectAt);
  return {
    index,
    id: decoder.decode(payload.subarray(3, subjectAt)),
    subject: decoder.decode(payload.subarray(subjectAt + 2, subjectAt + 2 + subjectLength)),
    bytes: payload.slice(subjectAt + 2 + subjectLength),
  };
}

function readAt(file: Deno.FsFile, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  file.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = file.readSync(buf.subarray(done));
    if (n === null) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

function writeAt(file: Deno.FsFile, offset: number, data: Uint8Array): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < data.length) done += file.writeSync(data.subarray(done));
}

function openLocked(path: string, create: boolean): Deno.FsFile {
  const file = Deno.openSync(path, { read: true, write: true, create });
  if (!file.tryLockSync(true)) {
    file.close();
    throw new SpoolError(`Cannot open usage spool ${path}: another process has it open`);
  }
  return file;
}

export class Spool implements Disposable {
  readonly path: string;
  readonly recovered: SpoolRecovery;
  readonly #options: SpoolOptions;
  readonly #compactBytes: number;
  #file: Deno.FsFile;
  #end = HEADER;
  /** Live (not yet done) event frames of the file, oldest first, from #head on. */
  #offsets: number[] = [];
  #sizes: number[] = [];
  #head = 0;
  #liveBytes = 0;
  /** Events of this file that are done (the count its markers carry). */
  #doneInFile = 0;
  /** The index of the file's first event frame, so indices keep increasing across compactions. */
  #fileBase = 0;
  #closed = false;

  private constructor(options: SpoolOptions) {
    if (!(options.maxBytes > 0) || !(options.maxRecords > 0)) {
      throw new SpoolError(`Cannot open usage spool ${options.path}: maxBytes and maxRecords must be positive`);
    }
    this.path = options.path;
    this.#options = options;
    this.#compactBytes = options.compactBytes ?? 1024 * 1024;
    try {
      Deno.removeSync(`${options.path}.compact`);
    } catch { /* no interrupted compaction */ }
    this.#file = openLocked(options.path, true);
    try {
      this.recovered = this.#scan();
    } catch (err) {
      this.#file.close();
      throw err;
    }
  }

  /** Opens (or creates) the spool file and continues where the last process left it. */
  static open(options: SpoolOptions): Spool {
    return new Spool(options);
  }

  /** Records waiting (appended, not yet acknowledged or evicted). */
  get records(): number {
    return this.#offsets.length - this.#head;
  }

  /** Bytes of the records waiting, as counted against maxBytes. */
  get bytes(): number {
    return this.#liveBytes;
  }

  /** Size of the file, done records and markers included. */
  get fileBytes(): number {
    return this.#end;
  }

  /** The index the next appended record gets. */
  get nextIndex(): number {
    return this.#fileBase + this.#offsets.length - this.#head + this.#doneInFile;
  }

  append(id: string, subject: string, bytes: Uint8Array): AppendResult {
    this.#assertOpen();
    const idBytes = encoder.encode(id);
    const subjectBytes = encoder.encode(subject);
    if (idBytes.length > MAX_FIELD || subjectBytes.length > MAX_FIELD) return { accepted: false, reason: "too_large" };
    const record = frame(eventPayload(idBytes, subjectBytes, bytes));
    if (record.length > this.#options.maxBytes || record.length > MAX_FRAME) {
      return { accepted: false, reason: "too_large" };
    }
    let evict = 0;
    let freed = 0;
    while (
      this.records - evict + 1 > this.#options.maxRecords ||
      this.#liveBytes - freed + record.length > this.#options.maxBytes
    ) {
      if (this.#options.overflow === "reject-new") return { accepted: false, reason: "full" };
      freed += this.#sizes[this.#head + evict]!;
      evict++;
    }
    if (evict > 0) this.#markDone(evict);
    const index = this.nextIndex;
    writeAt(this.#file, this.#end, record);
    this.#sync();
    this.#offsets.push(this.#end);
    this.#sizes.push(record.length);
    this.#end += record.length;
    this.#liveBytes += record.length;
    if (evict > 0) this.#maybeCompact();
    return { accepted: true, index, evicted: evict };
  }

  /** Up to `n` of the oldest waiting records, oldest first, without removing them. */
  peekBatch(n: number): SpooledRecord[] {
    this.#assertOpen();
    const count = Math.min(n, this.records);
    if (count <= 0) return [];
    const first = this.#head;
    const last = first + count - 1;
    const start = this.#offsets[first]!;
    const span = readAt(this.#file, start, this.#offsets[last]! + this.#sizes[last]! - start);
    const firstIndex = this.#indexOf(first);
    const out: SpooledRecord[] = [];
    for (let i = first; i <= last; i++) {
      const at = this.#offsets[i]! - start;
      out.push(decodeEvent(firstIndex + i - first, span.subarray(at + FRAME_HEAD, at + this.#sizes[i]!)));
    }
    return out;
  }

  /** Removes every waiting record up to and including `upToIndex`; returns how many were removed. */
  ack(upToIndex: number): number {
    this.#assertOpen();
    const count = Math.min(this.records, upToIndex - this.#indexOf(this.#head) + 1);
    if (count <= 0) return 0;
    this.#markDone(count);
    this.#maybeCompact();
    return count;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #indexOf(position: number): number {
    return this.#fileBase + this.#doneInFile + position - this.#head;
  }

  #sumSizes(n: number): number {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += this.#sizes[this.#head + i]!;
    return sum;
  }

  #markDone(count: number): void {
    this.#liveBytes -= this.#sumSizes(count);
    this.#head += count;
    this.#doneInFile += count;
    const marker = markerFrame(this.#doneInFile);
    writeAt(this.#file, this.#end, marker);
    this.#sync();
    this.#end += marker.length;
    if (this.#head > 1024 && this.#head * 2 > this.#offsets.length) {
      this.#offsets = this.#offsets.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }

  #maybeCompact(): void {
    if (this.records === 0) {
      this.#fileBase += this.#doneInFile;
      this.#file.truncateSync(HEADER);
      this.#sync();
      this.#reset(HEADER, [], []);
      return;
    }
    const dead = this.#end - HEADER - this.#liveBytes;
    if (dead >= this.#compactBytes && dead >= this.#liveBytes) this.#rewrite();
  }

  /** Copies the live frames to a new file and renames it over the old one (atomic: either file is whole). */
  #rewrite(): void {
    const tmpPath = `${this.path}.compact`;
    const tmp = openLocked(tmpPath, true);
    const offsets: number[] = [];
    const sizes: number[] = [];
    try {
      tmp.truncateSync(0);
      writeAt(tmp, 0, MAGIC);
      let end = HEADER;
      let i = this.#head;
      while (i < this.#offsets.length) {
        // Read runs of adjacent frames at once (markers interleave with events where acks happened).
        const start = this.#offsets[i]!;
        let j = i;
        let runEnd = start + this.#sizes[i]!;
        while (j + 1 < this.#offsets.length && this.#offsets[j + 1] === runEnd && runEnd - start < 1024 * 1024) {
          j++;
          runEnd += this.#sizes[j]!;
        }
        writeAt(tmp, end, readAt(this.#file, start, runEnd - start));
        for (let k = i; k <= j; k++) {
          offsets.push(end);
          sizes.push(this.#sizes[k]!);
          end += this.#sizes[k]!;
        }
        i = j + 1;
      }
      if (this.#options.sync) tmp.syncDataSync();
      Deno.renameSync(tmpPath, this.path);
    } catch (err) {
      tmp.close();
      throw err;
    }
    this.#file.close();
    this.#file = tmp;
    this.#fileBase += this.#doneInFile;
    this.#reset(offsets.length ? offsets[offsets.length - 1]! + sizes[sizes.length - 1]! : HEADER, offsets, sizes);
  }

  #reset(end: number, offsets: number[], sizes: number[]): void {
    this.#end = end;
    this.#offsets = offsets;
    this.#sizes = sizes;
    this.#head = 0;
    this.#doneInFile = 0;
  }

  #scan(): SpoolRecovery {
    const size = this.#file.statSync().size;
    if (size < HEADER) {
      // New, or torn while its header was being written.
      this.#file.truncateSync(0);
      writeAt(this.#file, 0, MAGIC);
      this.#sync();
      return { records: 0, tornBytes: size };
    }
    const data = readAt(this.#file, 0, size);
    if (!MAGIC.every((b, i) => data[i] === b)) {
      throw new SpoolError(`Cannot open usage spool ${this.path}: the file is not a usage spool (bad header)`);
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const offsets: number[] = [];
    const sizes: number[] = [];
    let done = 0;
    let at = HEADER;
    while (at + FRAME_HEAD <= size) {
      const length = view.getUint32(at);
      if (length === 0 || length > MAX_FRAME || at + FRAME_HEAD + length > size) break;
      const payload = data.subarray(at + FRAME_HEAD, at + FRAME_HEAD + length);
      if (crc32(payload) !== view.getUint32(at + 4)) break;
      if (payload[0] === KIND_EVENT && length >= 5) {
        offsets.push(at);
        sizes.push(FRAME_HEAD + length);
      } else if (payload[0] === KIND_DONE && length === 9) {
        done = Math.max(done, Math.min(offsets.length, view.getFloat64(at + FRAME_HEAD + 1)));
      } else {
        break;
      }
      at += FRAME_HEAD + length;
    }
    const tornBytes = size - at;
    if (tornBytes > 0) {
      this.#file.truncateSync(at);
      this.#sync();
    }
    this.#end = at;
    this.#offsets = offsets;
    this.#sizes = sizes;
    this.#head = done;
    this.#doneInFile = done;
    this.#fileBase = -done;
    this.#liveBytes = this.#sumSizes(offsets.length - done);
    const records = offsets.length - done;
    if (records === 0 && at > HEADER) {
      this.#fileBase = 0;
      this.#file.truncateSync(HEADER);
      this.#reset(HEADER, [], []);
    }
    return { records, tornBytes };
  }

  #sync(): void {
    if (this.#options.sync) this.#file.syncDataSync();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SpoolError(`Cannot use usage spool ${this.path}: it is closed`);
  }
}
