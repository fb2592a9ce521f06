import fc from "fast-check";
import { Buffer } from "node:buffer";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { ProcessingRequest, ProcessingResponse } from "./gen/envoy/service/ext_proc/v3/external_processor.ts";
import { decodeProcessingRequest, encodeProcessingResponse, ExtProcServiceDefinition } from "./ext_proc_codec.ts";
import { continueResponse, headerMutation, immediateResponse, routerProcessingMode } from "./ext_proc.ts";
import { bodyRequest, headersRequest } from "./ext_proc_request.ts";

const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 40 }));
const structValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    text,
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(text, tie("value"), { maxKeys: 3 }),
  ),
})).value;
const struct = fc.dictionary(text, structValue, { maxKeys: 3 });
const headerValue = fc.record({ key: text, value: text, rawValue: fc.uint8Array({ maxLength: 60 }) });
const headerMap = fc.record({ headers: fc.array(headerValue, { maxLength: 8 }) });
const httpHeaders = fc.record({
  headers: fc.option(headerMap, { nil: undefined }),
  attributes: fc.dictionary(text, struct, { maxKeys: 2 }),
  endOfStream: fc.boolean(),
});
const httpBody = fc.record({ body: fc.uint8Array({ maxLength: 200 }), endOfStream: fc.boolean() });
const httpTrailers = fc.record({ trailers: fc.option(headerMap, { nil: undefined }) });
const request = fc.oneof(
  fc.constant(undefined),
  fc.record({ $case: fc.constantFrom("requestHeaders" as const, "responseHeaders" as const), value: httpHeaders }),
  fc.record({ $case: fc.constantFrom("requestBody" as const, "responseBody" as const), value: httpBody }),
  fc.record({ $case: fc.constantFrom("requestTrailers" as const, "responseTrailers" as const), value: httpTrailers }),
);
const processingRequest: fc.Arbitrary<ProcessingRequest> = fc.record({
  request,
  metadataContext: fc.option(fc.record({ filterMetadata: fc.dictionary(text, struct, { maxKeys: 2 }) }), {
    nil: undefined,
  }),
  attributes: fc.dictionary(text, struct, { maxKeys: 2 }),
  observabilityMode: fc.boolean(),
}).map((r) => ProcessingRequest.fromPartial(r as never));

/** The generated decoder's answer: a value, or the error it throws (by message). */
function generated(bytes: Uint8Array): { value: ProcessingRequest } | { error: string } {
  try {
    return { value: ProcessingRequest.decode(bytes) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function ours(bytes: Uint8Array): { value: ProcessingRequest } | { error: string } {
  try {
    return { value: decodeProcessingRequest(bytes) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

Deno.test("decodeProcessingRequest reads every ProcessingRequest as the generated decoder does", () => {
  fc.assert(
    fc.property(processingRequest, (r) => {
      const bytes = ProcessingRequest.encode(r).finish();
      assertEquals(ours(bytes), generated(bytes));
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeProcessingRequest agrees with the generated decoder on truncated, spliced and random bytes", () => {
  const damaged = fc.tuple(processingRequest, fc.nat(), fc.uint8Array({ maxLength: 6 })).map(([r, cut, junk]) => {
    const bytes = ProcessingRequest.encode(r).finish();
    const at = bytes.length === 0 ? 0 : cut % bytes.length;
    return Uint8Array.from([...bytes.subarray(0, at), ...junk, ...bytes.subarray(at + junk.length)]);
  });
  fc.assert(
    fc.property(fc.oneof(damaged, fc.uint8Array({ maxLength: 300 })), (bytes) => {
      assertEquals(ours(bytes), generated(bytes));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("decodeProcessingRequest decodes the messages Envoy sends on every request", () => {
  const headers = ProcessingRequest.encode(headersRequest("requestHeaders", { ":path": "/v1/chat/completions" }))
    .finish();
  const h = decodeProcessingRequest(headers).request;
  assert(h?.$case === "requestHeaders");
  assertEquals(h.value.headers?.headers[0]?.key, ":path");
  assertEquals(new TextDecoder().decode(h.value.headers?.headers[0]?.rawValue), "/v1/chat/completions");
  const body = decodeProcessingRequest(ProcessingRequest.encode(bodyRequest("requestBody", "{}", true)).finish());
  assertEquals(body.request, {
    $case: "requestBody",
    value: { body: new TextEncoder().encode("{}"), endOfStream: true },
  });
});

const processingResponse: fc.Arbitrary<ProcessingResponse> = fc.tuple(
  fc.constantFrom(
    "requestHeaders" as const,
    "responseHeaders" as const,
    "requestBody" as const,
    "responseBody" as const,
    "requestTrailers" as const,
    "responseTrailers" as const,
    "immediate" as const,
  ),
  fc.dictionary(text, text, { maxKeys: 4 }),
  fc.array(text, { maxLength: 3 }),
  fc.option(fc.uint8Array({ maxLength: 300 }), { nil: undefined }),
  fc.boolean(),
  fc.option(fc.dictionary(text, struct, { maxKeys: 2 }), { nil: undefined }),
  fc.boolean(),
).map(([phase, set, remove, body, clearRouteCache, dynamicMetadata, modeOverride]) => {
  const r = phase === "immediate"
    ? immediateResponse({ status: 429, body: body ?? "", headers: set, details: remove.join(",") })
    : continueResponse(phase, {
      headerMutation: headerMutation(set, remove),
      ...(body ? { body, replace: clearRouteCache } : {}),
      clearRouteCache,
    });
  if (dynamicMetadata) r.dynamicMetadata = dynamicMetadata;
  if (modeOverride) r.modeOverride = routerProcessingMode();
  return r;
});

Deno.test("encodeProcessingResponse writes the generated encoder's bytes, message after message", () => {
  fc.assert(
    fc.property(fc.array(processingResponse, { minLength: 1, maxLength: 4 }), (responses) => {
      const ours = responses.map(encodeProcessingResponse);
      for (const [i, r] of responses.entries()) {
        assert(Buffer.isBuffer(ours[i]));
        assertEquals([...ours[i]!], [...ProcessingResponse.encode(r).finish()]);
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("encodeProcessingResponse starts afresh after a message that failed to encode", () => {
  const bad = continueResponse("requestHeaders", { headerMutation: headerMutation({ a: "b" }) });
  (bad.response!.value as { response: { status: number } }).response.status = -5.5;
  let threw = false;
  try {
    encodeProcessingResponse(bad);
  } catch {
    threw = true;
  }
  assert(threw, "a non-integer enum value should not encode");
  const good = continueResponse("requestBody", { headerMutation: headerMutation({ "x-ai-eg-model": "m" }) });
  assertEquals([...encodeProcessingResponse(good)], [...ProcessingResponse.encode(good).finish()]);
});

Deno.test("ExtProcServiceDefinition is the generated service with the codec above", () => {
  const d = ExtProcServiceDefinition.process;
  assertEquals(d.path, "/envoy.service.ext_proc.v3.ExternalProcessor/Process");
  assertEquals([d.requestStream, d.responseStream], [true, true]);
  const r = continueResponse("responseBody");
  assertEquals(
    d.responseDeserialize(d.responseSerialize(r)),
    ProcessingResponse.decode(ProcessingResponse.encode(r).finish()),
  );
});
