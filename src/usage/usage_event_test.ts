import fc from "fast-check";
import { assert, assertEquals, assertMatch } from "../../test/support/assert.ts";
import {
  decodeUsageEvent,
  encodeUsageEvent,
  type UsageEvent,
  UsageEventError,
  usageEventId,
  usageEventSubject,
  usageEventTime,
  UsageEventVersionError,
} from "./usage_event.ts";

const EXAMPLE: UsageEvent = {
  v: 1,
  id: "01972b5c-ee7b-7800-b358-7da2c7ec1136",
  time: "2025-06-01T12:00:00.123Z",
  route: "default/chat",
  backend: "default/openai",
  models: { requested: "gpt-4o", overridden: "gpt-4o-2024-11-20", responded: "gpt-4o-2024-11-20" },
  tokens: { inputTokens: 1200, cachedInputTokens: 1024, outputTokens: 300, totalTokens: 1500 },
  costs: { llm_input_token: 1200, llm_total_token: 1500 },
  descriptors: [{
    domain: "tollgate",
    entries: [{ key: "default/chat", value: "default/chat" }, { key: "rule-0-match-0", value: "acme" }],
    hitsAddendFrom: "llm_total_token",
  }],
  status: 200,
  latencyMs: 1834.5,
  ttftMs: 212.25,
  stream: true,
  tenant: "acme",
};

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

function decodeError(value: unknown): UsageEventError {
  const result = decodeUsageEvent(value instanceof Uint8Array ? value : json(value));
  assert(result instanceof UsageEventError, `expected an error for ${JSON.stringify(value)}`);
  return result;
}

const name = fc.stringMatching(/^[a-z0-9][a-z0-9./_-]{0,15}$/);
const count = fc.maxSafeNat();
const millis = fc.double({ min: 0, max: 1e7, noNaN: true, noDefaultInfinity: true }).map((x) => x + 0);
const maxTime = Date.parse("9999-12-31T23:59:59.999Z");

const arbitraryEvent: fc.Arbitrary<UsageEvent> = fc.record({
  time: fc.integer({ min: 0, max: maxTime }),
  random: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  route: name,
  backend: name,
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
  costs: fc.dictionary(fc.stringMatching(/^[a-z][a-z_]{0,11}$/), count, { noNullPrototype: true }),
  descriptors: fc.array(
    fc.record({
      domain: name,
      entries: fc.array(fc.record({ key: name, value: fc.string() }, { noNullPrototype: true }), {
        minLength: 1,
        maxLength: 4,
      }),
      hits: fc.oneof(
        fc.constant({}),
        fc.integer({ min: 0, max: 1e9 }).map((hitsAddend) => ({ hitsAddend })),
        name.map((hitsAddendFrom) => ({ hitsAddendFrom })),
      ),
    }, { noNullPrototype: true }).map(({ hits, ...d }) => ({ ...d, ...hits })),
    { maxLength: 4 },
  ),
  status: fc.integer({ min: 100, max: 599 }),
  latencyMs: millis,
  streamed: fc.option(fc.option(millis, { nil: undefined }), { nil: null }),
  tenant: fc.option(name, { nil: undefined }),
}, {
  requiredKeys: ["time", "random", "route", "models", "tokens", "costs", "descriptors", "status", "latencyMs"],
  noNullPrototype: true,
})
  .map(({ time, random, streamed, tenant, ...rest }) => ({
    v: 1 as const,
    id: usageEventId(time, (into) => (into.set(random), into)),
    time: usageEventTime(time),
    ...rest,
    stream: streamed !== null,
    ...(streamed != null ? { ttftMs: streamed } : {}),
    ...(tenant !== undefined ? { tenant } : {}),
  }));

Deno.test("decodeUsageEvent(encodeUsageEvent(e)) gives back any valid event", () => {
  fc.assert(fc.property(arbitraryEvent, (e) => {
    assertEquals(decodeUsageEvent(encodeUsageEvent(e)), e);
  }));
});

Deno.test("decodeUsageEvent accepts the example of docs/usage-event.md", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/usage-event.md", import.meta.url));
  const example = doc.match(/```json\n([\s\S]*?)\n```/)?.[1];
  assert(example !== undefined);
  assertEquals(decodeUsageEvent(new TextEncoder().encode(example)), EXAMPLE);
});

Deno.test("decodeUsageEvent rejects unknown fields at every level", () => {
  const table: [unknown, RegExp][] = [
    [{ ...EXAMPLE, cost: 3 }, /event: Unrecognized key: "cost"/],
    [{ ...EXAMPLE, tokens: { ...EXAMPLE.tokens, audioTokens: 3 } }, /tokens: Unrecognized key: "audioTokens"/],
    [{ ...EXAMPLE, models: { ...EXAMPLE.models, alias: "x" } }, /models: Unrecognized key: "alias"/],
    [
      { ...EXAMPLE, descriptors: [{ ...EXAMPLE.descriptors[0], limit: {} }] },
      /descriptors\.0: Unrecognized key: "limit"/,
    ],
  ];
  for (const [value, expected] of table) {
    const error = decodeError(value);
    assertEquals(error.name, "UsageEventError");
    assertMatch(error.message, /^Cannot decode usage event "01972b5c-ee7b-7800-b358-7da2c7ec1136": /);
    assertMatch(error.message, expected);
  }
});

