import fc from "fast-check";
import { assert, assertEquals } from "../../../test/support/assert.ts";
import { CanonicalEncoder, canonicalJson } from "./canonical_json.ts";
import { ConfigSnapshotError } from "./config_snapshot_error.ts";

/**
 * The definition snapshots were first hashed with: JSON.stringify, each object replaced by a copy with its keys
 * inserted sorted. Every snapshot ever published has this encoding; the encoder must keep giving it byte for byte.
 */
function reference(value: unknown): string {
  return JSON.stringify(value, function (_key: string, v: unknown) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
    const record = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(record).sort()) out[k] = record[k];
    return out;
  }) ?? "null";
}

const keys = fc.oneof(
  fc.string(),
  fc.constantFrom("0", "1", "2", "10", "9", "01", "-1", "4294967294", "4294967295", "1e3", "a", "B", "é", "\u{1F600}"),
);
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.array(tie("value")),
    fc.dictionary(keys, tie("value")),
  ),
})).value;

Deno.test("canonicalJson writes exactly what JSON.stringify with sorted keys writes", () => {
  fc.assert(fc.property(json, (value) => assertEquals(canonicalJson(value), reference(value))), { numRuns: 2000 });
});

Deno.test("a CanonicalEncoder gives the same text the second time, from what it remembered", () => {
  fc.assert(
    fc.property(fc.array(json, { maxLength: 20 }), (items) => {
      const encoder = new CanonicalEncoder();
      const value = { items, tail: items.slice().reverse() };
      assertEquals(encoder.encode(value), reference(value));
      assertEquals(encoder.encode(value), reference(value));
      // Some elements new, some remembered.
      const next = { items: [...items, { added: true }], tail: value.tail };
      assertEquals(encoder.encode(next), reference(next));
    }),
    { numRuns: 300 },
  );
});

Deno.test("canonicalJson puts integer-like keys first, ascending, then the others by code unit", () => {
  assertEquals(canonicalJson({ b: 1, 10: 2, a: 3, 9: 4, "01": 5, B: 6 }), '{"9":4,"10":2,"01":5,"B":6,"a":3,"b":1}');
});

Deno.test("canonicalJson refuses a Map, a function, a symbol, a bigint and non-finite numbers, naming the member", () => {
  const cases: [unknown, string][] = [
    [{ m: new Map() }, 'Cannot encode "m": a Map is not plain JSON'],
    [{ f: () => 1 }, 'Cannot encode "f": a function is not plain JSON'],
    [[1, Symbol("s")], 'Cannot encode "1": a symbol is not plain JSON'],
    [{ b: 1n }, 'Cannot encode "b": a bigint is not plain JSON'],
    [{ n: Number.POSITIVE_INFINITY }, 'Cannot encode "n": Infinity is not a JSON number'],
    [{ deep: [{ n: Number.NaN }] }, 'Cannot encode "n": NaN is not a JSON number'],
  ];
  for (const [value, message] of cases) {
    for (const encode of [canonicalJson, (v: unknown) => new CanonicalEncoder().encode(v)]) {
      let caught: unknown;
      try {
        encode(value);
      } catch (e) {
        caught = e;
      }
      assert(caught instanceof ConfigSnapshotError, `expected a ConfigSnapshotError for ${message}`);
      assertEquals(caught.message, message);
    }
  }
});
