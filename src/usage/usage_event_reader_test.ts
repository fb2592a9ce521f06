import fc from "fast-check";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { decodeUsageEvent, encodeUsageEvent, type UsageEvent, usageEventId, usageEventTime } from "./usage_event.ts";
import { UsageEventReader } from "./usage_event_reader.ts";

const ROUTE_KEY = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";

const EXAMPLE: UsageEvent = {
  v: 1,
  id: "01972b5c-ee7b-7800-b358-7da2c7ec1136",
  time: "2025-06-01T12:00:00.123Z",
  route: "default/chat",
  backend: "default/openai",
  models: { requested: "gpt-4o", overridden: "gpt-4o-2024-11-20", responded: "gpt-4o-2024-11-20" },
  tokens: { inputTokens: 1200, cachedInputTokens: 1024, outputTokens: 300, totalTokens: 1500 },
  costs: { llm_input_token: 1200, llm_total_token: 1500 },
  descriptors: [0, 1, 2].map((r) => ({
    domain: "ai-gateway",
    entries: [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: `rule-${r}-match-0`, value: "acme" }],
    hitsAddendFrom: "llm_total_token",
  })),
  status: 200,
  latencyMs: 1834.5,
  ttftMs: 212.25,
  stream: true,
  tenant: "acme",
};

const text = new TextEncoder();
const bytesOf = (value: unknown) => text.encode(JSON.stringify(value));

/** What decodeUsageEvent makes of the bytes, or an Error (it throws for a `time` that is no date at all). */
function slow(bytes: Uint8Array): UsageEvent | Error {
  try {
    return decodeUsageEvent(bytes);
  } catch (err) {
    return err as Error;
  }
}

/** The reader's one promise: undefined, or exactly decodeUsageEvent's event (and its time). */
function agrees(reader: UsageEventReader, bytes: Uint8Array): UsageEvent | undefined {
  const fast = reader.read(bytes);
  if (fast === undefined) return undefined;
  const expected = slow(bytes);
  assert(!(expected instanceof Error), `read an event decodeUsageEvent refuses: ${new TextDecoder().decode(bytes)}`);
  assertEquals(fast, expected);
  assertEquals(reader.timeMs, Date.parse(expected.time));
  return fast;
}

/** Strings JSON.stringify writes without an escape (the reader gives up on escapes: see the next tests). */
const plain = (s: string) => [...s].every((c) => c !== '"' && c !== "\\" && c >= " " && !/\p{Cs}/u.test(c));
const name = fc.oneof(
  fc.stringMatching(/^[a-z0-9][a-z0-9./_-]{0,15}$/),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 8 }),
  fc.constantFrom(ROUTE_KEY, "x".repeat(300), "é", "\u{1F600}", "\uFEFFbom", "a\u2028b"),
).filter(plain);
const value = fc.oneof(name, fc.string().filter(plain), fc.constant(""));
const count = fc.oneof(fc.nat(1000), fc.maxSafeNat());
const millis = fc.oneof(
  fc.double({ min: 0, max: 1e7, noNaN: true, noDefaultInfinity: true }).map((x) => x + 0),
  fc.integer({ min: 0, max: 99_999 }).map((n) => n / 10),
);

