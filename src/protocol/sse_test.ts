import fc from "fast-check";
import { assertEquals } from "../../test/support/assert.ts";
import { sseEvent, SseParser } from "./sse.ts";

const encoder = new TextEncoder();

function parseAll(chunks: Uint8Array[]) {
  const p = new SseParser();
  return [...chunks.flatMap((c) => p.push(c)), ...p.end()];
}

const stream = 'event: message_start\r\ndata: {"a":1}\r\n\r\n: comment\n' +
  "data: line one\ndata: line two\n\nid: 7\ndata: é€😀\n\ndata: [DONE]\n\n";
const expected = [
  { event: "message_start", data: '{"a":1}' },
  { data: "line one\nline two" },
  { data: "é€😀", id: "7" },
  // The last event id persists until another id field, as the spec says.
  { data: "[DONE]", id: "7" },
];

Deno.test("SseParser reads events, multi-line data, comments, ids and CRLF", () => {
  assertEquals(parseAll([encoder.encode(stream)]), expected);
});

Deno.test("SseParser gives the same events when fed one byte at a time", () => {
  const bytes = encoder.encode(stream);
  assertEquals(parseAll([...bytes].map((b) => new Uint8Array([b]))), expected);
});

Deno.test("SseParser gives the same events however the stream is split (property)", () => {
  const bytes = encoder.encode(stream);
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 12 }), (cuts) => {
    const points = [...new Set([0, ...cuts, bytes.length])].sort((a, b) => a - b);
    const chunks = points.slice(1).map((end, i) => bytes.slice(points[i], end));
    assertEquals(parseAll(chunks), expected);
  }));
});

Deno.test("SseParser dispatches an unterminated last event at the end of the stream", () => {
  assertEquals(parseAll([encoder.encode("data: tail")]), [{ data: "tail" }]);
});

Deno.test("sseEvent writes an event that SseParser reads back", () => {
  assertEquals(parseAll([sseEvent("a\nb", "delta")]), [{ event: "delta", data: "a\nb" }]);
});
