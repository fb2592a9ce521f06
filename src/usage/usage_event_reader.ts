// Reads a usage event straight from its UTF-8 bytes, for the aggregator's fold (100,000 events a second per replica is
// the target; JSON.parse of a 1.8 KB event, the schema check and hashing the descriptors' fresh strings for the rule
// lookup cost more than the whole budget).
//
// One pass over the bytes checks usage_event.ts's schema while it builds the event, and the strings that repeat from
// event to event (descriptor keys and values, domains, routes, models, cost keys) come from a table keyed by their
// bytes: the same string object every time, so the fold's maps find them without hashing them again.
//
// The reader is only sure or unsure: `read` answers undefined for anything outside the common form (an escape in a
// string, a number written with an exponent or a sign, a duplicate key, a version other than 1, any schema doubt),
// and the caller then decodes the slow way (decodeUsageEvent), which also words the errors. So it accepts nothing the
// schema refuses, and what it returns equals what decodeUsageEvent returns for the same bytes (tests check both).
import type { TokenUsage } from "../protocol/usage.ts";
import type { UsageDescriptor, UsageEvent } from "./usage_event.ts";
import { ByteStrings } from "./byte_strings.ts";

const EMPTY = new Uint8Array(0);
const EMPTY_VIEW = new DataView(EMPTY.buffer);

/** Thrown inside the reader to give up on an event; never escapes `read`. */
const UNSURE = Symbol("unsure");

const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;
const COLON = 58;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const ZERO = 48;
const NINE = 57;
const DOT = 46;

const MAX_HITS_ADDEND = 1_000_000_000;
const MAX_RESERVATION_ID = 64;
/** Strings guessed by their place in the event: a few more than an event with five descriptors holds. */
const MAX_GUESSES = 256;
/** Descriptor prefixes remembered, by index in the event. */
const MAX_PREFIXES = 32;

/** Entries per last value under one remembered prefix: one array per descriptor, whatever the event. */
const MAX_ENTRIES_PER_PREFIX = 16_384;

type Entry = { readonly key: string; readonly value: string };

interface DescriptorPrefix {
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  readonly domain: string;
  readonly entries: readonly Entry[];
  readonly lastKey: string;
  /** The entries read through this prefix, by the last entry's value: the same array object for the same
   * descriptor, so the fold can remember what it matched by the array itself. Frozen, as every entries array this
   * reader hands out may be handed out again. */
  readonly entriesByValue: Map<string, readonly Entry[]>;
}

// Which top-level fields were seen (a duplicate is a doubt: JSON.parse keeps the last one, the reader gives up).
const F_V = 1, F_ID = 2, F_TIME = 4, F_ROUTE = 8, F_BACKEND = 16, F_MODELS = 32, F_TOKENS = 64, F_COSTS = 128;
const F_DESCRIPTORS = 256, F_STATUS = 512, F_LATENCY = 1024, F_TTFT = 2048, F_STREAM = 4096, F_TENANT = 8192;
const F_RESERVATION = 16384;
const REQUIRED = F_V | F_ID | F_TIME | F_ROUTE | F_MODELS | F_TOKENS | F_COSTS | F_DESCRIPTORS | F_STATUS | F_LATENCY |
  F_STREAM;

const TOKEN_KEYS = new Set<string>([
  "inputTokens",
  "outputTokens",
  "totalTokens",
  "cachedInputTokens",
  "cacheCreationInputTokens",
  "reasoningTokens",
]);

const ascii = new TextDecoder();

export interface UsageEventReaderOptions {
  /** Distinct strings remembered; past it the table starts afresh (default 32,768). */
  readonly maxStrings?: number;
  /** Longer strings are decoded every time, never remembered (default 256 bytes). */
  readonly maxStringBytes?: number;
}

export class UsageEventReader {
  readonly #strings: ByteStrings;
  #b: Uint8Array = EMPTY;
  #view: DataView<ArrayBufferLike> = EMPTY_VIEW;
  #i = 0;
  #lastTimeBytes = new Uint8Array(24);
  #lastTime = "";
  #lastTimeMs = Number.NaN;
  /** The n-th string of the last events, by n: events of one deployment put the same strings in the same places. */
  readonly #guessBytes: (Uint8Array | undefined)[] = [];
  readonly #guessValues: string[] = [];
  #n = 0;
  /** Per descriptor index, the bytes of the last one up to its last entry's value, and what they read as. */
  readonly #prefixes: (DescriptorPrefix | undefined)[] = [];
  #lastValueAt = -1;
  /** Descriptors read through a remembered prefix (for tests and benchmarks). */
  prefixReads = 0;
  /** The `time` of the event `read` last returned, in epoch ms (what Date.parse gives for it). */
  timeMs = Number.NaN;

