import { assertEquals } from "../../../test/support/assert.ts";
import { ManualClock } from "../../observability/clock.ts";
import { adaptiveDebounce } from "./debounce.ts";

function setup(burstMs = 50) {
  const clock = new ManualClock();
  const fired: number[] = [];
  const debounce = adaptiveDebounce(clock, burstMs, () => fired.push(clock.now()));
  return { clock, fired, debounce };
}

Deno.test("adaptiveDebounce fires 5 ms after the first event of a quiet spell, once for its close followers", () => {
  const { clock, fired, debounce } = setup();
  clock.advance(1000);
  debounce.poke(); // create
  clock.advance(0.2);
  debounce.poke(); // modify
  clock.advance(0.3);
  debounce.poke(); // rename
  clock.advance(4.9);
  assertEquals(fired, []);
  clock.advance(0.1);
  assertEquals(fired, [1005.5]);
});

Deno.test("adaptiveDebounce waits for the burst window of quiet while events keep following a fire", () => {
  const { clock, fired, debounce } = setup();
  debounce.poke();
  clock.advance(5);
  assertEquals(fired, [5]);
  // More events soon after: a burst, coalesced until 50 ms of quiet.
  for (let i = 0; i < 5; i++) {
    clock.advance(10);
    debounce.poke();
  }
  clock.advance(49);
  assertEquals(fired, [5]);
  clock.advance(1);
  assertEquals(fired, [5, 105]);
  // After a quiet spell as long as the burst window, the next change is quick again.
  clock.advance(50);
  debounce.poke();
  clock.advance(5);
  assertEquals(fired, [5, 105, 160]);
});

Deno.test("adaptiveDebounce never waits longer than its burst window to settle, and cancel stops it", () => {
  const { clock, fired, debounce } = setup(2);
  debounce.poke();
  clock.advance(2);
  assertEquals(fired, [2]);
  debounce.poke();
  debounce.cancel();
  clock.advance(100);
  assertEquals(fired, [2]);
});
