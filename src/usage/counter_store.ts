// Counters by WindowKey, in memory: what the aggregator folds hits and usage into and what the RLS reads. Each
// counter remembers the end of its window so expired ones can be pruned. The store is the state replicas must agree
// on, so everything that leaves it (iteration, snapshots) is in key order, whatever order the counters were created
// in, and a snapshot restored anywhere gives back the same store.
import type { WindowKey } from "./windows.ts";

export interface Counter {
  readonly count: number;
  /** Epoch ms, exclusive: the counter is dead from this instant on. */
  readonly windowEnd: number;
}

/** A store as plain JSON: `[key, count, windowEnd]` rows sorted by key. */
export interface CounterSnapshot {
  readonly version: 1;
  readonly counters: readonly (readonly [WindowKey, number, number])[];
}

export class CounterSnapshotError extends Error {
  override readonly name = "CounterSnapshotError";
}

export class CounterStore {
  #counters = new Map<WindowKey, { count: number; windowEnd: number }>();

  get size(): number {
    return this.#counters.size;
  }

  /** Adds n (a non-negative integer) and returns the new count. */
  add(key: WindowKey, n: number, windowEnd: number): number {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Cannot add ${n} to a counter: not a whole count`);
    const counter = this.#counters.get(key);
    if (counter) {
      counter.count += n;
      return counter.count;
    }
    if (n === 0) return 0;
    this.#counters.set(key, { count: n, windowEnd });
    return n;
  }

  /** The count, 0 for a counter never added to. */
  get(key: WindowKey): number {
    return this.#counters.get(key)?.count ?? 0;
  }

  /** Removes every counter whose window has ended (windowEnd <= nowMs); returns how many. */
  prune(nowMs: number): number {
    let removed = 0;
    for (const [key, counter] of this.#counters) {
      if (counter.windowEnd <= nowMs) {
        this.#counters.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /** Every counter, in key order. */
  *entries(): IterableIterator<[WindowKey, Counter]> {
    for (const key of [...this.#counters.keys()].sort(compareKeys)) {
      const c = this.#counters.get(key)!;
      yield [key, { count: c.count, windowEnd: c.windowEnd }];
    }
  }

  snapshot(): CounterSnapshot {
    return { version: 1, counters: [...this.entries()].map(([key, c]) => [key, c.count, c.windowEnd] as const) };
  }

  /** Replaces the whole content with a snapshot's, or throws and leaves the store as it was. */
  restore(snapshot: unknown): void {
    this.#counters = readSnapshot(snapshot);
  }

  static fromSnapshot(snapshot: unknown): CounterStore {
    const store = new CounterStore();
    store.restore(snapshot);
    return store;
  }
}

/** Code-unit order, the same in every locale and runtime (localeCompare is neither). */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function readSnapshot(snapshot: unknown): Map<WindowKey, { count: number; windowEnd: number }> {
  const s = snapshot as Partial<CounterSnapshot> | null;
  if (typeof s !== "object" || s === null || s.version !== 1 || !Array.isArray(s.counters)) {
    throw new CounterSnapshotError("Cannot restore counters: not a version 1 counter snapshot");
  }
  const out = new Map<WindowKey, { count: number; windowEnd: number }>();
  s.counters.forEach((row: unknown, i) => {
    const [key, count, windowEnd] = Array.isArray(row) ? row : [];
    if (
      typeof key !== "string" || !Number.isSafeInteger(count) || (count as number) < 0 ||
      !Number.isSafeInteger(windowEnd)
    ) {
      throw new CounterSnapshotError(`Cannot restore counters: row ${i} is not [key, count, windowEnd]`);
    }
    if (out.has(key)) throw new CounterSnapshotError(`Cannot restore counters: key "${key}" appears twice`);
    out.set(key, { count: count as number, windowEnd: windowEnd as number });
  });
  return out;
}
