// The aggregator's fold: usage events and hit events in, rate-limit counters out. No I/O, and no clock but the wall
// clock it is given to age out local hits, so `tollgate aggregator` runs it on a JetStream consumer and `tollgate run`
// can run it in process.
//
// The invariant: the folded store is a function of the log (and the rules) only. Replicas that fold the same records
// hold the same counters and write byte-identical snapshots, whenever they fold and whenever they snapshot:
// - a usage event's window comes from the event's `time`, a hit event's from the window it carries, never from when a
//   replica reads them;
// - expiry follows log time, the largest record time folded so far (the JetStream storage time when the caller has
//   one, else the event's own time): a counter is dropped once its window ended `retainMs` before log time, and a
//   record for such a window counts nothing. Log time only moves forward, so whether a replica prunes now or later,
//   an expired counter never counts again and every snapshot (pruned first) holds the same rows;
// - hits this replica's rate limit service adds (request-count rules) go to a local overlay, not to the folded store:
//   the RLS reads folded + local, and when the replica's own hit event comes back through the log it is folded like
//   any other and settles the overlay (rather than being skipped as "already applied", which would leave a snapshot
//   depending on which hits the replica happened to answer). A restart loses only hits whose events never reached the
//   log;
// - reservations (admission by reservation, src/usage/reservation.ts) are held in a ReservationBook beside the store:
//   a reservation hit event holds its hits under the reservation id, the request's usage event releases them and adds
//   the actual costs to the window the reservation was held in (its own window when nothing is held), so after the
//   usage event the counter is exactly the actual usage. Holds expire by log time, as counters do.
import type { AppliedHit, AppliedReservation } from "./rls_service.ts";
import { ReservationBook, type ReservationSnapshot, ReservedCounters } from "./reservation_book.ts";
import { RESERVATION_HOLD_MS } from "./reservation.ts";
import { type Counter, type CounterSnapshot, CounterStore } from "./counter_store.ts";
import type { MatchedLimit, RateLimitRules } from "./rate_limit_rules.ts";
import type { RlsConfigResult } from "./rls_config.ts";
import type { ResourceError } from "../control/resources/errors.ts";
import type { HitEvent } from "./hit_event.ts";
import { type UsageDescriptor, type UsageEvent, usageEventId, usageEventTime } from "./usage_event.ts";
import { parseWindowId, type WindowKey, windowKey } from "./windows.ts";
import { type DescriptorMemo, MatchCache, moveToWindow } from "./match_cache.ts";

/** Where a record sits in the log: its stream sequence and the time the log stored it (epoch ms). */
export interface LogPosition {
  readonly seq: number;
  readonly logTimeMs: number;
}

/** A descriptor shape whose counters only usage events feed: a value-less entry matches any value. */
export interface UsageFedTemplate {
  readonly domain: string;
  readonly entries: readonly { readonly key: string; readonly value?: string }[];
}

/**
 * The counters usage events feed (the `apply_on_stream_done` entries, whose descriptors the sidecar puts in every
 * usage event). The rate limit service only checks them: adding Envoy's stream-done hits too would count twice.
 */
export class UsageFedRules {
  readonly templates: readonly UsageFedTemplate[];
  readonly #byDomain = new Map<string, { key: string; value?: string }[][]>();
  readonly #covered = new Map<string, boolean>();

  constructor(templates: readonly UsageFedTemplate[] = []) {
    this.templates = templates;
    for (const t of templates) {
      const encoded = t.entries.map((e) => ({
        key: enc(e.key),
        ...(e.value === undefined ? {} : { value: enc(e.value) }),
      }));
      const list = this.#byDomain.get(enc(t.domain)) ?? [];
      list.push(encoded);
      this.#byDomain.set(enc(t.domain), list);
    }
  }

