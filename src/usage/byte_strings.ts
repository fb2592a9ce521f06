// Strings by their UTF-8 bytes, for readers that meet the same few thousand strings over and over (the usage event
// reader): a string found here is the same object every time, so maps keyed by it hash it once, and nothing is
// decoded twice. Bounded: past `max` strings the table starts afresh.

// ignoreBOM: these decode parts of a document, where a leading U+FEFF belongs to the string.
const ascii = new TextDecoder("utf-8", { ignoreBOM: true });
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Strings by their bytes: open addressing on an FNV-1a hash, the bytes compared in full on a hash match. A string
 * found here was decoded (and, if not ASCII, checked as UTF-8) when it was first seen.
 */
export class ByteStrings {
  readonly #max: number;
  readonly #maxBytes: number;
  readonly #mask: number;
  #hashes: Int32Array;
  #bytes: (Uint8Array | undefined)[];
  #values: string[];
  #size = 0;
  /** The bytes of the string `get` last returned (a copy the table owns; undefined when too long to keep). */
  lastBytes: Uint8Array | undefined = undefined;

  constructor(max: number, maxBytes: number) {
    let slots = 16;
    while (slots < max * 2) slots *= 2;
    this.#max = max;
    this.#maxBytes = maxBytes;
    this.#mask = slots - 1;
    this.#hashes = new Int32Array(slots);
    this.#bytes = new Array(slots).fill(undefined);
    this.#values = new Array(slots).fill("");
  }

  /** The string of b[start, end), whose FNV-1a hash is `hash`; undefined when the bytes are not UTF-8. */
  get(b: Uint8Array, start: number, end: number, hash: number, isAscii: boolean): string | undefined {
    const length = end - start;
    if (length > this.#maxBytes) {
      this.lastBytes = undefined;
      return decode(b, start, end, isAscii);
    }
    const mask = this.#mask;
    let slot = hash & mask;
    for (;;) {
      const known = this.#bytes[slot];
      if (known === undefined) break;
      if (this.#hashes[slot] === hash && known.length === length && same(known, b, start)) {
        this.lastBytes = known;
        return this.#values[slot]!;
      }
      slot = (slot + 1) & mask;
    }
    const value = decode(b, start, end, isAscii);
    if (value === undefined) return undefined;
    if (this.#size >= this.#max) {
      this.#clear();
      slot = hash & mask;
    }
    this.#hashes[slot] = hash;
    const copy = b.slice(start, end);
    this.#bytes[slot] = copy;
    this.#values[slot] = value;
    this.lastBytes = copy;
    this.#size++;
    return value;
  }

  #clear(): void {
    this.#hashes.fill(0);
    this.#bytes.fill(undefined);
    this.#values.fill("");
    this.#size = 0;
  }
}

function same(known: Uint8Array, b: Uint8Array, start: number): boolean {
  for (let k = 0; k < known.length; k++) if (known[k] !== b[start + k]) return false;
  return true;
}

function decode(b: Uint8Array, start: number, end: number, isAscii: boolean): string | undefined {
  if (isAscii) return ascii.decode(b.subarray(start, end));
  try {
    return strict.decode(b.subarray(start, end));
  } catch {
    return undefined;
  }
}
