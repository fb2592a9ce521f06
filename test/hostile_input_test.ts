// Hostile input, property-tested with fast-check: every parser on the request path gets arbitrary input and must
// answer with a value or its own typed error — never a crash, a hang, or (through the gateway) a 5xx where the
// client is at fault. Seeds are printed by fast-check on failure, so a counterexample can be replayed.
import fc from "fast-check";
import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "./support/assert.ts";
import { startGateway } from "./support/gateway_fixture.ts";
import { chatCompletion } from "./support/fake_upstream.ts";
import { startExtProc } from "./support/extproc_fixture.ts";
import { sseEvent, SseParser } from "../src/protocol/sse.ts";
import { AwsEventStreamParser, encodeAwsEvent } from "../src/protocol/aws_event_stream.ts";
import { parseResources } from "../src/control/resources/load.ts";
import { decodeRlsRequest, encodeRlsRequest } from "../src/edge/rate_limit_descriptors.ts";
import { bodyRequest, headersRequest } from "../src/protocol/ext_proc_request.ts";
import type { ProcessingRequest } from "../src/protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { decodeUsageEvent, UsageEventError } from "../src/usage/usage_event.ts";
import { parseRlsConfig } from "../src/usage/rls_config.ts";

const encoder = new TextEncoder();

/** Cuts `bytes` at the given points (sorted, deduplicated, within range). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

Deno.test("SseParser never throws on arbitrary bytes, and chunking never changes the events it reads", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), fc.array(fc.nat(600), { maxLength: 8 }), (bytes, cuts) => {
      const whole = new SseParser();
      const expected = [...whole.push(bytes), ...whole.end()];
      const chunked = new SseParser();
      const got = [...split(bytes, cuts).flatMap((c) => chunked.push(c)), ...chunked.end()];
      assertEquals(got, expected);
    }),
    { numRuns: 500 },
  );
  // Well-formed streams, however they are cut, give back exactly the data that was sent.
  fc.assert(
    fc.property(
      fc.array(fc.string({ unit: "grapheme", maxLength: 40 }).filter((s) => !/[\r\n]/.test(s)), { maxLength: 6 }),
      fc.array(fc.nat(2000), { maxLength: 8 }),
      (datas, cuts) => {
        const bytes = new Uint8Array(datas.flatMap((d) => [...sseEvent(d)]));
        const parser = new SseParser();
        const events = [...split(bytes, cuts).flatMap((c) => parser.push(c)), ...parser.end()];
        assertEquals(events.map((e) => e.data), datas);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("AwsEventStreamParser reads split frames whole, and on garbage fails with its own error, not a crash", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.stringMatching(/^[a-zA-Z]{1,20}$/), fc.uint8Array({ maxLength: 300 })), { maxLength: 5 }),
      fc.array(fc.nat(4000), { maxLength: 10 }),
      (events, cuts) => {
        const bytes = new Uint8Array(events.flatMap(([type, payload]) => [...encodeAwsEvent(type, payload)]));
        const parser = new AwsEventStreamParser();
        const got = split(bytes, cuts).flatMap((c) => parser.push(c));
        assertEquals(got.map((e) => e.eventType), events.map(([type]) => type));
        assertEquals(got.map((e) => [...e.payload]), events.map(([, payload]) => [...payload]));
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      try {
        new AwsEventStreamParser().push(bytes);
      } catch (err) {
        assert(err instanceof Error, "a thrown value is an Error");
        assert(/event-stream|prelude|CRC|checksum|header|frame/i.test(err.message), `clear message: ${err.message}`);
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("the resource loader turns any YAML text into resources or located errors, never an exception", () => {
  const valid = Deno.readTextFileSync(
    new URL("../testdata/resources/token_ratelimit/token_ratelimit.yaml", import.meta.url),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (text) => {
      const result = parseResources(text, "fuzz.yaml");
      for (const e of result.errors) assertEquals(e.file, "fuzz.yaml");
    }),
    { numRuns: 300 },
  );
  // Mutations of a real config: a byte replaced, a slice deleted, a slice duplicated.
  fc.assert(
    fc.property(fc.nat(valid.length - 1), fc.nat(40), fc.string({ maxLength: 3 }), (at, len, insert) => {
      for (
        const text of [valid.slice(0, at) + insert + valid.slice(at + 1), valid.slice(0, at) + valid.slice(at + len)]
      ) {
        const result = parseResources(text, "mutated.yaml");
        assert(result.resources.length + result.errors.length + result.ignored.length > 0, "something is said");
      }
    }),
    { numRuns: 200 },
  );
});

Deno.test("envoyproxy/ratelimit config: arbitrary YAML is refused with errors, never an exception", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), fc.jsonValue({ maxDepth: 4 }), (text, json) => {
      for (const t of [text, `domain: d\ndescriptors: ${JSON.stringify(json)}\n`]) {
        const result = parseRlsConfig([{ file: "rls.yaml", text: t }]);
        if (!result.ok) assert(result.errors.length > 0);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("RLS requests: a round trip keeps every descriptor, and arbitrary bytes never crash the decoder", () => {
  const entry = fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 })).map(([key, value]) => ({
    key,
    value,
  }));
  fc.assert(
    fc.property(
      fc.string({ maxLength: 20 }),
      fc.array(fc.array(entry, { minLength: 1, maxLength: 4 }).map((entries) => ({ entries })), { maxLength: 4 }),
      fc.nat(1000),
      (domain, descriptors, hitsAddend) => {
        const request = { domain, descriptors, hitsAddend };
        const back = decodeRlsRequest(encodeRlsRequest(request));
        assertEquals(back.domain, domain);
        assertEquals(back.hitsAddend, hitsAddend);
        assertEquals(back.descriptors.map((d) => d.entries), descriptors.map((d) => d.entries));
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeRlsRequest(bytes);
      } catch (err) {
        assert(err instanceof Error);
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("usage events: arbitrary JSON is refused with a UsageEventError, never another exception", () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.string()), (value) => {
      const result = decodeUsageEvent(encoder.encode(typeof value === "string" ? value : JSON.stringify(value)));
      assert(result instanceof UsageEventError || typeof result === "object");
    }),
    { numRuns: 500 },
  );
});

/** A JSON body shaped like a chat request, with any field possibly wrong. */
const chatish = fc.record({
  model: fc.oneof(fc.constant("gpt-4o-mini"), fc.string({ maxLength: 30 }), fc.integer(), fc.constant(null)),
  messages: fc.oneof(
    fc.array(
      fc.record({
        role: fc.oneof(
          fc.constantFrom("user", "system", "assistant", "tool", "developer"),
          fc.string({ maxLength: 8 }),
        ),
        content: fc.oneof(fc.string({ maxLength: 40 }), fc.jsonValue({ maxDepth: 2 })),
      }, { requiredKeys: [] }),
      { maxLength: 3 },
    ),
    fc.jsonValue({ maxDepth: 2 }),
  ),
  stream: fc.oneof(fc.boolean(), fc.jsonValue({ maxDepth: 1 })),
  max_tokens: fc.oneof(fc.integer(), fc.string({ maxLength: 5 })),
  temperature: fc.oneof(fc.double(), fc.string({ maxLength: 5 })),
}, { requiredKeys: [] });

