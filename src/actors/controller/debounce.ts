// When a source's events should become one compile. A change after a quiet spell compiles almost at once: the source
// waits only `settleMs` of quiet (5 ms: the create, write, rename and remove events of an atomic replace arrive within
// a millisecond of each other). Events that keep coming shortly after a compile was started are a burst (a directory
// being copied in, `kubectl apply` of many objects, a writer that pauses): those wait for `burstMs` of quiet, so the
// burst ends up in one or two compiles rather than one per file.
//
// A writer that rewrites a file in place and pauses longer than the settle time mid-write can have half a file
// compiled (and, if it validates, published) until its next event; write files by rename (editors, kubectl cp,
// ConfigMap volumes do) or raise the burst window.
import type { Clock } from "../../observability/clock.ts";

/** The settle time after a quiet spell (at most the burst window). */
export const SETTLE_MS = 5;

export interface Debounce {
  /** An event arrived. */
  poke(): void;
  cancel(): void;
}

export function adaptiveDebounce(clock: Clock, burstMs: number, fire: () => void, settleMs = SETTLE_MS): Debounce {
  let timer: unknown;
  let firedAt = -Infinity;
  /** The pending timer waits out a burst: events until it fires belong to the burst too. */
  let burst = false;
  return {
    poke() {
      clock.clearTimeout(timer);
      burst = burst || clock.now() - firedAt < burstMs;
      timer = clock.setTimeout(() => {
        timer = undefined;
        burst = false;
        firedAt = clock.now();
        fire();
      }, burst ? burstMs : Math.min(settleMs, burstMs));
    },
    cancel() {
      clock.clearTimeout(timer);
      timer = undefined;
      burst = false;
    },
  };
}
