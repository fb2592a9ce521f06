import fc from "fast-check";
import { Histogram, Registry } from "prom-client";
import { assert, assertEquals } from "../../test/support/assert.ts";

function assertThrows(f: () => unknown, type: new (...a: never[]) => Error = Error): void {
  try {
    f();
  } catch (e) {
    assert(e instanceof type, `expected a ${type.name}, got ${e}`);
    return;
  }
  throw new Error("expected an error");
}
import { FastHistogram } from "./fast_histogram.ts";

const BUCKETS = [0.00001, 0.000025, 0.0001, 0.001, 0.05, 1, 120];
const config = (registry: Registry) => ({
  name: "tollgate_test_duration_seconds",
  help: "A test histogram.",
  labelNames: ["role", "phase"] as const,
  buckets: BUCKETS,
  registers: [registry],
});

const observation = fc.record({
  role: fc.constantFrom("router", "attempt"),
  phase: fc.constantFrom("requestHeaders", "requestBody", 'a "quoted\\\\ phase\nwith a newline'),
  value: fc.oneof(fc.constantFrom(...BUCKETS, 0, -1, 1e9), fc.double({ noNaN: true, noDefaultInfinity: true })),
});

Deno.test("FastHistogram exposes what a prom-client Histogram with the same observations exposes", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(observation, { maxLength: 40 }), async (observations) => {
      const [ours, theirs] = [new Registry(), new Registry()];
      const fast = new FastHistogram(config(ours));
      const reference = new Histogram(config(theirs));
      for (const { role, phase, value } of observations) {
        fast.series({ role, phase }).observe(value);
        reference.observe({ role, phase }, value);
      }
      assertEquals(await ours.metrics(), await theirs.metrics());
      assertEquals(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
      assertEquals(await fast.get(), await reference.get());
    }),
    { numRuns: 200 },
  );
});

Deno.test("FastHistogram hands out one series per label set, refuses non-numbers and forgets everything on reset", async () => {
  const registry = new Registry();
  const h = new FastHistogram(config(registry));
  const s = h.series({ role: "router", phase: "requestBody" });
  assertEquals(h.series({ role: "router", phase: "requestBody" }), s);
  s.observe(0.00002);
  h.observe({ role: "router", phase: "requestBody" }, 2);
  assertEquals([s.count, s.sum], [2, 2.00002]);
  assertThrows(() => s.observe(Number.NaN), TypeError);
  assertThrows(() => s.observe(Number.POSITIVE_INFINITY), TypeError);
  registry.resetMetrics();
  assertEquals((await h.get()).values, []);
  assertThrows(() => new FastHistogram({ ...config(new Registry()), labelNames: ["le"] }));
  assertThrows(() => new FastHistogram({ ...config(new Registry()), buckets: [1, 0.5] }));
});