const arbitraryEvent: fc.Arbitrary<UsageEvent> = fc.record({
  time: fc.integer({ min: 0, max: Date.parse("9999-12-31T23:59:59.999Z") }),
  random: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  route: name,
  backend: fc.option(name, { nil: undefined }),
  models: fc.record({ requested: name, overridden: name, responded: name }, {
    requiredKeys: ["requested"],
    noNullPrototype: true,
  }),
  tokens: fc.record({
    inputTokens: count,
    outputTokens: count,
    totalTokens: count,
    cachedInputTokens: count,
    cacheCreationInputTokens: count,
    reasoningTokens: count,
  }, { requiredKeys: [], noNullPrototype: true }),
  costs: fc.dictionary(fc.oneof(name, fc.constantFrom("constructor", "toString")), count, { noNullPrototype: true }),
  descriptors: fc.array(
    fc.record({
      domain: name,
      entries: fc.array(fc.record({ key: name, value }, { noNullPrototype: true }), { minLength: 1, maxLength: 4 }),
      hits: fc.oneof(
        fc.constant({}),
        fc.integer({ min: 0, max: 1e9 }).map((hitsAddend) => ({ hitsAddend })),
        name.map((hitsAddendFrom) => ({ hitsAddendFrom })),
      ),
      reserved: fc.option(fc.integer({ min: 0, max: 1e9 }), { nil: undefined }),
    }, { noNullPrototype: true }).map(({ hits, reserved, ...d }) => ({
      ...d,
      ...hits,
      ...(reserved !== undefined ? { reserved } : {}),
    })),
    { maxLength: 6 },
  ),
  status: fc.integer({ min: 100, max: 599 }),
  latencyMs: millis,
  streamed: fc.option(fc.option(millis, { nil: undefined }), { nil: null }),
  tenant: fc.option(name, { nil: undefined }),
  reservation: fc.option(fc.stringMatching(/^[A-Za-z0-9-]{1,64}$/), { nil: undefined }),
}, {
  requiredKeys: ["time", "random", "route", "models", "tokens", "costs", "descriptors", "status", "latencyMs"],
  noNullPrototype: true,
}).map(({ time, random, streamed, tenant, backend, reservation, ...rest }) => ({
  v: 1 as const,
  id: usageEventId(time, (into) => (into.set(random), into)),
  time: usageEventTime(time),
  ...rest,
  ...(backend !== undefined ? { backend } : {}),
  stream: streamed !== null,
  ...(streamed != null ? { ttftMs: streamed } : {}),
  ...(tenant !== undefined ? { tenant } : {}),
  ...(reservation !== undefined ? { reservation } : {}),
}));

