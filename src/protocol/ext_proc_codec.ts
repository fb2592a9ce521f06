// The wire codec of the ExtProc server, for the messages every request goes through several times. Same results as
// the generated ts-proto code (a property test holds them to it), for less CPU per message:
//
// - decoding: ProcessingRequest and the messages under it that Envoy sends on every request (HttpHeaders,
//   HeaderMap, HeaderValue, HttpBody, HttpTrailers) are read by hand, without the generated code's per-message
//   recursion bookkeeping (a property set and restored on the reader in a try/finally) and without allocating an
//   empty Uint8Array for every header before its raw_value replaces it. Anything else (attributes, metadata_context:
//   Structs) goes to the generated decoders, on the same reader and at the same recursion depth they would have.
// - encoding: the generated ProcessingResponse.encode into one writer reused across messages, copied once into the
//   Buffer grpc-js frames (instead of a new writer per message, finish()'s copy, then Buffer.from's copy).
import { Buffer } from "node:buffer";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  ExternalProcessorService,
  type HttpBody,
  type HttpHeaders,
  HttpHeaders_AttributesEntry,
  type HttpTrailers,
  type ProcessingRequest,
  ProcessingRequest_AttributesEntry,
  ProcessingResponse,
} from "./gen/envoy/service/ext_proc/v3/external_processor.ts";
import { type HeaderMap, type HeaderValue, Metadata } from "./gen/envoy/config/core/v3/base.ts";

/** The generated decoders' recursion guard lives on the reader; declaring it keeps the reader's shape stable. */
class Reader extends BinaryReader {
  __tsProtoDecodeDepth = 0;
}

/** Limit of nested messages, as the generated decoders enforce it. */
const MAX_DEPTH = 100;
/** Shared by every header without a raw_value and every empty body: a zero-length array cannot be written to. */
const EMPTY: Uint8Array = new Uint8Array(0);

/** Wire type 4 (end group) or a zero tag ends a message early, as in the generated decoders. */
function endsMessage(tag: number): boolean {
  return (tag & 7) === 4 || tag === 0;
}

function depthGuard(depth: number): void {
  if (depth >= MAX_DEPTH) throw new Error("protobuf decode recursion limit exceeded");
}

export function decodeProcessingRequest(input: Uint8Array): ProcessingRequest {
  const reader = new Reader(input);
  reader.__tsProtoDecodeDepth = 1;
  const end = reader.len;
  const message: ProcessingRequest = {
    request: undefined,
    metadataContext: undefined,
    attributes: {},
    observabilityMode: false,
  };
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag) {
      case 18:
        message.request = { $case: "requestHeaders", value: decodeHttpHeaders(reader, reader.uint32(), 1) };
        continue;
      case 26:
        message.request = { $case: "responseHeaders", value: decodeHttpHeaders(reader, reader.uint32(), 1) };
        continue;
      case 34:
        message.request = { $case: "requestBody", value: decodeHttpBody(reader, reader.uint32(), 1) };
        continue;
      case 42:
        message.request = { $case: "responseBody", value: decodeHttpBody(reader, reader.uint32(), 1) };
        continue;
      case 50:
        message.request = { $case: "requestTrailers", value: decodeHttpTrailers(reader, reader.uint32(), 1) };
        continue;
      case 58:
        message.request = { $case: "responseTrailers", value: decodeHttpTrailers(reader, reader.uint32(), 1) };
        continue;
      case 66:
        message.metadataContext = Metadata.decode(reader, reader.uint32());
        continue;
      case 74: {
        const entry = ProcessingRequest_AttributesEntry.decode(reader, reader.uint32());
        if (entry.value !== undefined) message.attributes[entry.key] = entry.value;
        continue;
      }
      case 80:
        message.observabilityMode = reader.bool();
        continue;
    }
    if (endsMessage(tag)) break;
    reader.skip(tag & 7);
  }
  return message;
}

