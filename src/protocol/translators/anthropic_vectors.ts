// Test support: the table-driven runner of the Anthropic family's vectors in testdata/translators/<pair>/.
//
// requests.json: [{ name, endpoint, model, stream?, forceStreamUsage?, backend, location?, body, expected }] where
//   expected is { path, headers, body } (body "UNCHANGED" = the client's bytes) or { error: { status, message } }.
// responses.json: [{ name, model, stream, forceStreamUsage?, backend, body?, upstream, expected }] where upstream is
//   { status, headers?, file } and expected { headers, file, usage, responseModel?, failure? }. A file ending in
//   .aws.json is a list of Bedrock frames to encode ({ "chunk": <Anthropic event> } or { "exception": type,
//   "message": text }); .json files compare as JSON, anything else byte for byte.
// An expected file that is the upstream file means the bytes go through unchanged.
// Every response vector is fed whole, then one byte at a time, then whole with an empty end-of-stream chunk; the
// three outputs must be identical.
import fc from "fast-check";
import { assert, assertEquals } from "../../../test/support/assert.ts";
import { encodeAwsEvent } from "../aws_event_stream.ts";
import type {
  BackendLocation,
  BackendSchema,
  ClientEndpoint,
  ResponseTranslator,
  TranslateRequest,
  Translator,
} from "./translator.ts";
import { isClientError } from "./translator.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
type Json = Record<string, unknown>;

/** The clock the OpenAI-client translators are built with in tests: 2023-11-14T22:13:20Z. */
export const TEST_NOW = () => 1_700_000_000_000;

interface Context {
  readonly endpoint?: ClientEndpoint;
  readonly model: string;
  readonly stream?: boolean;
  readonly forceStreamUsage?: boolean;
  readonly backend: BackendSchema;
  readonly location?: BackendLocation;
  readonly body?: Json;
}

export function translateRequest(c: Context, fallbackEndpoint: ClientEndpoint): TranslateRequest {
  const body = c.body ?? {};
  return {
    endpoint: c.endpoint ?? fallbackEndpoint,
    body,
    rawBody: encoder.encode(JSON.stringify(body)),
    model: c.model,
    stream: c.stream ?? false,
    forceStreamUsage: c.forceStreamUsage ?? false,
    backend: c.backend,
    ...(c.location ? { location: c.location } : {}),
  };
}

function dir(pair: string): URL {
  return new URL(`../../../testdata/translators/${pair}/`, import.meta.url);
}

async function vectors<T>(pair: string, file: string): Promise<T[]> {
  return JSON.parse(await Deno.readTextFile(new URL(file, dir(pair)))) as T[];
}

interface RequestVector extends Context {
  readonly name: string;
  readonly expected:
    | { readonly path: string; readonly headers: Record<string, string>; readonly body: unknown }
    | { readonly error: { readonly status: number; readonly message: string } };
}

export async function runRequestVectors(pair: string, translator: Translator, endpoint: ClientEndpoint) {
  for (const v of await vectors<RequestVector>(pair, "requests.json")) {
    const r = translateRequest(v, endpoint);
    const out = translator.request(r);
    if ("error" in v.expected) {
      assertEquals(isClientError(out) ? { status: out.status, message: out.message } : out, v.expected.error, v.name);
      continue;
    }
    if (isClientError(out)) throw new Error(`${v.name}: unexpected error ${out.status} ${out.message}`);
    assertEquals(
      { path: out.path, headers: out.headers },
      { path: v.expected.path, headers: v.expected.headers },
      v.name,
    );
    if (v.expected.body === "UNCHANGED") assertEquals(out.body, r.rawBody, `${v.name}: the client's bytes`);
    else assertEquals(JSON.parse(decoder.decode(out.body)), v.expected.body, v.name);
  }
}

interface ResponseVector extends Context {
  readonly name: string;
  readonly upstream: { readonly status: number; readonly headers?: Record<string, string>; readonly file: string };
  readonly expected: {
    readonly headers: Record<string, string>;
    readonly file: string;
    readonly usage: Json;
    readonly responseModel?: string;
    readonly failure?: string;
  };
}

