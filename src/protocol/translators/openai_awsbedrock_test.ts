import fc from "fast-check";
import { assert, assertEquals, assertMatch } from "../../../test/support/assert.ts";
import { frame } from "../../../test/support/fake_bedrock.ts";
import type { FakeStreamEvent } from "../../../test/support/fake_bedrock.ts";
import type { TokenUsage } from "../usage.ts";
import { openaiAwsBedrock } from "./openai_awsbedrock.ts";
import { isClientError } from "./translator.ts";
import type { ClientEndpoint, TranslateRequest } from "./translator.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DIR = new URL("../../../testdata/translators/openai_awsbedrock/", import.meta.url);

interface Vector {
  readonly description: string;
  readonly request: {
    readonly endpoint?: ClientEndpoint;
    readonly model: string;
    readonly stream?: boolean;
    readonly forceStreamUsage?: boolean;
    readonly body: Record<string, unknown>;
  };
  readonly upstreamRequest?: {
    readonly path: string;
    readonly headers: Record<string, string>;
    readonly body: unknown;
  };
  readonly clientError?: { readonly status: number; readonly param?: string; readonly message?: string };
  readonly upstreamResponse?: {
    readonly status: number;
    readonly headers: Record<string, string>;
    readonly body?: unknown;
    readonly rawBody?: string;
    readonly events?: readonly FakeStreamEvent[];
    readonly dropLastBytes?: number;
  };
  readonly clientResponse?: {
    readonly headers: Record<string, string>;
    readonly body?: unknown;
    readonly sse?: unknown[];
  };
  readonly usage?: TokenUsage;
  readonly failure?: string;
}

function loadVectors(): Vector[] {
  const names = [...Deno.readDirSync(DIR)].map((e) => e.name).filter((n) => n.endsWith(".json")).sort();
  return names.flatMap((n) => [JSON.parse(Deno.readTextFileSync(new URL(n, DIR)))].flat() as Vector[]);
}