Deno.test("UsageEventReader reads every event the sidecar writes, as decodeUsageEvent does", () => {
  const reader = new UsageEventReader();
  const small = new UsageEventReader({ maxStrings: 3, maxStringBytes: 8 });
  fc.assert(
    fc.property(fc.array(arbitraryEvent, { minLength: 1, maxLength: 4 }), (events) => {
      // Twice each: the second read goes through what the first one remembered.
      for (const e of [...events, ...events]) {
        for (const r of [reader, small]) {
          const read = agrees(r, encodeUsageEvent(e));
          assertEquals(read, e, "the reader gave up on an event in the sidecar's form");
        }
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("UsageEventReader answers the same for a descriptor whose remembered prefix is followed by anything", () => {
  const reader = new UsageEventReader();
  assertEquals(agrees(reader, bytesOf(EXAMPLE)), EXAMPLE);
  const variants = [
    // The last entry's value differs: the prefix is reused.
    {
      ...EXAMPLE,
      descriptors: EXAMPLE.descriptors.map((d) => ({
        ...d,
        entries: [d.entries[0]!, { ...d.entries[1]!, value: "bob" }],
      })),
    },
    // A third entry after the remembered one, a different addend, a domain of another length.
    {
      ...EXAMPLE,
      descriptors: EXAMPLE.descriptors.map((d) => ({ ...d, entries: [...d.entries, { key: "model", value: "m" }] })),
    },
    {
      ...EXAMPLE,
      descriptors: EXAMPLE.descriptors.map((d) => ({ domain: d.domain, entries: d.entries, hitsAddend: 7 })),
    },
    { ...EXAMPLE, descriptors: EXAMPLE.descriptors.map((d) => ({ ...d, domain: "ai-gateway2" })) },
  ];
  for (const v of variants) assertEquals(agrees(reader, bytesOf(v)), v);
  assertEquals(reader.prefixReads, 9, "the first three variants reuse the three remembered prefixes");
  const example = new TextDecoder().decode(bytesOf(EXAMPLE));
  const last = `"value":"acme"}]`;
  const edits = [
    example.replaceAll(last, `"value":"acme","value":"x"}]`),
    example.replaceAll(last, `"value":"acme","key":"x"}]`),
    example.replaceAll(last, `"value":"acme"},{}]`),
    example.replaceAll(last, `"value":"acme"}],"entries":[]`),
    example.replaceAll(last, `"value":"ac\\u006de"}]`),
    example.replaceAll(last, `"value":1}]`),
    example.replaceAll(last, `"value":"acme" } ]`),
    example.replaceAll(`"hitsAddendFrom":"llm_total_token"`, `"hitsAddendFrom":"llm_total_token","hitsAddend":1`),
    example.replaceAll(`"hitsAddendFrom":"llm_total_token"`, `"reserved":5,"hitsAddendFrom":"llm_total_token"`),
  ];
  for (const edit of edits) agrees(reader, text.encode(edit));
  // Still right for the plain form afterwards.
  assertEquals(agrees(reader, bytesOf(EXAMPLE)), EXAMPLE);
});

Deno.test("UsageEventReader gives up rather than guess on escapes, odd numbers, duplicates and other encodings", () => {
  const reader = new UsageEventReader();
  agrees(reader, bytesOf(EXAMPLE));
  const example = new TextDecoder().decode(bytesOf(EXAMPLE));
  const unsure = [
    example.replace(`"route":"default/chat"`, `"route":"default\\/chat"`),
    example.replace(`"status":200`, `"status":200.0`),
    example.replace(`"status":200`, `"status":2e2`),
    example.replace(`"status":200`, `"status":0200`),
    example.replace(`"latencyMs":1834.5`, `"latencyMs":-0`),
    example.replace(`"v":1`, `"v":1,"v":1`),
    example.replace(`"tenant":"acme"`, `"tenant":"acme","__proto__":{}`),
    example.replace(`"costs":{`, `"costs":{"__proto__":1,`),
    example.replace(`"costs":{`, `"costs":{"llm_total_token":1,`),
    "\uFEFF" + example,
  ];
  // Numbers in any JSON form are read as JSON.parse reads them.
  for (const latency of ["1.8345e3", "18345E-1", "812.4000000000001", "0.1", "1e-7", "123456789012345.6", "0"]) {
    const edit = example.replace(`"latencyMs":1834.5`, `"latencyMs":${latency}`);
    assertEquals(agrees(reader, text.encode(edit))?.latencyMs, JSON.parse(latency), latency);
  }
  for (const edit of unsure) {
    assert(edit !== example);
    assertEquals(reader.read(text.encode(edit)), undefined, edit);
    agrees(reader, text.encode(edit));
  }
});

Deno.test("UsageEventReader never reads what decodeUsageEvent refuses, whatever bytes it is given", () => {
  const reader = new UsageEventReader();
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant("byte" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      s: fc.constantFrom(" ", "\n", "\\", '"', ",", "0", "\u0001", "é", "}"),
    }),
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4 }) }),
  );
  fc.assert(
    fc.property(arbitraryEvent, fc.array(mutation, { minLength: 1, maxLength: 3 }), (e, mutations) => {
      const original = encodeUsageEvent(e);
      agrees(reader, original); // primes what the reader remembers with the unmutated event
      let bytes = Array.from(original);
      for (const m of mutations) {
        const at = m.at % (bytes.length + 1);
        if (m.kind === "byte") bytes[Math.min(at, bytes.length - 1)] = m.byte;
        else if (m.kind === "insert") bytes.splice(at, 0, ...text.encode(m.s));
        else bytes = bytes.slice(0, at).concat(bytes.slice(at + m.n));
      }
      agrees(reader, Uint8Array.from(bytes));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("UsageEventReader reads a calendar time as Date.parse does, from year 0 to 9999", () => {
  const reader = new UsageEventReader();
  for (
    const t of [0, -62_167_219_200_000, -2_203_891_200_000, 951_782_400_000, 253_402_300_799_999, 1_700_000_000_123]
  ) {
    const time = new Date(t).toISOString();
    const e = { ...EXAMPLE, time };
    assertEquals(agrees(reader, bytesOf(e)), e, time);
    assertEquals(reader.timeMs, t);
  }
  for (const time of ["2023-02-29T00:00:00.000Z", "1900-02-29T00:00:00.000Z", "2025-06-01T24:00:00.000Z"]) {
    assertEquals(reader.read(bytesOf({ ...EXAMPLE, time })), undefined, time);
  }
});
