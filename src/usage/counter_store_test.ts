import fc from "fast-check";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { CounterSnapshotError, CounterStore } from "./counter_store.ts";

Deno.test("CounterStore adds hits to a counter and reads 0 for one never added to", () => {
  const store = new CounterStore();
  assertEquals(store.get("a#0/60000"), 0);
  assertEquals(store.add("a#0/60000", 3, 60_000), 3);
  assertEquals(store.add("a#0/60000", 4, 60_000), 7);
  assertEquals(store.get("a#0/60000"), 7);
  assertEquals(store.size, 1);
});

Deno.test("CounterStore does not create a counter for a check-only add of 0", () => {
  const store = new CounterStore();
  assertEquals(store.add("a", 0, 1000), 0);
  assertEquals(store.size, 0);
});

Deno.test("CounterStore refuses a negative or fractional count", () => {
  const store = new CounterStore();
  for (const n of [-1, 1.5, Number.NaN]) {
    let threw = false;
    try {
      store.add("a", n, 1000);
    } catch (err) {
      threw = err instanceof RangeError;
    }
    assert(threw, `add(${n}) should throw`);
  }
});

Deno.test("CounterStore prunes the windows that have ended and keeps the others", () => {
  const store = new CounterStore();
  store.add("old", 1, 1_000);
  store.add("edge", 1, 2_000);
  store.add("live", 1, 3_000);
  assertEquals(store.prune(2_000), 2);
  assertEquals([...store.entries()].map(([key]) => key), ["live"]);
});

Deno.test("CounterStore iterates and snapshots in key order, whatever the order counters were created in", () => {
  const a = new CounterStore();
  const b = new CounterStore();
  for (const key of ["b", "a", "c", "B"]) a.add(key, 1, 10);
  for (const key of ["c", "B", "b", "a"]) b.add(key, 1, 10);
  assertEquals([...a.entries()].map(([key]) => key), ["B", "a", "b", "c"]);
  assertEquals(JSON.stringify(a.snapshot()), JSON.stringify(b.snapshot()));
});

Deno.test("CounterStore restores from a snapshot that went through JSON", () => {
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.string(), fc.nat({ max: 1_000_000 }), fc.integer({ min: 0, max: 2 ** 42 }))),
    (adds) => {
      const store = new CounterStore();
      for (const [key, n, end] of adds) store.add(key, n, end);
      const restored = CounterStore.fromSnapshot(JSON.parse(JSON.stringify(store.snapshot())));
      assertEquals(restored.snapshot(), store.snapshot());
      for (const [key] of adds) assertEquals(restored.get(key), store.get(key));
    },
  ));
});

const badSnapshots: Array<{ name: string; snapshot: unknown }> = [
  { name: "null", snapshot: null },
  { name: "another version", snapshot: { version: 2, counters: [] } },
  { name: "a row that is not a triple", snapshot: { version: 1, counters: [["a", 1]] } },
  { name: "a negative count", snapshot: { version: 1, counters: [["a", -1, 10]] } },
  { name: "a key twice", snapshot: { version: 1, counters: [["a", 1, 10], ["a", 2, 10]] } },
];

for (const c of badSnapshots) {
  Deno.test(`CounterStore.restore rejects ${c.name} and keeps what it had`, () => {
    const store = new CounterStore();
    store.add("kept", 5, 10);
    let error: unknown;
    try {
      store.restore(c.snapshot);
    } catch (err) {
      error = err;
    }
    assert(error instanceof CounterSnapshotError);
    assertEquals(store.get("kept"), 5);
  });
}