interface AwsFrame {
  readonly chunk?: unknown;
  readonly exception?: string;
  readonly message?: string;
}

/** Bedrock's framing of Anthropic events: each event's JSON, base64, in a "chunk" frame's {"bytes"}. */
export function awsFrames(frames: readonly AwsFrame[]): Uint8Array {
  const parts = frames.map((f) =>
    f.exception !== undefined
      ? encodeAwsEvent(f.exception, encoder.encode(JSON.stringify({ message: f.message })), "exception")
      : encodeAwsEvent("chunk", encoder.encode(JSON.stringify({ bytes: btoa(JSON.stringify(f.chunk)) })))
  );
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function readFixture(pair: string, file: string): Promise<Uint8Array> {
  const bytes = await Deno.readFile(new URL(file, dir(pair)));
  if (!file.endsWith(".aws.json")) return bytes;
  return awsFrames(JSON.parse(decoder.decode(bytes)) as AwsFrame[]);
}

export interface Fed {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array<ArrayBuffer>;
  readonly translator: ResponseTranslator;
}

/** Feeds an upstream answer in the given chunks, the last one marked end of stream. */
export function feed(
  translator: Translator,
  r: TranslateRequest,
  status: number,
  upstreamHeaders: Record<string, string>,
  chunks: readonly Uint8Array[],
): Fed {
  const rt = translator.response(r);
  const headers = rt.headers(status, new Map(Object.entries(upstreamHeaders)));
  const out: number[] = [];
  chunks.forEach((c, i) => out.push(...rt.body(c, i === chunks.length - 1)));
  return { headers, body: new Uint8Array(out), translator: rt };
}

export async function runResponseVectors(pair: string, translator: Translator, endpoint: ClientEndpoint) {
  for (const v of await vectors<ResponseVector>(pair, "responses.json")) {
    const r = translateRequest(v, endpoint);
    const upstream = await readFixture(pair, v.upstream.file);
    const headers = v.upstream.headers ?? {};
    const whole = feed(translator, r, v.upstream.status, headers, [upstream]);
    const bytewise = feed(translator, r, v.upstream.status, headers, [...upstream].map((b) => new Uint8Array([b])));
    const trailing = feed(translator, r, v.upstream.status, headers, [upstream, new Uint8Array(0)]);
    assertEquals(bytewise.body, whole.body, `${v.name}: fed one byte at a time`);
    assertEquals(trailing.body, whole.body, `${v.name}: with an empty last chunk`);
    assertEquals(whole.headers, v.expected.headers, `${v.name}: headers`);
    const expected = await Deno.readFile(new URL(v.expected.file, dir(pair)));
    if (v.expected.file === v.upstream.file) {
      assertEquals(whole.body, new Uint8Array(upstream), `${v.name}: the upstream's bytes, unchanged`);
    } else if (v.expected.file.endsWith(".json")) {
      assertEquals(JSON.parse(decoder.decode(whole.body)), JSON.parse(decoder.decode(expected)), `${v.name}: body`);
    } else {
      assertEquals(decoder.decode(whole.body), decoder.decode(expected), `${v.name}: body`);
    }
    for (const fed of [whole, bytewise, trailing]) {
      assertEquals(fed.translator.usage, v.expected.usage, `${v.name}: usage`);
      assertEquals(fed.translator.responseModel, v.expected.responseModel, `${v.name}: responseModel`);
      assertEquals(fed.translator.failure, v.expected.failure, `${v.name}: failure`);
    }
  }
}

const KEYS = [
  "messages",
  "model",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "stop",
  "n",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "response_format",
  "user",
  "thinking",
  "stream_options",
  "system",
  "logprobs",
  "modalities",
];

const message = fc.record({
  role: fc.oneof(fc.constantFrom("system", "developer", "user", "assistant", "tool", "function"), fc.jsonValue()),
  content: fc.oneof(
    fc.string(),
    fc.jsonValue(),
    fc.array(fc.record({ type: fc.constantFrom("text", "image_url", "file", "refusal"), text: fc.jsonValue() })),
  ),
  tool_calls: fc.jsonValue(),
  tool_call_id: fc.jsonValue(),
}, { requiredKeys: ["role"] });

/** Mostly a valid value, sometimes any JSON. */
const mostly = <T>(valid: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: valid, weight: 9 }, { arbitrary: fc.jsonValue(), weight: 1 });