/** `depth`: how many messages enclose this one (the generated decoders' counter before they enter it). */
function decodeHttpHeaders(reader: Reader, length: number, depth: number): HttpHeaders {
  depthGuard(depth);
  const end = reader.pos + length;
  const message: HttpHeaders = { headers: undefined, attributes: {}, endOfStream: false };
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag) {
      case 10:
        message.headers = decodeHeaderMap(reader, reader.uint32(), depth + 1);
        continue;
      case 18: {
        reader.__tsProtoDecodeDepth = depth + 1;
        const entry = HttpHeaders_AttributesEntry.decode(reader, reader.uint32());
        reader.__tsProtoDecodeDepth = 1;
        if (entry.value !== undefined) message.attributes[entry.key] = entry.value;
        continue;
      }
      case 24:
        message.endOfStream = reader.bool();
        continue;
    }
    if (endsMessage(tag)) break;
    reader.skip(tag & 7);
  }
  return message;
}

function decodeHeaderMap(reader: Reader, length: number, depth: number): HeaderMap {
  depthGuard(depth);
  const end = reader.pos + length;
  const headers: HeaderValue[] = [];
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (tag === 10) {
      headers.push(decodeHeaderValue(reader, reader.uint32(), depth + 1));
      continue;
    }
    if (endsMessage(tag)) break;
    reader.skip(tag & 7);
  }
  return { headers };
}

function decodeHeaderValue(reader: Reader, length: number, depth: number): HeaderValue {
  depthGuard(depth);
  const end = reader.pos + length;
  let key = "";
  let value = "";
  let rawValue: Uint8Array = EMPTY;
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag) {
      case 10:
        key = reader.string();
        continue;
      case 18:
        value = reader.string();
        continue;
      case 26:
        rawValue = reader.bytes();
        continue;
    }
    if (endsMessage(tag)) break;
    reader.skip(tag & 7);
  }
  return { key, value, rawValue };
}

function decodeHttpBody(reader: Reader, length: number, depth: number): HttpBody {
  depthGuard(depth);
  const end = reader.pos + length;
  const message: HttpBody = { body: EMPTY, endOfStream: false };
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag) {
      case 10:
        message.body = reader.bytes();
        continue;
      case 16:
        message.endOfStream = reader.bool();
        continue;
    }
    if (endsMessage(tag)) break;
    reader.skip(tag & 7);
  }
  return message;
}

function decodeHttpTrailers(reader: Reader, length: number, depth: number): HttpTrailers {
  depthGuard(depth);
  const end = reader.pos + length;
  const message: HttpTrailers = { trailers: undefined };
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (tag === 10) {
      message.trailers = decodeHeaderMap(reader, reader.uint32(), depth + 1);
      continue;
    }
    if (endsMessage(tag)) break;
    reader.skip(tag & 7);
  }
  return message;
}

/** The parts of @bufbuild/protobuf's BinaryWriter (2.x) that let one writer be reused without finish()'s copy. */
interface WriterState {
  buffer: Uint8Array;
  pos: number;
  stackPos: number[];
}

function writerState(w: BinaryWriter): WriterState | undefined {
  const s = w as unknown as Partial<WriterState>;
  return s.buffer instanceof Uint8Array && typeof s.pos === "number" && Array.isArray(s.stackPos)
    ? s as WriterState
    : undefined;
}

/** A writer that grew past this (a large immediate response) is dropped rather than kept for good. */
const MAX_KEPT_BYTES = 1 << 20;
/** Reused by every encode: encoding is synchronous, and each result is copied out before the next one starts. */
let shared = new BinaryWriter();

export function encodeProcessingResponse(message: ProcessingResponse): Buffer {
  const w = shared;
  const state = writerState(w);
  // Another version of the library: no reuse, the generated way.
  if (!state) return Buffer.from(ProcessingResponse.encode(message).finish());
  try {
    ProcessingResponse.encode(message, w);
    const out = Buffer.allocUnsafe(state.pos);
    out.set(state.buffer.subarray(0, state.pos));
    return out;
  } finally {
    // Also after an encoding error half-way.
    state.pos = 0;
    state.stackPos.length = 0;
    if (state.buffer.length > MAX_KEPT_BYTES) shared = new BinaryWriter();
  }
}

/** The ExtProc service as the server registers it: the generated definition with the codec above. */
export const ExtProcServiceDefinition = {
  process: {
    ...ExternalProcessorService.process,
    requestDeserialize: (value: Buffer): ProcessingRequest => decodeProcessingRequest(value),
    responseSerialize: (value: ProcessingResponse): Buffer => encodeProcessingResponse(value),
  },
} as const;
