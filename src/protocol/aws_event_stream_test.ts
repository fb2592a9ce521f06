import { assertEquals } from "../../test/support/assert.ts";
import { AwsEventStreamParser, encodeAwsEvent } from "./aws_event_stream.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("AwsEventStreamParser decodes frames fed one byte at a time", () => {
  const frames = [
    encodeAwsEvent("messageStart", encoder.encode(`{"role":"assistant"}`)),
    encodeAwsEvent("contentBlockDelta", encoder.encode(`{"delta":{"text":"Hi"},"contentBlockIndex":0}`)),
    encodeAwsEvent("throttlingException", encoder.encode(`{"message":"slow down"}`), "exception"),
  ];
  const bytes = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    bytes.set(f, at);
    at += f.length;
  }
  const p = new AwsEventStreamParser();
  const events = [...bytes].flatMap((b) => p.push(new Uint8Array([b])));
  assertEquals(events.map((e) => [e.messageType, e.eventType, decoder.decode(e.payload)]), [
    ["event", "messageStart", `{"role":"assistant"}`],
    ["event", "contentBlockDelta", `{"delta":{"text":"Hi"},"contentBlockIndex":0}`],
    ["exception", "throttlingException", `{"message":"slow down"}`],
  ]);
  assertEquals(p.pending, 0);
});

Deno.test("AwsEventStreamParser rejects a frame whose checksum is wrong", () => {
  const frame = encodeAwsEvent("chunk", encoder.encode("{}"));
  frame[frame.length - 1]! ^= 0xff;
  let error = "";
  try {
    new AwsEventStreamParser().push(frame);
  } catch (e) {
    error = (e as Error).message;
  }
  assertEquals(error.length > 0, true);
});