  /** Whether a counter key (rate_limit_rules.ts: `domain|key=value|…`, parts percent-encoded) has a fed shape. Asked
   * on every rate limit call, so remembered (the keys are the match cache's own strings). */
  covers(counterKey: string): boolean {
    if (this.#byDomain.size === 0) return false;
    let known = this.#covered.get(counterKey);
    if (known === undefined) {
      if (this.#covered.size >= 100_000) this.#covered.clear();
      this.#covered.set(counterKey, known = this.#covers(counterKey));
    }
    return known;
  }

  #covers(counterKey: string): boolean {
    const parts = counterKey.split("|");
    const shapes = this.#byDomain.get(parts[0]!);
    if (!shapes) return false;
    return shapes.some((shape) =>
      shape.length === parts.length - 1 && shape.every((e, i) => {
        const part = parts[i + 1]!;
        const eq = part.indexOf("=");
        return part.slice(0, eq) === e.key && (e.value === undefined || part.slice(eq + 1) === e.value);
      })
    );
  }
}

export interface AggregatorRuleSet {
  readonly rules: RateLimitRules;
  readonly usageFed: UsageFedRules;
}

export interface AggregatorSnapshot {
  readonly v: 1;
  /** The last stream sequence folded in (0: none). */
  readonly seq: number;
  /** Log time when the snapshot was taken. */
  readonly logTimeMs: number;
  readonly counters: CounterSnapshot;
  /** Reservations held (absent when none, so a snapshot without any has the bytes it had before reservations). */
  readonly reservations?: ReservationSnapshot;
}

export class AggregatorSnapshotError extends Error {
  override readonly name = "AggregatorSnapshotError";
}

export interface AggregatorCoreOptions extends AggregatorRuleSet {
  /** This replica's id, as written in the hit events it publishes. */
  readonly replica: string;
  /** Wall clock, epoch ms: only ages out local hits (the folded store follows log time). Default Date.now. */
  readonly now?: () => number;
  /** How long a counter outlives its window, in log time (default 60 s: covers clock skew between NATS and RLS). */
  readonly retainMs?: number;
  readonly store?: CounterStore;
  /** How long a reservation counts when no usage event releases it (default RESERVATION_HOLD_MS). */
  readonly reservationHoldMs?: number;
}

/** Envoy's limit on a hits addend; a cost above it counts nothing (docs/usage-event.md). */
const MAX_HITS_ADDEND = 1_000_000_000;

export class AggregatorCore {
  readonly replica: string;
  /** The fold of the log: what snapshots hold. */
  readonly store: CounterStore;
  /** What the rate limit service reads and adds to: the folded store plus this replica's unconfirmed hits. */
  readonly view: LocalHitsView;
  /** Reservations held on the store's counters (folded ones are part of the snapshot). */
  readonly reservations = new ReservationBook();
  readonly #holdMs: number;
  readonly #now: () => number;
  readonly #retainMs: number;
  #rules: AggregatorRuleSet;
  #matches: MatchCache;
  #seq = 0;
  #logTimeMs = 0;

  constructor(o: AggregatorCoreOptions) {
    this.replica = o.replica;
    this.store = o.store ?? new CounterStore();
    this.view = new LocalHitsView(new ReservedCounters(this.store, this.reservations));
    this.#holdMs = o.reservationHoldMs ?? RESERVATION_HOLD_MS;
    this.#now = o.now ?? Date.now;
    this.#retainMs = o.retainMs ?? 60_000;
    this.#rules = { rules: o.rules, usageFed: o.usageFed };
    this.#matches = new MatchCache(o.rules);
  }

  get seq(): number {
    return this.#seq;
  }

  get logTimeMs(): number {
    return this.#logTimeMs;
  }

  get rules(): RateLimitRules {
    return this.#rules.rules;
  }

  get usageFed(): UsageFedRules {
    return this.#rules.usageFed;
  }

  /** For the RLS's checkOnly option: usage events feed this counter, so a call's hits only check it. */
  checkOnly = (limit: MatchedLimit): boolean => this.#rules.usageFed.covers(limit.counterKey);

  /**
   * Swaps the rules for records folded from now on (counters already folded stay). A failed config changes nothing:
   * its errors are returned and the rules in force stay.
   */
  setRules(next: AggregatorRuleSet | RlsConfigResult, usageFed?: UsageFedRules): readonly ResourceError[] {
    if ("usageFed" in next) this.#rules = next;
    else if (next.ok) this.#rules = { rules: next.rules, usageFed: usageFed ?? this.#rules.usageFed };
    else return next.errors;
    this.#matches = new MatchCache(this.#rules.rules);
    return [];
  }

