import { assertEquals } from "../../../test/support/assert.ts";
import { duration, durationMs } from "./common.ts";

Deno.test("durationMs reads Gateway API durations, units h, m, s and ms in any combination", () => {
  const cases: [string, number][] = [["0s", 0], ["500ms", 500], ["10s", 10_000], ["1h30m", 5_400_000], [
    "1m1s1ms",
    61_001,
  ]];
  for (const [text, ms] of cases) {
    assertEquals(duration.safeParse(text).success, true, text);
    assertEquals(durationMs(text), ms, text);
  }
});

Deno.test("duration refuses what Gateway API refuses: no unit, fractions, days, more than four parts", () => {
  for (const text of ["10", "1.5s", "1d", "1h1m1s1ms1h", "", "-1s"]) {
    assertEquals(duration.safeParse(text).success, false, text);
  }
});
