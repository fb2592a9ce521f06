// Server-sent events, parsed incrementally as bytes arrive (a chunk may end anywhere, even inside a UTF-8
// character or between \r and \n). https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream

export interface SseEvent {
  readonly event?: string;
  readonly data: string;
  readonly id?: string;
}

/**
 * The most an unfinished event may hold (its unterminated line plus the data lines gathered so far), in UTF-16 code
 * units. A provider's event is one JSON chunk, kilobytes; without a cap an upstream that never ends a line or an
 * event would grow the sidecar's memory for as long as it streams.
 */
export const MAX_SSE_EVENT_CHARS = 16 * 1024 * 1024;

export class SseEventTooLargeError extends Error {
  override readonly name = "SseEventTooLargeError";
}

export class SseParser {
  readonly #decoder = new TextDecoder();
  readonly #maxEventChars: number;
  #buffer = "";
  #data: string[] = [];
  #dataChars = 0;
  #event: string | undefined;
  #id: string | undefined;
  #sawCr = false;

  constructor(o: { maxEventChars?: number } = {}) {
    this.#maxEventChars = o.maxEventChars ?? MAX_SSE_EVENT_CHARS;
  }

  /** Feeds bytes; returns the events completed by them. */
  push(chunk: Uint8Array): SseEvent[] {
    return this.#lines(this.#decoder.decode(chunk, { stream: true }));
  }

  /** End of stream: an unterminated last event is dispatched, as browsers do not, but providers expect. */
  end(): SseEvent[] {
    const out = this.#lines(this.#decoder.decode());
    if (this.#buffer.length > 0) this.#line(this.#buffer, out);
    this.#buffer = "";
    this.#dispatch(out);
    return out;
  }

  #lines(chunk: string): SseEvent[] {
    // The \n of a \r\n pair split across two chunks.
    const text = this.#sawCr && chunk.startsWith("\n") ? chunk.slice(1) : chunk;
    this.#sawCr = false;
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 13 && c !== 10) continue;
      this.#line(this.#buffer + text.slice(start, i), out);
      this.#buffer = "";
      if (c === 13 && i + 1 < text.length && text.charCodeAt(i + 1) === 10) i++;
      else if (c === 13 && i + 1 === text.length) this.#sawCr = true;
      start = i + 1;
    }
    this.#buffer += text.slice(start);
    if (this.#buffer.length + this.#dataChars > this.#maxEventChars) {
      throw new SseEventTooLargeError(
        `Cannot parse the event stream: an event exceeds ${this.#maxEventChars} characters without ending`,
      );
    }
    return out;
  }

  #line(line: string, out: SseEvent[]): void {
    if (line === "") return this.#dispatch(out);
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.#data.push(value);
      this.#dataChars += value.length;
    } else if (field === "event") this.#event = value;
    else if (field === "id") this.#id = value;
  }

  #dispatch(out: SseEvent[]): void {
    if (this.#data.length > 0 || this.#event !== undefined) {
      out.push({
        data: this.#data.join("\n"),
        ...(this.#event !== undefined ? { event: this.#event } : {}),
        ...(this.#id !== undefined ? { id: this.#id } : {}),
      });
    }
    this.#data = [];
    this.#dataChars = 0;
    this.#event = undefined;
  }
}

const encoder = new TextEncoder();

/** Encodes one event; `data` may hold newlines. */
export function sseEvent(data: string, event?: string): Uint8Array {
  const lines = data.split("\n").map((l) => `data: ${l}`).join("\n");
  return encoder.encode(`${event !== undefined ? `event: ${event}\n` : ""}${lines}\n\n`);
}