function translateRequest(v: Vector["request"]): TranslateRequest {
  return {
    endpoint: v.endpoint ?? "chatCompletions",
    body: v.body,
    rawBody: encoder.encode(JSON.stringify(v.body)),
    model: v.model,
    stream: v.stream ?? false,
    forceStreamUsage: v.forceStreamUsage ?? false,
    backend: { name: "AWSBedrock" },
  };
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

function upstreamBytes(u: NonNullable<Vector["upstreamResponse"]>): Uint8Array {
  const bytes = u.events ? concat(u.events.map(frame)) : encoder.encode(u.rawBody ?? JSON.stringify(u.body));
  return bytes.slice(0, bytes.length - (u.dropLastBytes ?? 0));
}

/** Feeds the chunks as the edge would, the last one flagged endOfStream. */
function translateResponse(r: TranslateRequest, status: number, headers: Record<string, string>, chunks: Uint8Array[]) {
  const t = openaiAwsBedrock.response(r);
  const h = t.headers(status, new Map(Object.entries(headers)));
  const body = concat(chunks.map((c, i) => t.body(c, i === chunks.length - 1)));
  return { headers: h, body, usage: t.usage, failure: t.failure };
}

function sseData(bytes: Uint8Array): unknown[] {
  const text = decoder.decode(bytes);
  assert(text.endsWith("\n\n"), "every event ends with a blank line");
  return text.slice(0, -2).split("\n\n").map((e) => {
    assert(e.startsWith("data: "), `an SSE data event: ${e}`);
    const data = e.slice(6);
    return data === "[DONE]" ? data : JSON.parse(data);
  });
}

function checkVector(v: Vector): void {
  const r = translateRequest(v.request);
  const up = openaiAwsBedrock.request(r);
  assertEquals(openaiAwsBedrock.request(r), up, "request() is idempotent");
  if (v.clientError) {
    assert(isClientError(up), "a client error");
    assertEquals(up.status, v.clientError.status);
    assertEquals(up.param, v.clientError.param);
    if (v.clientError.message) assertEquals(up.message, v.clientError.message);
    else assertMatch(up.message, /^Cannot translate request for AWS Bedrock[^:]*: \S/);
  } else if (v.upstreamRequest) {
    assert(!isClientError(up), `no client error, got ${JSON.stringify(up)}`);
    assertEquals(up.path, v.upstreamRequest.path);
    assertEquals(up.headers, v.upstreamRequest.headers);
    assertEquals(JSON.parse(decoder.decode(up.body)), v.upstreamRequest.body);
  }
  const u = v.upstreamResponse;
  if (!u || !v.clientResponse) return;
  const bytes = upstreamBytes(u);
  const whole = translateResponse(r, u.status, u.headers, [bytes]);
  const byByte = translateResponse(r, u.status, u.headers, [
    ...[...bytes].map((b) => Uint8Array.of(b)),
    new Uint8Array(),
  ]);
  assertEquals(byByte, whole, "fed one byte at a time, the translation is the same");
  assertEquals(whole.headers, v.clientResponse.headers);
  if (v.clientResponse.sse) assertEquals(sseData(whole.body), v.clientResponse.sse);
  else {
    const body = JSON.parse(decoder.decode(whole.body));
    const expected = { ...v.clientResponse.body as Record<string, unknown> };
    if (expected.id === "chatcmpl-@hash") {
      // Without x-amzn-requestid the id is a hash of the request: stable, but opaque.
      assertMatch(body.id, /^chatcmpl-[0-9a-f]{8}$/);
      expected.id = body.id;
    }
    assertEquals(body, expected);
  }
  assertEquals(whole.usage, v.usage ?? {});
  assertEquals(whole.failure, v.failure);
}

Deno.test("openaiAwsBedrock translates every vector in testdata/translators/openai_awsbedrock", async (t) => {
  for (const v of loadVectors()) await t.step(v.description, () => checkVector(v));
});

function chat(body: Record<string, unknown>, stream = false): TranslateRequest {
  return translateRequest({ model: "anthropic.claude-3-haiku-20240307-v1:0", stream, body });
}

Deno.test("openaiAwsBedrock request() never throws and refuses garbage with a sentence-case error (property)", () => {
  const role = fc.constantFrom("system", "developer", "user", "assistant", "tool", "function", "x");
  const message = fc.record({
    role,
    content: fc.oneof(fc.string(), fc.jsonValue(), fc.array(fc.record({ type: fc.string(), text: fc.jsonValue() }))),
    tool_calls: fc.jsonValue(),
    tool_call_id: fc.jsonValue(),
  }, { requiredKeys: ["role"] });
  const body = fc.oneof(
    fc.dictionary(fc.string(), fc.jsonValue()),
    fc.record({ messages: fc.array(message), tools: fc.jsonValue(), tool_choice: fc.jsonValue() }, {
      requiredKeys: [],
    }),
    fc.record({ messages: fc.jsonValue(), temperature: fc.jsonValue(), stop: fc.jsonValue(), n: fc.jsonValue() }),
  );
  fc.assert(
    fc.property(body, fc.boolean(), (b, stream) => {
      const out = openaiAwsBedrock.request(chat(b as Record<string, unknown>, stream));
      if (isClientError(out)) {
        assert(out.status === 400 || out.status === 422);
        assertMatch(out.message, /^[A-Z]/);
      } else {
        const converse = JSON.parse(decoder.decode(out.body));
        assert(Array.isArray(converse.messages) && converse.messages.length > 0);
      }
      if (!Array.isArray((b as Record<string, unknown>).messages)) assert(isClientError(out));
    }),
    { numRuns: 500 },
  );
});

Deno.test("openaiAwsBedrock response() never throws on arbitrary upstream bytes (property)", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, stream) => {
    const r = chat({ messages: [{ role: "user", content: "x" }] }, stream);
    const out = translateResponse(r, 200, {}, [bytes.slice(0, 7), bytes.slice(7)]);
    assert(out.failure !== undefined, "garbage is reported as a failure");
    if (stream) assert(decoder.decode(out.body).endsWith("data: [DONE]\n\n"));
    else assertEquals(JSON.parse(decoder.decode(out.body)).error.type, "server_error");
  }));
});

Deno.test("openaiAwsBedrock gives the same stream however the upstream bytes are split (property)", () => {
  const v = loadVectors().find((x) => x.description.startsWith("streams tool calls"))!;
  const r = translateRequest(v.request);
  const bytes = upstreamBytes(v.upstreamResponse!);
  const expected = translateResponse(r, 200, {}, [bytes]);
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 10 }), (cuts) => {
    const points = [...new Set([0, ...cuts, bytes.length])].sort((a, b) => a - b);
    const chunks = points.slice(1).map((end, i) => bytes.slice(points[i], end));
    assertEquals(translateResponse(r, 200, {}, chunks), expected);
  }));
});

Deno.test("openaiAwsBedrock sends nothing after the end of a stream it already closed", () => {
  const r = chat({ messages: [{ role: "user", content: "x" }] }, true);
  const t = openaiAwsBedrock.response(r);
  t.headers(200, new Map());
  const events = [
    { exception: "modelStreamErrorException", payload: { message: "Model failed" } },
  ] satisfies FakeStreamEvent[];
  const first = decoder.decode(t.body(concat(events.map(frame)), false));
  assertEquals(sseData(encoder.encode(first)).at(-1), "[DONE]");
  assertEquals(t.body(frame({ event: "messageStop", payload: { stopReason: "end_turn" } }), true).length, 0);
  assertEquals(t.failure, "modelStreamErrorException: Model failed");
});