  /**
   * Folds a usage event: each descriptor that matches a limited rule adds its hits to the rule's counter in the
   * window of the event's time. False when `at` was already folded (nothing changes). `eventTimeMs` is
   * Date.parse(event.time), for a caller that already knows it.
   */
  applyUsage(event: UsageEvent, at?: LogPosition, eventTimeMs: number = Date.parse(event.time)): boolean {
    if (!this.#enter(at, eventTimeMs)) return false;
    const { descriptors } = event;
    const released = event.reservation === undefined
      ? undefined
      : this.reservations.release(event.reservation, at?.logTimeMs ?? eventTimeMs, this.#cutoff());
    const memos: DescriptorMemo[] = [];
    let replaced: Set<string> | undefined;
    for (const d of descriptors) {
      const memo = this.#matches.get(d.domain, d.entries);
      memos.push(memo);
      // `replaces` works within one rate limit request, and the descriptors of one event are one stream-done call.
      for (const name of memo.match?.limit.replaces ?? []) (replaced ??= new Set()).add(`${d.domain}\u0000${name}`);
    }
    const cutoff = this.#cutoff();
    for (let i = 0; i < descriptors.length; i++) {
      const memo = memos[i]!;
      const m = memo.match;
      if (!m || m.limit.kind !== "limited") continue;
      if (replaced && m.limit.name !== "" && replaced.has(`${m.domain}\u0000${m.limit.name}`)) continue;
      const hits = hitsOf(descriptors[i]!, event.costs);
      if (hits === 0) continue;
      const held = released?.get(m.counterKey);
      if (held) {
        this.store.add(held.key, hits, held.windowEnd);
        continue;
      }
      moveToWindow(memo, m.limit.unit, eventTimeMs, this.#rules.rules.windows);
      if (memo.windowEnd <= cutoff) continue;
      this.store.add(memo.key, hits, memo.windowEnd);
    }
    return true;
  }

  /** Folds a hit event; this replica's own also settles its local overlay. False when `at` was already folded. */
  applyHits(hit: HitEvent, at?: LogPosition): boolean {
    if (!this.#enter(at, Date.parse(hit.time))) return false;
    if (hit.reservation !== undefined) {
      const t = at?.logTimeMs ?? Date.parse(hit.time);
      const { reservation, counterKey, windowId, n, reservedUntil } = hit;
      const own = hit.replica === this.replica;
      this.reservations.hold(reservation, counterKey, windowId, n, reservedUntil ?? t, t, this.#cutoff(), own);
      return true;
    }
    const key = windowKey(hit.counterKey, hit.windowId);
    if (hit.replica === this.replica) this.view.settle(key, hit.n);
    const end = parseWindowId(hit.windowId)?.end;
    if (end !== undefined && end > this.#cutoff()) this.store.add(key, hit.n, end);
    return true;
  }

  /** A record that counts nothing (unreadable, another subject) still moves the position past it. */
  skip(at: LogPosition): boolean {
    return this.#enter(at, undefined);
  }

  /** The hit event for hits the RLS just added to the view (its onHits hook). */
  localHitEvent(hit: AppliedHit): HitEvent {
    return {
      v: 1,
      id: usageEventId(hit.eventTimeMs),
      time: usageEventTime(hit.eventTimeMs),
      domain: hit.domain,
      counterKey: hit.counterKey,
      windowId: hit.windowId,
      n: hit.n,
      replica: this.replica,
    };
  }

  /**
   * The RLS's onReserve hook on a replica that publishes hit events: holds the reservation locally and returns the
   * hit event to publish (its `reservedUntil` is the hold's end).
   */
  reserveLocal(r: AppliedReservation): HitEvent {
    const until = r.eventTimeMs + this.#holdMs;
    this.reservations.holdLocal(r.reservation, r.counterKey, r.windowId, r.n, until);
    return { ...this.localHitEvent(r), reservation: r.reservation, reservedUntil: until };
  }

  /** The RLS's onReserve hook where no log exists (`tollgate run` folding in process): the hold is folded at once. */
  reserveFolded(r: AppliedReservation): void {
    const t = r.eventTimeMs;
    if (t > this.#logTimeMs) this.#logTimeMs = t;
    this.reservations.hold(r.reservation, r.counterKey, r.windowId, r.n, t + this.#holdMs, t, this.#cutoff());
  }

  /** Drops expired counters and reservations: folded ones by log time, local ones by the wall clock. Returns how
   * many. */
  prune(): number {
    const now = this.#now();
    return this.store.prune(this.#cutoff()) + this.view.prune(now) + this.reservations.expire(this.#logTimeMs, now);
  }

  snapshot(): AggregatorSnapshot {
    this.store.prune(this.#cutoff());
    this.reservations.expire(this.#logTimeMs, this.#now());
    const reservations = this.reservations.snapshot();
    return {
      v: 1,
      seq: this.#seq,
      logTimeMs: this.#logTimeMs,
      counters: this.store.snapshot(),
      ...(reservations.held.length > 0 ? { reservations } : {}),
    };
  }

  /** Replaces the folded state (the local overlay stays), or throws and leaves everything as it was. */
  restore(snapshot: unknown): void {
    const s = checkSnapshot(snapshot);
    this.reservations.restore(s.reservations ?? { version: 1, held: [] });
    this.store.restore(s.counters);
    this.#seq = s.seq;
    this.#logTimeMs = s.logTimeMs;
  }

  #enter(at: LogPosition | undefined, recordTimeMs: number | undefined): boolean {
    if (at) {
      if (at.seq <= this.#seq) return false;
      this.#seq = at.seq;
    }
    const t = at?.logTimeMs ?? recordTimeMs;
    if (t !== undefined && t > this.#logTimeMs) this.#logTimeMs = t;
    return true;
  }

  #cutoff(): number {
    return this.#logTimeMs - this.#retainMs;
  }
}

/** The hits a usage descriptor counts (0: nothing), as Envoy resolves a stream-done hits addend. */
export function hitsOf(d: UsageDescriptor, costs: Readonly<Record<string, number>>): number {
  if (d.hitsAddend !== undefined) return d.hitsAddend;
  if (d.hitsAddendFrom === undefined) return 1;
  if (!Object.hasOwn(costs, d.hitsAddendFrom)) return 0;
  const cost = costs[d.hitsAddendFrom];
  return typeof cost === "number" && Number.isSafeInteger(cost) && cost >= 0 && cost <= MAX_HITS_ADDEND ? cost : 0;
}

export function encodeAggregatorSnapshot(s: AggregatorSnapshot): Uint8Array {
  // Fixed field order and sorted rows (CounterStore.snapshot): equal states give equal bytes.
  const { v, seq, logTimeMs, counters, reservations } = s;
  const fields = { v, seq, logTimeMs, counters };
  return new TextEncoder().encode(JSON.stringify(reservations ? { ...fields, reservations } : fields));
}

export function decodeAggregatorSnapshot(bytes: Uint8Array): AggregatorSnapshot {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new AggregatorSnapshotError("Cannot read the aggregator snapshot: it is not UTF-8 JSON", { cause });
  }
  return checkSnapshot(json);
}

function checkSnapshot(snapshot: unknown): AggregatorSnapshot {
  const s = snapshot as Partial<AggregatorSnapshot> | null;
  if (
    typeof s !== "object" || s === null || s.v !== 1 || !Number.isSafeInteger(s.seq) || s.seq! < 0 ||
    !Number.isSafeInteger(s.logTimeMs)
  ) {
    throw new AggregatorSnapshotError("Cannot restore the aggregator: not a version 1 aggregator snapshot");
  }
  try {
    CounterStore.fromSnapshot(s.counters);
    if (s.reservations !== undefined) new ReservationBook().restore(s.reservations);
  } catch (cause) {
    throw new AggregatorSnapshotError(`Cannot restore the aggregator: ${(cause as Error).message}`, { cause });
  }
  return s as AggregatorSnapshot;
}

/**
 * The store the rate limit service answers from: a read is the folded count plus this replica's local hits, a write
 * adds to the local hits only. `size`, `entries` and `snapshot` describe the local hits.
 */
export class LocalHitsView extends CounterStore {
  readonly #base: CounterStore;
  readonly #local = new Map<WindowKey, { count: number; windowEnd: number }>();

  constructor(base: CounterStore) {
    super();
    this.#base = base;
  }

  override get size(): number {
    return this.#local.size;
  }

  override get(key: WindowKey): number {
    return this.#base.get(key) + (this.#local.get(key)?.count ?? 0);
  }

  override add(key: WindowKey, n: number, windowEnd: number): number {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Cannot add ${n} to a counter: not a whole count`);
    const local = this.#local.get(key);
    if (local) local.count += n;
    else if (n > 0) this.#local.set(key, { count: n, windowEnd });
    return this.get(key);
  }

  /** This replica's hit event came back through the log: the folded store has those hits now. */
  settle(key: WindowKey, n: number): void {
    const local = this.#local.get(key);
    if (!local) return;
    local.count -= Math.min(n, local.count);
    if (local.count === 0) this.#local.delete(key);
  }

  override prune(nowMs: number): number {
    let removed = 0;
    for (const [key, c] of this.#local) {
      if (c.windowEnd <= nowMs) {
        this.#local.delete(key);
        removed++;
      }
    }
    return removed;
  }

  override *entries(): IterableIterator<[WindowKey, Counter]> {
    for (const key of [...this.#local.keys()].sort()) {
      const c = this.#local.get(key)!;
      yield [key, { count: c.count, windowEnd: c.windowEnd }];
    }
  }

  override restore(): void {
    throw new AggregatorSnapshotError("Cannot restore local hits: restore the aggregator's folded store");
  }
}

function enc(part: string): string {
  return encodeURIComponent(part);
}