const text = fc.record({ type: fc.constant("text"), text: fc.string() });
const url = fc.oneof(fc.constant("data:image/png;base64,iVBORw0KGgo="), fc.webUrl(), fc.string());

/** Messages a real client could send, so the mapping gets past validation and its success path is exercised. */
const plausibleMessage = fc.oneof(
  fc.record({
    role: fc.constantFrom("system", "developer", "user", "assistant"),
    content: fc.oneof(fc.string(), fc.array(text, { maxLength: 3 })),
  }),
  fc.record({
    role: fc.constant("user"),
    content: fc.array(fc.oneof(text, fc.record({ type: fc.constant("image_url"), image_url: fc.record({ url }) }))),
  }),
  fc.record({
    role: fc.constant("assistant"),
    content: fc.constant(null),
    tool_calls: fc.array(
      fc.record({
        id: fc.string(),
        type: fc.constant("function"),
        function: fc.record({ name: fc.string(), arguments: mostly(fc.constantFrom("{}", `{"a":1}`, "")) }),
      }),
      { maxLength: 2 },
    ),
  }),
  fc.record({ role: fc.constant("tool"), tool_call_id: fc.string(), content: fc.string() }),
);

const plausibleBody = fc.record({
  messages: fc.array(plausibleMessage, { minLength: 1, maxLength: 6 }),
  max_tokens: mostly(fc.integer({ min: 1, max: 10_000 })),
  temperature: mostly(fc.double({ min: 0, max: 1, noNaN: true })),
  top_p: fc.double({ min: 0, max: 1, noNaN: true }),
  stop: fc.oneof(fc.string(), fc.array(fc.string())),
  tools: fc.array(
    fc.record({ type: fc.constant("function"), function: fc.record({ name: fc.string(), parameters: fc.object() }) }),
    { maxLength: 2 },
  ),
  tool_choice: mostly(fc.constantFrom("auto", "none", "required")),
  parallel_tool_calls: fc.boolean(),
  user: fc.string(),
  response_format: mostly(fc.constant({ type: "text" })),
}, { requiredKeys: ["messages"] });

/** Arbitrary JSON objects, biased towards the keys and shapes the translators read. */
export const arbitraryBody: fc.Arbitrary<Json> = fc.oneof(
  { arbitrary: fc.dictionary(fc.string(), fc.jsonValue()), weight: 1 },
  { arbitrary: fc.dictionary(fc.constantFrom(...KEYS), fc.jsonValue()), weight: 1 },
  {
    arbitrary: fc.record({
      messages: fc.array(message, { maxLength: 6 }),
      tools: fc.jsonValue(),
      tool_choice: fc.jsonValue(),
      temperature: fc.jsonValue(),
      stop: fc.jsonValue(),
    }, { requiredKeys: ["messages"] }),
    weight: 1,
  },
  { arbitrary: plausibleBody, weight: 3 },
) as fc.Arbitrary<Json>;

/**
 * request() returns an upstream request or a client error for any JSON object body; it never throws. What it sends
 * is a JSON object, and the user and assistant turns it maps from an OpenAI body alternate, as Anthropic requires.
 */
export function assertRequestNeverThrows(translator: Translator, c: Context, endpoint: ClientEndpoint): void {
  fc.assert(
    fc.property(arbitraryBody, fc.boolean(), (body, stream) => {
      const out = translator.request(translateRequest({ ...c, body, stream }, endpoint));
      if (isClientError(out)) return assert(out.status === 400 || out.status === 422, out.message);
      const sent = JSON.parse(decoder.decode(out.body)) as Json;
      assert(typeof sent === "object" && sent !== null && !Array.isArray(sent));
      if (endpoint !== "chatCompletions") return;
      const roles = (sent.messages as { role: string }[]).map((m) => m.role);
      assert(roles.every((role, i) => i === 0 || role !== roles[i - 1]), `turns alternate: ${roles.join(",")}`);
    }),
    { numRuns: 500 },
  );
}