Deno.test("decodeUsageEvent refuses an event of a future version, whatever its shape", () => {
  for (const value of [{ ...EXAMPLE, v: 2 }, { ...EXAMPLE, v: 2, newField: { nested: true } }, { v: 7 }]) {
    const error = decodeError(value);
    assert(error instanceof UsageEventVersionError);
    assertEquals(error.name, "UsageEventVersionError");
    assertEquals(error.version, value.v);
    assertEquals(
      error.message,
      `Usage event version ${value.v} is newer than this reader understands (1): upgrade the aggregators before the sidecars`,
    );
  }
});

Deno.test("decodeUsageEvent rejects malformed events with the reason", () => {
  const { ttftMs: _, ...unstreamed } = { ...EXAMPLE, stream: false };
  const table: [unknown, RegExp][] = [
    [new Uint8Array([0xff, 0xfe]), /: it is not UTF-8 JSON$/],
    [new TextEncoder().encode("{"), /: it is not UTF-8 JSON$/],
    [[EXAMPLE], /: it is not a JSON object$/],
    [{ ...EXAMPLE, v: 0 }, /v: Invalid input: expected 1/],
    [{ ...EXAMPLE, v: "1" }, /v: Invalid input: expected 1/],
    [{ ...EXAMPLE, id: "01972b5c-ee7b-4800-b358-7da2c7ec1136" }, /id: Expected a lower-case UUIDv7/],
    [{ ...EXAMPLE, time: "2025-06-01T12:00:00Z" }, /time: /],
    [{ ...EXAMPLE, time: "2025-06-01T14:00:00.123+02:00" }, /time: /],
    [{ ...EXAMPLE, time: "2025-02-30T12:00:00.123Z" }, /time: Not a calendar time/],
    [{ ...EXAMPLE, route: "" }, /route: /],
    [{ ...EXAMPLE, tokens: { inputTokens: -1 } }, /tokens\.inputTokens: /],
    [{ ...EXAMPLE, tokens: { inputTokens: 1.5 } }, /tokens\.inputTokens: /],
    [{ ...EXAMPLE, tokens: { inputTokens: null } }, /tokens\.inputTokens: /],
    [{ ...EXAMPLE, costs: { k: 2 ** 53 } }, /costs\.k: /],
    [{ ...EXAMPLE, descriptors: [{ domain: "d", entries: [] }] }, /descriptors\.0\.entries: /],
    [
      { ...EXAMPLE, descriptors: [{ domain: "d", entries: [{ key: "k", value: "v" }], hitsAddend: 1e9 + 1 }] },
      /descriptors\.0\.hitsAddend: /,
    ],
    [
      {
        ...EXAMPLE,
        descriptors: [{ domain: "d", entries: [{ key: "k", value: "v" }], hitsAddend: 1, hitsAddendFrom: "k" }],
      },
      /descriptors\.0: A descriptor has either hitsAddend or hitsAddendFrom, not both/,
    ],
    [{ ...EXAMPLE, status: 99 }, /status: /],
    [{ ...EXAMPLE, latencyMs: -1 }, /latencyMs: /],
    [{ ...unstreamed, ttftMs: 3 }, /ttftMs: ttftMs is only for streamed responses/],
    [{ ...EXAMPLE, models: {} }, /models\.requested: /],
  ];
  for (const [value, expected] of table) {
    const error = decodeError(value);
    assertEquals(error.name, "UsageEventError");
    assertMatch(error.message, /^Cannot decode usage event/);
    assertMatch(error.message, expected);
  }
  assertEquals(decodeUsageEvent(json(unstreamed)), unstreamed);
});

Deno.test("usageEventId is a UUIDv7 holding the time, sortable by time to a fraction of a millisecond", () => {
  const zeros = (into: Uint8Array) => into.fill(0);
  const ones = (into: Uint8Array) => into.fill(0xff);
  assertEquals(usageEventId(1748779200123, zeros), "01972b5c-ee7b-7000-8000-000000000000");
  assertEquals(usageEventId(1748779200123.5, ones), "01972b5c-ee7b-7800-bfff-ffffffffffff");
  const times = [0, 1, 1.25, 1.5, 255, 256, 1748779200123, 1748779200123.999, 2 ** 48 - 1];
  const ids = times.map((t) => usageEventId(t));
  for (const id of ids) assertMatch(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assertEquals([...ids].sort(), ids);
  assertEquals(new Set(Array.from({ length: 1000 }, () => usageEventId(5))).size, 1000);
  for (const bad of [-1, 2 ** 48, Number.NaN]) {
    let thrown: unknown;
    try {
      usageEventId(bad);
    } catch (e) {
      thrown = e;
    }
    assert(thrown instanceof UsageEventError, String(bad));
  }
});

Deno.test("usageEventTime writes RFC 3339 in UTC with milliseconds", () => {
  assertEquals(usageEventTime(1748779200123.9), "2025-06-01T12:00:00.123Z");
  assertEquals(usageEventTime(0), "1970-01-01T00:00:00.000Z");
});

Deno.test("usageEventSubject hashes the route into one subject token after the prefix", () => {
  assertEquals(usageEventSubject("tollgate.usage", EXAMPLE), "tollgate.usage.997b1f1dc09b5aef");
  assertEquals(usageEventSubject("usage", { route: "team-a/llm.route" }), "usage.6b1cb87b22da7b3f");
  for (const prefix of ["", "tollgate.", "tollgate.*", "a b", "tollgate.>"]) {
    let thrown: unknown;
    try {
      usageEventSubject(prefix, EXAMPLE);
    } catch (e) {
      thrown = e;
    }
    assert(thrown instanceof UsageEventError, prefix);
    assertMatch(thrown.message, /^Invalid usage subject prefix/);
  }
});
