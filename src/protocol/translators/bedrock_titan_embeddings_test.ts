import fc from "fast-check";
import { assert, assertEquals, assertMatch } from "../../../test/support/assert.ts";
import type { TokenUsage } from "../usage.ts";
import { bedrockTitanEmbeddings } from "./bedrock_titan_embeddings.ts";
import { isClientError } from "./translator.ts";
import type { ClientEndpoint, TranslateRequest } from "./translator.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DIR = new URL("../../../testdata/translators/bedrock_titan/", import.meta.url);

interface Vector {
  readonly description: string;
  readonly request: {
    readonly endpoint?: ClientEndpoint;
    readonly model: string;
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
    readonly headers?: Record<string, string>;
    readonly body: unknown;
  };
  readonly clientResponse?: unknown;
  readonly usage?: TokenUsage;
  readonly failure?: string;
}

function loadVectors(): Vector[] {
  const names = [...Deno.readDirSync(DIR)].map((e) => e.name).filter((n) => n.endsWith(".json")).sort();
  return names.flatMap((n) => [JSON.parse(Deno.readTextFileSync(new URL(n, DIR)))].flat() as Vector[]);
}

function embeddingsRequest(v: Vector["request"]): TranslateRequest {
  return {
    endpoint: v.endpoint ?? "embeddings",
    body: v.body,
    rawBody: encoder.encode(JSON.stringify(v.body)),
    model: v.model,
    stream: false,
    forceStreamUsage: false,
    backend: { name: "AWSBedrock" },
  };
}

function checkVector(v: Vector): void {
  const r = embeddingsRequest(v.request);
  const up = bedrockTitanEmbeddings.request(r);
  if (v.clientError) {
    assert(isClientError(up), "a client error");
    assertEquals(up.status, v.clientError.status);
    assertEquals(up.param, v.clientError.param);
    if (v.clientError.message) assertEquals(up.message, v.clientError.message);
    else assertMatch(up.message, /^Cannot translate request for AWS Bedrock Titan embeddings: \S/);
  } else if (v.upstreamRequest) {
    assert(!isClientError(up), `no client error, got ${JSON.stringify(up)}`);
    assertEquals(up.path, v.upstreamRequest.path);
    assertEquals(up.headers, v.upstreamRequest.headers);
    assertEquals(JSON.parse(decoder.decode(up.body)), v.upstreamRequest.body);
  }
  const u = v.upstreamResponse;
  if (!u) return;
  const bytes = encoder.encode(JSON.stringify(u.body));
  const t = bedrockTitanEmbeddings.response(r);
  assertEquals(t.headers(u.status, new Map(Object.entries(u.headers ?? {}))), { "content-type": "application/json" });
  // A buffered body may still arrive in pieces: nothing is answered before the end.
  assertEquals(t.body(bytes.slice(0, 3), false).length, 0);
  assertEquals(JSON.parse(decoder.decode(t.body(bytes.slice(3), true))), v.clientResponse);
  assertEquals(t.usage, v.usage ?? {});
  assertEquals(t.failure, v.failure);
}

Deno.test("bedrockTitanEmbeddings translates every vector in testdata/translators/bedrock_titan", async (t) => {
  for (const v of loadVectors()) await t.step(v.description, () => checkVector(v));
});

Deno.test("bedrockTitanEmbeddings request() never throws on arbitrary JSON bodies (property)", () => {
  const body = fc.oneof(
    fc.dictionary(fc.string(), fc.jsonValue()),
    fc.record({ input: fc.jsonValue(), dimensions: fc.jsonValue(), encoding_format: fc.jsonValue() }),
  );
  fc.assert(
    fc.property(body, (b) => {
      const out = bedrockTitanEmbeddings.request(embeddingsRequest({ model: "amazon.titan-embed-text-v2:0", body: b }));
      if (isClientError(out)) assertMatch(out.message, /^Cannot translate request for AWS Bedrock Titan embeddings: /);
      else assertEquals(typeof JSON.parse(decoder.decode(out.body)).inputText, "string");
    }),
    { numRuns: 500 },
  );
});
