// Reservations held on rate-limit counters, by reservation id (src/usage/reservation.ts).
//
// Two layers, as for request hits:
// - folded: holds that reached the log as hit events. Every replica folds the same log, so every replica holds the
//   same reservations; they are part of the aggregator snapshot.
// - local: holds this replica's rate limit service made whose hit event has not come back yet. Only this replica
//   counts them, until the event comes back (then they are folded) or the request's usage event is folded.
//
// Releasing is keyed by id, never by amount: the usage event releases exactly what the log says was held, so a
// reservation that was refused, never published, or lost with a crashed replica releases nothing, and the counter
// ends at the actual usage whatever happened in between. A hold counts until its `until` (log time for folded holds,
// wall clock for local ones): a request whose usage event never comes stops counting then. A hit event folded after
// the usage event of its request (the rare reverse order) is held until its `until` too: conservative, bounded.
import { CounterStore } from "./counter_store.ts";
import { parseWindowId, type WindowId, type WindowKey, windowKey } from "./windows.ts";

/** One counter's share of a reservation. */
interface Share {
  readonly key: WindowKey;
  readonly counterKey: string;
  readonly windowId: WindowId;
  readonly windowEnd: number;
  n: number;
  readonly until: number;
}

/** Where a released reservation was held: its actual cost goes to the same window. */
export interface ReleasedShare {
  readonly key: WindowKey;
  readonly windowEnd: number;
}

/** [id, counterKey, windowId, n, until] rows, sorted by id then counter key. */
export interface ReservationSnapshot {
  readonly version: 1;
  readonly held: readonly (readonly [string, string, WindowId, number, number])[];
}

export class ReservationSnapshotError extends Error {
  override readonly name = "ReservationSnapshotError";
}

export class ReservationBook {
  #folded = new Map<string, Share[]>();
  readonly #local = new Map<string, Share[]>();
  /** Held per counter window (folded + local): what the rate limit service adds to the folded count. */
  readonly #totals = new Map<WindowKey, number>();

  /** Reservations (ids) held, folded or local. */
  get size(): number {
    return this.#folded.size + this.#local.size;
  }

  reserved(key: WindowKey): number {
    return this.#totals.get(key) ?? 0;
  }

  /** This replica's rate limit service held `n` (its hit event is on its way). */
  holdLocal(id: string, counterKey: string, windowId: WindowId, n: number, until: number): void {
    this.#add(this.#local, id, counterKey, windowId, n, until);
  }

  /**
   * A reservation hit event, folded at log time `t`. `own`: this replica published it, so its local share moves to the
   * folded layer. A hold already expired, or in a window older than `cutoff`, is not folded.
   */
  hold(
    id: string,
    counterKey: string,
    windowId: WindowId,
    n: number,
    until: number,
    t: number,
    cutoff: number,
    own = false,
  ): void {
    if (own) this.#take(this.#local, id, windowKey(counterKey, windowId), n);
    const end = parseWindowId(windowId)?.end;
    if (end === undefined || end <= cutoff || until <= t) return;
    this.#add(this.#folded, id, counterKey, windowId, n, until);
  }