Deno.test("through the gateway, any body on any endpoint is answered 2xx or 4xx in the client's format, never 5xx", async () => {
  await using gw = await startGateway({
    upstreams: { openai: (r) => chatCompletion(JSON.parse(r.body).model ?? "m", "ok") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  const paths = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/anthropic/v1/messages"];
  const body = fc.oneof(
    chatish.map((b) => JSON.stringify(b)),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((b) => new TextDecoder().decode(b)),
  );
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...paths), body, async (path, text) => {
      const res = await fetch(`${gw.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: text,
      });
      const answer = await res.text();
      assert(res.status < 500, `${path} ${JSON.stringify(text).slice(0, 200)} → ${res.status} ${answer}`);
      if (res.status >= 400) {
        const parsed = JSON.parse(answer);
        if (path.startsWith("/anthropic")) assertEquals(parsed.type, "error", answer);
        else assert(typeof parsed.error?.message === "string", answer);
      }
    }),
    { numRuns: 300 },
  );
  assertEquals(gw.extproc.openStreams, 0, "no stream left open");
});

const EMPTY: ProcessingRequest = {
  request: undefined,
  metadataContext: undefined,
  attributes: {},
  observabilityMode: false,
};

/** Any sequence of ExtProc messages, in any order: the server answers or ends the stream, and frees it. */
Deno.test("ExtProc messages in any order end each stream with a response or INVALID_ARGUMENT and leak nothing", async () => {
  await using fx = await startExtProc("unix");
  const chat = { ":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json" };
  const message = fc.constantFrom(
    () => headersRequest("requestHeaders", chat),
    () => bodyRequest("requestBody", JSON.stringify({ model: "gpt-4o-mini", messages: [] }), true),
    () => bodyRequest("requestBody", "{", false),
    () => headersRequest("responseHeaders", { ":status": "200" }),
    () => bodyRequest("responseBody", "{}", true),
    (): ProcessingRequest => ({ ...EMPTY, request: { $case: "requestTrailers", value: { trailers: undefined } } }),
    (): ProcessingRequest => ({ ...EMPTY, request: { $case: "responseTrailers", value: { trailers: undefined } } }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom<"router" | "upstream">("router", "upstream"),
      fc.array(message, { maxLength: 6 }),
      async (role, seq) => {
        const s = fx.client.open(role);
        for (const make of seq) s.write(make());
        const end = await Promise.race([
          s.end(),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the stream hung")), 5000)),
        ]);
        assert(
          end.code === grpc.status.OK || end.code === grpc.status.INVALID_ARGUMENT,
          `ended with ${end.code}: ${end.details}`,
        );
      },
    ),
    { numRuns: 200 },
  );
  assertEquals(fx.server.openStreams, 0);
  assertEquals(fx.server.registeredRouters, 0);
});

Deno.test("YAML aliases without an anchor, and alias bombs, are config errors, not crashes", () => {
  const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    .concat(
      Array.from({ length: 8 }, (_, i) => `${"bcdefghi"[i]}: &${"bcdefghi"[i]} [${`*${"abcdefgh"[i]}, `.repeat(9)}]`),
    )
    .join("\n");
  for (const text of ["apiVersion: *nowhere", bomb]) {
    const resources = parseResources(text, "alias.yaml");
    assertEquals(resources.errors.map((e) => e.message.startsWith("Invalid YAML")), [true], text);
    const rls = parseRlsConfig([{ file: "alias.yaml", text }]);
    assert(!rls.ok && rls.errors.some((e) => e.message.startsWith("Invalid YAML")), text);
  }
});
