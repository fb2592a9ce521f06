// The AWS event-stream binary framing (application/vnd.amazon.eventstream) that Bedrock's streaming APIs answer
// with, parsed incrementally: frames are length-prefixed, so bytes are buffered until a whole frame is there, and
// each frame is decoded (and CRC-checked) by @smithy/eventstream-codec.
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";
import type { Message, MessageHeaderValue } from "@smithy/types";

export interface AwsEvent {
  /** ":message-type": "event" or "exception" (or "error"). */
  readonly messageType: string;
  /** ":event-type" (e.g. "contentBlockDelta", "chunk") or ":exception-type" for exceptions. */
  readonly eventType: string;
  readonly payload: Uint8Array;
}

const codec = new EventStreamCodec(toUtf8, fromUtf8);

function text(v: MessageHeaderValue | undefined): string {
  return v && v.type === "string" ? v.value : "";
}

/**
 * The largest frame the AWS event-stream format allows (aws-c-event-stream's maximum message size, 16 MiB). A longer
 * prelude length is corrupt, and taking it at its word would buffer up to 4 GiB of an upstream's bytes.
 */
export const MAX_EVENT_STREAM_FRAME_BYTES = 16 * 1024 * 1024;

export class AwsEventStreamParser {
  #buffer = new Uint8Array(0);

  /** Feeds bytes; returns the events completed by them. Throws on a corrupt frame (bad CRC or length). */
  push(chunk: Uint8Array): AwsEvent[] {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    const out: AwsEvent[] = [];
    let at = 0;
    while (joined.length - at >= 4) {
      const total = new DataView(joined.buffer, joined.byteOffset + at, 4).getUint32(0);
      if (total < 16 || total > MAX_EVENT_STREAM_FRAME_BYTES) {
        throw new Error(`Corrupt event-stream frame: length ${total}`);
      }
      if (joined.length - at < total) break;
      const message = codec.decode(joined.subarray(at, at + total));
      out.push(toEvent(message));
      at += total;
    }
    this.#buffer = joined.slice(at);
    return out;
  }

  /** Bytes of an incomplete frame left at the end of the stream. */
  get pending(): number {
    return this.#buffer.length;
  }
}

function toEvent(m: Message): AwsEvent {
  const messageType = text(m.headers[":message-type"]) || "event";
  const eventType = messageType === "event" ? text(m.headers[":event-type"]) : text(m.headers[":exception-type"]);
  return { messageType, eventType, payload: m.body };
}

/** Encodes one event frame (the fake Bedrock upstream of the tests and the AWS → client re-encoding use it). */
export function encodeAwsEvent(eventType: string, payload: Uint8Array, messageType = "event"): Uint8Array {
  const typeHeader = messageType === "event" ? ":event-type" : ":exception-type";
  return codec.encode({
    headers: {
      ":message-type": { type: "string", value: messageType },
      [typeHeader]: { type: "string", value: eventType },
      ":content-type": { type: "string", value: "application/json" },
    },
    body: payload,
  });
}