  constructor(o: UsageEventReaderOptions = {}) {
    this.#strings = new ByteStrings(o.maxStrings ?? 32_768, o.maxStringBytes ?? 256);
  }

  /** The event, or undefined when the reader is not sure (decode those with decodeUsageEvent). */
  read(bytes: Uint8Array): UsageEvent | undefined {
    this.#b = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#i = 0;
    this.#n = 0;
    try {
      const event = this.#event();
      this.#ws();
      return this.#i === bytes.length ? event : undefined;
    } catch (err) {
      if (err === UNSURE) return undefined;
      throw err;
    } finally {
      this.#b = EMPTY;
      this.#view = EMPTY_VIEW;
    }
  }

  #event(): UsageEvent {
    let seen = 0;
    let id = "", time = "", route = "", backend = "", tenant = "", reservation = "";
    let models: UsageEvent["models"] | undefined;
    let tokens: TokenUsage | undefined;
    let costs: Record<string, number> | undefined;
    let descriptors: UsageDescriptor[] | undefined;
    let status = 0, latencyMs = 0, ttftMs = 0, stream = false;
    this.#ws();
    this.#expect(OPEN_BRACE);
    do {
      this.#ws();
      const key = this.#member(EVENT_MEMBERS);
      this.#ws();
      let bit: number;
      switch (key) {
        case "v":
          bit = F_V;
          if (this.#count() !== 1) throw UNSURE;
          break;
        case "id":
          bit = F_ID;
          id = this.#uuidV7();
          break;
        case "time":
          bit = F_TIME;
          time = this.#time();
          break;
        case "route":
          bit = F_ROUTE;
          route = this.#name();
          break;
        case "backend":
          bit = F_BACKEND;
          backend = this.#name();
          break;
        case "tenant":
          bit = F_TENANT;
          tenant = this.#name();
          break;
        case "reservation":
          bit = F_RESERVATION;
          reservation = this.#reservationId();
          break;
        case "models":
          bit = F_MODELS;
          models = this.#models();
          break;
        case "tokens":
          bit = F_TOKENS;
          tokens = this.#tokens();
          break;
        case "costs":
          bit = F_COSTS;
          costs = this.#costs();
          break;
        case "descriptors":
          bit = F_DESCRIPTORS;
          descriptors = this.#descriptors();
          break;
        case "status":
          bit = F_STATUS;
          status = this.#count();
          if (status < 100 || status > 599) throw UNSURE;
          break;
        case "latencyMs":
          bit = F_LATENCY;
          latencyMs = this.#millis();
          break;
        case "ttftMs":
          bit = F_TTFT;
          ttftMs = this.#millis();
          break;
        case "stream":
          bit = F_STREAM;
          stream = this.#boolean();
          break;
        default:
          throw UNSURE;
      }
      if (seen & bit) throw UNSURE;
      seen |= bit;
      this.#ws();
    } while (this.#comma());
    this.#expect(CLOSE_BRACE);
    if ((seen & REQUIRED) !== REQUIRED || ((seen & F_TTFT) && !stream)) throw UNSURE;
    const event: {
      -readonly [K in keyof UsageEvent]: UsageEvent[K];
    } = {
      v: 1,
      id,
      time,
      route,
      models: models!,
      tokens: tokens!,
      costs: costs!,
      descriptors: descriptors!,
      status,
      latencyMs,
      stream,
    };
    if (seen & F_BACKEND) event.backend = backend;
    if (seen & F_TTFT) event.ttftMs = ttftMs;
    if (seen & F_TENANT) event.tenant = tenant;
    if (seen & F_RESERVATION) event.reservation = reservation;
    this.timeMs = this.#lastTimeMs;
    return event;
  }

  #models(): UsageEvent["models"] {
    let requested: string | undefined, overridden: string | undefined, responded: string | undefined;
    this.#expect(OPEN_BRACE);
    this.#ws();
    if (!this.#close(CLOSE_BRACE)) {
      do {
        this.#ws();
        const key = this.#member(MODELS_MEMBERS);
        this.#ws();
        const value = this.#name();
        if (key === "requested" && requested === undefined) requested = value;
        else if (key === "overridden" && overridden === undefined) overridden = value;
        else if (key === "responded" && responded === undefined) responded = value;
        else throw UNSURE;
        this.#ws();
      } while (this.#comma());
      this.#expect(CLOSE_BRACE);
    }
    if (requested === undefined) throw UNSURE;
    const models: { requested: string; overridden?: string; responded?: string } = { requested };
    if (overridden !== undefined) models.overridden = overridden;
    if (responded !== undefined) models.responded = responded;
    return models;
  }

  #tokens(): TokenUsage {
    const tokens: Record<string, number> = {};
    this.#expect(OPEN_BRACE);
    this.#ws();
    if (this.#close(CLOSE_BRACE)) return tokens;
    do {
      this.#ws();
      const key = this.#member(TOKENS_MEMBERS);
      this.#ws();
      if (!TOKEN_KEYS.has(key) || Object.hasOwn(tokens, key)) throw UNSURE;
      tokens[key] = this.#count();
      this.#ws();
    } while (this.#comma());
    this.#expect(CLOSE_BRACE);
    return tokens;
  }

  #costs(): Record<string, number> {
    const costs: Record<string, number> = {};
    this.#expect(OPEN_BRACE);
    this.#ws();
    if (this.#close(CLOSE_BRACE)) return costs;
    do {
      this.#ws();
      const key = this.#name();
      this.#ws();
      this.#expect(COLON);
      this.#ws();
      // "__proto__" would set the prototype here where JSON.parse makes an own property.
      if (key === "__proto__" || Object.hasOwn(costs, key)) throw UNSURE;
      costs[key] = this.#count();
      this.#ws();
    } while (this.#comma());
    this.#expect(CLOSE_BRACE);
    return costs;
  }

  #descriptors(): UsageDescriptor[] {
    const out: UsageDescriptor[] = [];
    this.#expect(OPEN_BRACKET);
    this.#ws();
    if (this.#close(CLOSE_BRACKET)) return out;
    do {
      this.#ws();
      out.push(this.#descriptor(out.length));
      this.#ws();
    } while (this.#comma());
    this.#expect(CLOSE_BRACKET);
    return out;
  }

  /**
   * The index-th descriptor. Descriptors mostly differ from the last event's in the value of their last entry (the
   * user, the tenant): when the bytes up to that value are the ones remembered for this index, which were read and
   * checked then, their result is reused and only the rest is read.
   */
  #descriptor(index: number): UsageDescriptor {
    const b = this.#b;
    const start = this.#i;
    let domain: string | undefined;
    let entries: readonly Entry[] | undefined;
    let hitsAddend = -1, reserved = -1;
    let hitsAddendFrom: string | undefined;
    let members = 0;
    const prefix = index < MAX_PREFIXES ? this.#prefixes[index] : undefined;
    if (prefix !== undefined && this.#literalWords(prefix.bytes, prefix.words)) {
      this.#i--; // back to the opening quote of the last entry's value
      this.prefixReads++;
      domain = prefix.domain;
      // Where the remembered read was: inside the last entry, its key read, before its value.
      const value = this.#string();
      this.#ws();
      this.#expect(CLOSE_BRACE);
      this.#ws();
      if (this.#comma()) this.#entries(entries = [...prefix.entries, { key: prefix.lastKey, value }]);
      else {
        this.#expect(CLOSE_BRACKET);
        entries = prefix.entriesByValue.get(value);
        if (entries === undefined) {
          if (prefix.entriesByValue.size >= MAX_ENTRIES_PER_PREFIX) prefix.entriesByValue.clear();
          entries = Object.freeze([...prefix.entries, Object.freeze({ key: prefix.lastKey, value })]);
          prefix.entriesByValue.set(value, entries);
        }
      }
      this.#ws();
      members = 2;
    } else this.#expect(OPEN_BRACE);
    while (members === 0 || this.#comma()) {
      this.#ws();
      const key = this.#member(DESCRIPTOR_MEMBERS);
      this.#ws();
      if (key === "domain" && domain === undefined) domain = this.#name();
      else if (key === "entries" && entries === undefined) {
        this.#expect(OPEN_BRACKET);
        const read = this.#entries([]);
        entries = read;
        for (const e of read) Object.freeze(e);
        Object.freeze(read);
        // Remembered when domain and entries came first, in the sidecar's form (see #entries).
        if (members === 1 && this.#lastValueAt > 0 && index < MAX_PREFIXES && domain !== undefined) {
          const bytes = b.slice(start, this.#lastValueAt + 1);
          const last = read.at(-1)!;
          this.#prefixes[index] = {
            bytes,
            words: wordsOf(bytes),
            domain,
            entries: read.slice(0, -1),
            lastKey: last.key,
            entriesByValue: new Map([[last.value, read]]),
          };
        }
      } else if (key === "hitsAddend" && hitsAddend < 0) hitsAddend = this.#addend();
      else if (key === "hitsAddendFrom" && hitsAddendFrom === undefined) hitsAddendFrom = this.#name();
      else if (key === "reserved" && reserved < 0) reserved = this.#addend();
      else throw UNSURE;
      members++;
      this.#ws();
    }
    this.#expect(CLOSE_BRACE);
    if (domain === undefined || entries === undefined || (hitsAddend >= 0 && hitsAddendFrom !== undefined)) {
      throw UNSURE;
    }
    const d: { -readonly [K in keyof UsageDescriptor]: UsageDescriptor[K] } = { domain, entries };
    if (hitsAddend >= 0) d.hitsAddend = hitsAddend;
    if (hitsAddendFrom !== undefined) d.hitsAddendFrom = hitsAddendFrom;
    if (reserved >= 0) d.reserved = reserved;
    return d;
  }

  /**
   * A descriptor's entries, after those already read (`out`). #lastValueAt is where the last entry's value starts (its
   * opening quote) when that entry was written `{"key":…,"value":…}`, key first and no blank inside, else -1.
   */
  #entries(out: { key: string; value: string }[]): { key: string; value: string }[] {
    do {
      this.#ws();
      out.push(this.#entry());
      this.#ws();
    } while (this.#comma());
    this.#expect(CLOSE_BRACKET);
    return out;
  }

  #entry(): { key: string; value: string } {
    const b = this.#b;
    let key: string | undefined, value: string | undefined;
    let plain = b[this.#i] === OPEN_BRACE && b[this.#i + 1] === QUOTE && b[this.#i + 2] === 107; // {"k
    this.#expect(OPEN_BRACE);
    let valueAt = -1;
    do {
      this.#ws();
      const field = this.#member(ENTRY_MEMBERS);
      this.#ws();
      if (field === "key" && key === undefined) key = this.#name();
      else if (field === "value" && value === undefined) {
        plain &&= b[this.#i - 1] === COLON && key !== undefined;
        valueAt = this.#i;
        value = this.#string();
      } else throw UNSURE;
      this.#ws();
    } while (this.#comma());
    plain &&= b[this.#i] === CLOSE_BRACE && b[this.#i - 1] === QUOTE;
    this.#expect(CLOSE_BRACE);
    if (key === undefined || value === undefined) throw UNSURE;
    this.#lastValueAt = plain ? valueAt : -1;
    return { key, value };
  }

  // Tokens.

  #ws(): void {
    const b = this.#b;
    let i = this.#i;
    for (;;) {
      const c = b[i];
      if (c !== 32 && c !== 10 && c !== 13 && c !== 9) break;
      i++;
    }
    this.#i = i;
  }

  /** A member's name and its colon: one of `names` when written plainly (`"name":`), else read as a string. */
  #member(names: MemberNames): string {
    const candidates = names[this.#b[this.#i + 1]!];
    if (candidates !== undefined) {
      for (let k = 0; k < candidates.length; k++) {
        const c = candidates[k]!;
        if (this.#literal(c.bytes)) return c.name;
      }
    }
    const name = this.#string();
    this.#ws();
    this.#expect(COLON);
    return name;
  }

  /** Steps over `literal` when the input continues with it. */
  #literal(literal: Uint8Array): boolean {
    const b = this.#b;
    const i = this.#i;
    const n = literal.length;
    for (let k = 0; k < n; k++) if (b[i + k] !== literal[k]) return false;
    this.#i = i + n;
    return true;
  }

  /** #literal for long ones, four bytes at a time (`words` holds them, little-endian). */
  #literalWords(literal: Uint8Array, words: Int32Array): boolean {
    const b = this.#b;
    const i = this.#i;
    const n = literal.length;
    if (i + n > b.length) return false;
    const view = this.#view;
    const whole = words.length;
    for (let k = 0; k < whole; k++) if (view.getInt32(i + 4 * k, true) !== words[k]) return false;
    for (let k = 4 * whole; k < n; k++) if (b[i + k] !== literal[k]) return false;
    this.#i = i + n;
    return true;
  }

  #expect(c: number): void {
    if (this.#b[this.#i] !== c) throw UNSURE;
    this.#i++;
  }

  /** After a member: true on a comma (another follows), false before the closing bracket (left for #expect). */
  #comma(): boolean {
    if (this.#b[this.#i] !== COMMA) return false;
    this.#i++;
    return true;
  }

  #close(c: number): boolean {
    if (this.#b[this.#i] !== c) return false;
    this.#i++;
    return true;
  }

  #boolean(): boolean {
    const b = this.#b;
    const i = this.#i;
    if (b[i] === 116 && b[i + 1] === 114 && b[i + 2] === 117 && b[i + 3] === 101) {
      this.#i = i + 4;
      return true;
    }
    if (b[i] === 102 && b[i + 1] === 97 && b[i + 2] === 108 && b[i + 3] === 115 && b[i + 4] === 101) {
      this.#i = i + 5;
      return false;
    }
    throw UNSURE;
  }

  /** A non-negative safe integer written as JSON.stringify writes it: no sign, fraction or exponent. */
  #count(): number {
    const b = this.#b;
    let i = this.#i;
    const start = i;
    let n = 0;
    for (;;) {
      const c = b[i];
      if (c === undefined || c < ZERO || c > NINE) break;
      n = n * 10 + (c - ZERO);
      i++;
    }
    const digits = i - start;
    // Leading zeros are not JSON; "1.0" and "1e3" are left to JSON.parse. Up to 16 digits, n is exact when it is a safe
    // integer (and a rounded n of a larger one is not safe either).
    if (digits === 0 || digits > 16 || (digits > 1 && b[start] === ZERO) || n > Number.MAX_SAFE_INTEGER) throw UNSURE;
    const next = b[i];
    if (next === DOT || next === 101 || next === 69) throw UNSURE;
    this.#i = i;
    return n;
  }

  #addend(): number {
    const n = this.#count();
    if (n > MAX_HITS_ADDEND) throw UNSURE;
    return n;
  }

  /**
   * A non-negative JSON number. Exactly JSON.parse's value: with at most 15 digits and no exponent, the digits (an
   * exact integer) divided by a power of ten (exact up to 10^22) is one correctly rounded operation (Clinger's fast
   * path); any other form goes through Number().
   */
  #millis(): number {
    const b = this.#b;
    let i = this.#i;
    const start = i;
    let n = 0;
    for (;;) {
      const c = b[i];
      if (c === undefined || c < ZERO || c > NINE) break;
      n = n * 10 + (c - ZERO);
      i++;
    }
    const whole = i - start;
    if (whole === 0 || (whole > 1 && b[start] === ZERO)) throw UNSURE;
    let fraction = 0;
    if (b[i] === DOT) {
      i++;
      const from = i;
      for (;;) {
        const c = b[i];
        if (c === undefined || c < ZERO || c > NINE) break;
        n = n * 10 + (c - ZERO);
        i++;
      }
      fraction = i - from;
      if (fraction === 0) throw UNSURE;
    }
    let exponent = false;
    if (b[i] === 101 || b[i] === 69) {
      exponent = true;
      i++;
      if (b[i] === 43 || b[i] === 45) i++;
      const from = i;
      while (b[i]! >= ZERO && b[i]! <= NINE) i++;
      if (i === from) throw UNSURE;
    }
    this.#i = i;
    if (whole + fraction <= 15 && !exponent) return fraction === 0 ? n : n / POWERS_OF_TEN[fraction]!;
    // A JSON number (checked above) in any other form, as a differences of clock readings often is
    // (812.4000000000001): Number() rounds it as JSON.parse does.
    return Number(ascii.decode(b.subarray(start, i)));
  }

  /**
   * A string without escapes. First guessed: the string in the same place in the last event, whose bytes were checked
   * when it was first read (no quote, escape or control character in them), so equal bytes followed by the closing
   * quote are that string. Otherwise scanned and looked up in the table (decoded when new, or too long to keep).
   */
  #string(): string {
    const b = this.#b;
    let i = this.#i;
    if (b[i] !== QUOTE) throw UNSURE;
    const start = ++i;
    const n = this.#n++;
    const guess = this.#guessBytes[n];
    if (guess !== undefined && b[start + guess.length] === QUOTE) {
      const length = guess.length;
      let k = 0;
      while (k < length && guess[k] === b[start + k]) k++;
      if (k === length) {
        this.#i = start + length + 1;
        return this.#guessValues[n]!;
      }
    }
    let h = 0x811c9dc5 | 0;
    let isAscii = true;
    for (;;) {
      const c = b[i];
      if (c === QUOTE) break;
      // An escape, a raw control character (not JSON) or the end of the input.
      if (c === undefined || c === BACKSLASH || c < 32) throw UNSURE;
      if (c > 127) isAscii = false;
      h = Math.imul(h ^ c, 0x01000193);
      i++;
    }
    this.#i = i + 1;
    const strings = this.#strings;
    const s = strings.get(b, start, i, h, isAscii);
    if (s === undefined) throw UNSURE;
    if (n < MAX_GUESSES) {
      this.#guessBytes[n] = strings.lastBytes;
      this.#guessValues[n] = s;
    }
    return s;
  }

  #name(): string {
    const s = this.#string();
    if (s.length === 0) throw UNSURE;
    return s;
  }

  #reservationId(): string {
    const b = this.#b;
    const start = this.#i + 1;
    if (b[this.#i] !== QUOTE) throw UNSURE;
    let i = start;
    for (;;) {
      const c = b[i];
      if (c === QUOTE) break;
      if (c === undefined || !isReservationByte(c)) throw UNSURE;
      i++;
    }
    if (i === start || i - start > MAX_RESERVATION_ID) throw UNSURE;
    this.#i = i + 1;
    return ascii.decode(b.subarray(start, i));
  }

  /** A lower-case UUIDv7, as usage_event.ts's UUID_V7 pattern. */
  #uuidV7(): string {
    const b = this.#b;
    const start = this.#i + 1;
    if (b[this.#i] !== QUOTE || b[start + 36] !== QUOTE) throw UNSURE;
    for (let k = 0; k < 36; k++) {
      const c = b[start + k]!;
      if (k === 8 || k === 13 || k === 18 || k === 23) {
        if (c !== 45) throw UNSURE;
      } else if (k === 14) {
        if (c !== 55) throw UNSURE;
      } else if (k === 19) {
        if (c !== 56 && c !== 57 && c !== 97 && c !== 98) throw UNSURE;
      } else if (!((c >= ZERO && c <= NINE) || (c >= 97 && c <= 102))) throw UNSURE;
    }
    this.#i = start + 37;
    return latin36(b, start);
  }

  /**
   * What z.iso.datetime({ precision: 3 }) plus the round-trip refine accept: YYYY-MM-DDTHH:MM:SS.sssZ with a real
   * calendar date. Consecutive events often share their time; the last one's string is reused.
   */
  #time(): string {
    const b = this.#b;
    const start = this.#i + 1;
    if (b[this.#i] !== QUOTE || b[start + 24] !== QUOTE) throw UNSURE;
    this.#i = start + 25;
    const last = this.#lastTimeBytes;
    let same = this.#lastTime !== "";
    for (let k = 0; k < 24 && same; k++) same = b[start + k] === last[k];
    if (same) return this.#lastTime;
    for (let k = 0; k < 24; k++) {
      const c = b[start + k]!;
      const want = TIME_SHAPE[k]!;
      if (want === 0 ? c < ZERO || c > NINE : c !== want) throw UNSURE;
    }
    const d = (k: number) => b[start + k]! - ZERO;
    const year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
    const month = d(5) * 10 + d(6);
    const day = d(8) * 10 + d(9);
    const hour = d(11) * 10 + d(12);
    const minute = d(14) * 10 + d(15);
    const second = d(17) * 10 + d(18);
    const ms = d(20) * 100 + d(21) * 10 + d(22);
    if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) throw UNSURE;
    const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
    if (day > (month === 2 ? (leap ? 29 : 28) : DAYS_IN_MONTH[month - 1]!)) throw UNSURE;
    const time = latin24(b, start);
    last.set(b.subarray(start, start + 24));
    this.#lastTime = time;
    this.#lastTimeMs = daysFromCivil(year, month, day) * 86_400_000 + ((hour * 60 + minute) * 60 + second) * 1000 + ms;
    return time;
  }
}

/** Member names by the first character of their name: the bytes `"name":` and the name. */
type MemberNames = readonly (readonly { readonly bytes: Uint8Array; readonly name: string }[] | undefined)[];

function memberNames(...names: string[]): MemberNames {
  const out: { bytes: Uint8Array; name: string }[][] = [];
  for (const name of names) (out[name.charCodeAt(0)] ??= []).push({ bytes: encoder.encode(`"${name}":`), name });
  return out;
}

const encoder = new TextEncoder();
const EVENT_MEMBERS = memberNames(
  "v",
  "id",
  "time",
  "route",
  "backend",
  "models",
  "tokens",
  "costs",
  "descriptors",
  "status",
  "latencyMs",
  "ttftMs",
  "stream",
  "tenant",
  "reservation",
);
const MODELS_MEMBERS = memberNames("requested", "overridden", "responded");
const TOKENS_MEMBERS = memberNames(...TOKEN_KEYS);
const DESCRIPTOR_MEMBERS = memberNames("domain", "entries", "hitsAddend", "hitsAddendFrom", "reserved");
const ENTRY_MEMBERS = memberNames("key", "value");

// The id and the time are new in every event and checked as ASCII: a call with one argument per character makes the
// string in place, twice as fast here as a TextDecoder call.
const char = String.fromCharCode;

// deno-fmt-ignore
function latin36(b: Uint8Array, i: number): string {
  return char(
    b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!, b[i + 4]!, b[i + 5]!, b[i + 6]!, b[i + 7]!, b[i + 8]!, b[i + 9]!,
    b[i + 10]!, b[i + 11]!, b[i + 12]!, b[i + 13]!, b[i + 14]!, b[i + 15]!, b[i + 16]!, b[i + 17]!, b[i + 18]!,
    b[i + 19]!, b[i + 20]!, b[i + 21]!, b[i + 22]!, b[i + 23]!, b[i + 24]!, b[i + 25]!, b[i + 26]!, b[i + 27]!,
    b[i + 28]!, b[i + 29]!, b[i + 30]!, b[i + 31]!, b[i + 32]!, b[i + 33]!, b[i + 34]!, b[i + 35]!,
  );
}

// deno-fmt-ignore
function latin24(b: Uint8Array, i: number): string {
  return char(
    b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!, b[i + 4]!, b[i + 5]!, b[i + 6]!, b[i + 7]!, b[i + 8]!, b[i + 9]!,
    b[i + 10]!, b[i + 11]!, b[i + 12]!, b[i + 13]!, b[i + 14]!, b[i + 15]!, b[i + 16]!, b[i + 17]!, b[i + 18]!,
    b[i + 19]!, b[i + 20]!, b[i + 21]!, b[i + 22]!, b[i + 23]!,
  );
}

function wordsOf(bytes: Uint8Array): Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Int32Array.from({ length: bytes.length >> 2 }, (_, k) => view.getInt32(4 * k, true));
}

const POWERS_OF_TEN = Array.from({ length: 16 }, (_, k) => 10 ** k);
/** 0: a digit; anything else: that byte. */
const TIME_SHAPE = Uint8Array.from("dddd-dd-ddTdd:dd:dd.dddZ", (c) => c === "d" ? 0 : c.charCodeAt(0));
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isReservationByte(c: number): boolean {
  return (c >= ZERO && c <= NINE) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45;
}

/** Days since 1970-01-01 of a proleptic Gregorian date, for any year 0–9999 (Date.UTC maps years 0–99 to 19xx). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}