  /**
   * The usage event of reservation `id`, folded at log time `t`: everything the id holds is released. Returns, by
   * counter key, the windows of the folded shares still in force (not expired at `t`, window not older than `cutoff`):
   * the request's actual cost belongs there. Local shares are released too but say nothing about windows, since
   * other replicas never saw them.
   */
  release(id: string, t: number, cutoff: number): Map<string, ReleasedShare> {
    const out = new Map<string, ReleasedShare>();
    for (const s of this.#local.get(id) ?? []) this.#total(s.key, -s.n);
    this.#local.delete(id);
    for (const s of this.#folded.get(id) ?? []) {
      this.#total(s.key, -s.n);
      if (s.until > t && s.windowEnd > cutoff && !out.has(s.counterKey)) {
        out.set(s.counterKey, { key: s.key, windowEnd: s.windowEnd });
      }
    }
    this.#folded.delete(id);
    return out;
  }

  /** Drops folded holds expired at log time `t` and local ones at wall-clock `now`; returns how many ids went. */
  expire(t: number, now: number): number {
    return this.#expire(this.#folded, t) + this.#expire(this.#local, now);
  }

  snapshot(): ReservationSnapshot {
    const held: [string, string, WindowId, number, number][] = [];
    for (const [id, shares] of this.#folded) {
      for (const s of shares) held.push([id, s.counterKey, s.windowId, s.n, s.until]);
    }
    held.sort((a, b) => compare(a[0], b[0]) || compare(a[1], b[1]) || compare(a[2], b[2]));
    return { version: 1, held };
  }

  /** Replaces the folded layer with a snapshot's (the local one stays), or throws and changes nothing. */
  restore(snapshot: unknown): void {
    const rows = readSnapshot(snapshot);
    for (const shares of this.#folded.values()) for (const s of shares) this.#total(s.key, -s.n);
    this.#folded = new Map();
    for (const [id, counterKey, windowId, n, until] of rows) {
      this.#add(this.#folded, id, counterKey, windowId, n, until);
    }
  }

  #add(
    layer: Map<string, Share[]>,
    id: string,
    counterKey: string,
    windowId: WindowId,
    n: number,
    until: number,
  ): void {
    if (n <= 0) return;
    const key = windowKey(counterKey, windowId);
    const shares = layer.get(id) ?? [];
    const same = shares.find((s) => s.key === key);
    if (same) same.n += n;
    else {
      const windowEnd = parseWindowId(windowId)?.end ?? 0;
      shares.push({ key, counterKey, windowId, windowEnd, n, until });
    }
    layer.set(id, shares);
    this.#total(key, n);
  }

  #take(layer: Map<string, Share[]>, id: string, key: WindowKey, n: number): void {
    const shares = layer.get(id);
    const share = shares?.find((s) => s.key === key);
    if (!shares || !share) return;
    const taken = Math.min(n, share.n);
    share.n -= taken;
    this.#total(key, -taken);
    if (share.n === 0) shares.splice(shares.indexOf(share), 1);
    if (shares.length === 0) layer.delete(id);
  }

  #expire(layer: Map<string, Share[]>, at: number): number {
    let removed = 0;
    for (const [id, shares] of layer) {
      const kept = shares.filter((s) => {
        if (s.until > at) return true;
        this.#total(s.key, -s.n);
        return false;
      });
      if (kept.length === 0) {
        layer.delete(id);
        removed++;
      } else if (kept.length < shares.length) layer.set(id, kept);
    }
    return removed;
  }

  #total(key: WindowKey, delta: number): void {
    const next = (this.#totals.get(key) ?? 0) + delta;
    if (next <= 0) this.#totals.delete(key);
    else this.#totals.set(key, next);
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function readSnapshot(snapshot: unknown): ReservationSnapshot["held"] {
  const s = snapshot as Partial<ReservationSnapshot> | null;
  if (typeof s !== "object" || s === null || s.version !== 1 || !Array.isArray(s.held)) {
    throw new ReservationSnapshotError("Cannot restore reservations: not a version 1 reservation snapshot");
  }
  s.held.forEach((row: unknown, i) => {
    const [id, counterKey, windowId, n, until] = Array.isArray(row) ? row : [];
    if (
      typeof id !== "string" || id === "" || typeof counterKey !== "string" || typeof windowId !== "string" ||
      !parseWindowId(windowId) || !Number.isSafeInteger(n) || (n as number) < 1 || !Number.isSafeInteger(until)
    ) {
      throw new ReservationSnapshotError(
        `Cannot restore reservations: row ${i} is not [id, counter, window, n, until]`,
      );
    }
  });
  return s.held;
}

/** A read-only view of `store` with the reservations the book holds added to every counter: the rate limit
 * service's base (aggregator_core.ts LocalHitsView reads only `get` from it). */
export class ReservedCounters extends CounterStore {
  readonly #store: CounterStore;
  readonly #book: ReservationBook;

  constructor(store: CounterStore, book: ReservationBook) {
    super();
    this.#store = store;
    this.#book = book;
  }

  override get(key: WindowKey): number {
    return this.#store.get(key) + this.#book.reserved(key);
  }
}
