// A stream machine decides a message's transition with guards on the message itself, then records what it found
// in one assign (see router_stream.ts for why). This lets the guards and the action share the work.

/**
 * Derives something from a message once, for the guards that choose a transition and the action that records it:
 * they all see the same event and the same context object, which is the cache key. `compute` must be pure, so a
 * miss (another stream's message in between) only costs a recomputation. Holds one message until the next.
 */
export function perMessage<C extends object, E extends object, T>(
  compute: (context: C, event: E) => T,
): (context: C, event: E) => T {
  let lastEvent: E | undefined;
  let lastContext: C | undefined;
  let value!: T;
  return (context, event) => {
    if (event !== lastEvent || context !== lastContext) {
      value = compute(context, event);
      lastEvent = event;
      lastContext = context;
    }
    return value;
  };
}
