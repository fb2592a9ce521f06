// The dashboard's time series: every usage event (and, in `tollgate run`, every response the edge sent) lands in a ring
// of fixed buckets (10 s each, 30 minutes by default) keyed by the event's own time, so an aggregator catching up
// with its stream draws the traffic when it happened, not when it was folded.
//
// Memory is bounded whatever the traffic: each bucket keeps at most `labelsPerBucket` labels per dimension (route,
// model, backend, tenant, error type). A new label arriving at a full table evicts the smallest one into "other"
// (the Space-Saving rule), so heavy hitters keep their own series, and totals stay exact: every request is counted
// once, under its label or under "other".
import type { UsageEvent } from "../../usage/usage_event.ts";
import { addCell, type Cell, emptyCell, LabelTable } from "./label_table.ts";

export type Dimension = "route" | "model" | "backend" | "tenant";
export const DIMENSIONS: readonly Dimension[] = ["route", "model", "backend", "tenant"];
export const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;
export type StatusClass = typeof STATUS_CLASSES[number];

/** Upper bounds (ms) of the latency histogram each bucket keeps; one more bin holds everything above. */
export const LATENCY_BOUNDS_MS = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000] as const;

export interface DashboardRecorderOptions {
  /** Default 10 s. */
  readonly bucketMs?: number;
  /** How far back the ring reaches; default 30 minutes. */
  readonly windowMs?: number;
  /** Labels kept per dimension per bucket before the smallest go to "other"; default 24. */
  readonly labelsPerBucket?: number;
  /** Wall clock, epoch ms; default Date.now. */
  readonly now?: () => number;
  /** Who a request is billed to (the event's tenant, or a descriptor value); undefined: not known. */
  readonly tenantOf?: (event: UsageEvent) => string | undefined;
}

/** A response as the edge sent it: status and Envoy's response code details ("via_upstream", "route_not_found"…). */
export interface EdgeResponse {
  readonly status: number;
  readonly details: string;
}

interface Bucket {
  start: number;
  readonly total: Cell;
  /** Usage events by status class. */
  readonly usageStatus: number[];
  /** Edge responses by status class. */
  readonly edgeStatus: number[];
  readonly latency: number[];
  readonly dims: Record<Dimension, LabelTable>;
  /** Errors (status >= 400) by type: "429 request_rate_limited", "HTTP 503"… */
  readonly errorTypes: LabelTable;
}

/** Since the recorder started, not bounded by the window. */
export interface RecorderTotals {
  requests: number;
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  /** Usage events with a status >= 400. */
  errors: number;
  /** Responses the edge sent (run only). */
  responses: number;
  /** Edge responses with a status >= 400. */
  responseErrors: number;
  /** Events older than the window when they arrived: in the totals, in no bucket. */
  late: number;
}

export interface LabelSeries {
  readonly label: string;
  /** Over the range, for ranking. */
  readonly requests: number;
  readonly tokens: number;
  /** One value per bucket of the range. */
  readonly requestsSeries: readonly number[];
  readonly tokensSeries: readonly number[];
}

export interface RecorderView {
  readonly bucketMs: number;
  readonly windowMs: number;
  /** Start of each bucket of the range, oldest first; the last one is the bucket `now` falls in (partial). */
  readonly times: readonly number[];
  readonly requests: readonly number[];
  readonly tokens: readonly number[];
  readonly inputTokens: readonly number[];
  readonly outputTokens: readonly number[];
  readonly errors: readonly number[];
  /** Latency percentiles per bucket (ms; null without requests), estimated from the histogram. */
  readonly latencyP50: readonly (number | null)[];
  readonly latencyP95: readonly (number | null)[];
  /** Over the whole range. */
  readonly range: {
    readonly requests: number;
    readonly tokens: number;
    readonly errors: number;
    readonly latencyP50: number | null;
    readonly latencyP95: number | null;
  };
  readonly totals: RecorderTotals;
  /** The top labels per dimension, plus "other" when anything is left over. */
  readonly series: Readonly<Record<Dimension, readonly LabelSeries[]>>;
  /** Where the status classes come from: the edge's responses (every request) or the usage events (routed ones). */
  readonly statusSource: "edge" | "usage";
  readonly statusClasses: Readonly<Record<StatusClass, readonly number[]>>;
  readonly errorTypes: readonly { readonly label: string; readonly count: number }[];
}

export const OTHER = "other";

export class DashboardRecorder {
  readonly bucketMs: number;
  readonly windowMs: number;
  readonly #labels: number;
  readonly #now: () => number;
  readonly #tenantOf: (event: UsageEvent) => string | undefined;
  readonly #ring: (Bucket | undefined)[];
  readonly #totals: RecorderTotals = {
    requests: 0,
    tokens: 0,
    inputTokens: 0,
    outputTokens: 0,
    errors: 0,
    responses: 0,
    responseErrors: 0,
    late: 0,
  };
  #edgeFed = false;

  constructor(o: DashboardRecorderOptions = {}) {
    this.bucketMs = o.bucketMs ?? 10_000;
    this.windowMs = o.windowMs ?? 30 * 60_000;
    if (!Number.isInteger(this.bucketMs) || this.bucketMs <= 0) {
      throw new RangeError(`Invalid dashboard bucket ${this.bucketMs} ms: expected a positive whole number`);
    }
    if (this.windowMs < this.bucketMs || this.windowMs % this.bucketMs !== 0) {
      throw new RangeError(`Invalid dashboard window ${this.windowMs} ms: expected a multiple of ${this.bucketMs}`);
    }
    this.#labels = Math.max(1, o.labelsPerBucket ?? 24);
    this.#now = o.now ?? Date.now;
    this.#tenantOf = o.tenantOf ?? ((e) => e.tenant);
    this.#ring = new Array(this.windowMs / this.bucketMs).fill(undefined);
  }

  get totals(): Readonly<RecorderTotals> {
    return { ...this.#totals };
  }

  /** Label cells held over every bucket and dimension (for the memory bound). */
  get cells(): number {
    let n = 0;
    for (const b of this.#ring) {
      if (!b) continue;
      for (const d of DIMENSIONS) n += b.dims[d].size;
      n += b.errorTypes.size;
    }
    return n;
  }

  recordUsage(e: UsageEvent): void {
    const input = e.tokens.inputTokens ?? 0;
    const output = e.tokens.outputTokens ?? 0;
    const tokens = e.tokens.totalTokens ?? input + output;
    const error = e.status >= 400 ? 1 : 0;
    const t = this.#totals;
    t.requests++;
    t.tokens += tokens;
    t.inputTokens += input;
    t.outputTokens += output;
    t.errors += error;
    const b = this.#bucketAt(Date.parse(e.time));
    if (!b) return;
    const add = { requests: 1, tokens, inputTokens: input, outputTokens: output, errors: error };
    addCell(b.total, add);
    b.usageStatus[statusClassIndex(e.status)]!++;
    b.latency[latencyBin(e.latencyMs)]!++;
    b.dims.route.add(e.route || "(unnamed)", add);
    b.dims.model.add(e.models.requested, add);
    b.dims.backend.add(e.backend ?? "(none)", add);
    const tenant = this.#tenantOf(e);
    if (tenant !== undefined) b.dims.tenant.add(tenant, add);
    if (error && !this.#edgeFed) b.errorTypes.add(`HTTP ${e.status}`, ERROR_HIT);
  }

  /** The edge's view of a response; once fed, errors come from here (it sees requests that were never routed). */
  recordResponse(r: EdgeResponse): void {
    this.#edgeFed = true;
    const error = r.status >= 400;
    this.#totals.responses++;
    if (error) this.#totals.responseErrors++;
    const b = this.#bucketAt(this.#now());
    if (!b) return;
    b.edgeStatus[statusClassIndex(r.status)]!++;
    if (error) b.errorTypes.add(r.details ? `${r.status} ${r.details}` : `HTTP ${r.status}`, ERROR_HIT);
  }

  /** The last `rangeMs` (default: the whole window), `top` labels per dimension. */
  view(o: { readonly rangeMs?: number; readonly top?: number } = {}): RecorderView {
    const now = this.#now();
    const count = Math.max(1, Math.min(this.#ring.length, Math.ceil((o.rangeMs ?? this.windowMs) / this.bucketMs)));
    const last = Math.floor(now / this.bucketMs) * this.bucketMs;
    const times = Array.from({ length: count }, (_, i) => last - (count - 1 - i) * this.bucketMs);
    const buckets = times.map((start) => {
      const b = this.#ring[this.#slot(start)];
      return b && b.start === start ? b : undefined;
    });
    const of = (f: (b: Bucket) => number) => buckets.map((b) => (b ? f(b) : 0));
    const statusOf = this.#edgeFed ? (b: Bucket) => b.edgeStatus : (b: Bucket) => b.usageStatus;
    const statusClasses = Object.fromEntries(
      STATUS_CLASSES.map((c, i) => [c, of((b) => statusOf(b)[i]!)]),
    ) as Record<StatusClass, number[]>;
    const rangeLatency = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
    for (const b of buckets) b?.latency.forEach((n, i) => rangeLatency[i]! += n);
    const errorTypes = new Map<string, number>();
    for (const b of buckets) {
      if (!b) continue;
      for (const [label, cell] of b.errorTypes.entries()) {
        errorTypes.set(label, (errorTypes.get(label) ?? 0) + cell.requests);
      }
    }
    const requests = of((b) => b.total.requests);
    const tokens = of((b) => b.total.tokens);
    const errors = of((b) => b.total.errors);
    const edgeErrors = of((b) => b.edgeStatus[3]! + b.edgeStatus[4]!);
    return {
      bucketMs: this.bucketMs,
      windowMs: this.windowMs,
      times,
      requests,
      tokens,
      inputTokens: of((b) => b.total.inputTokens),
      outputTokens: of((b) => b.total.outputTokens),
      errors: this.#edgeFed ? edgeErrors : errors,
      latencyP50: buckets.map((b) => (b ? percentile(b.latency, 0.5) : null)),
      latencyP95: buckets.map((b) => (b ? percentile(b.latency, 0.95) : null)),
      range: {
        requests: sum(requests),
        tokens: sum(tokens),
        errors: sum(this.#edgeFed ? edgeErrors : errors),
        latencyP50: percentile(rangeLatency, 0.5),
        latencyP95: percentile(rangeLatency, 0.95),
      },
      totals: this.totals,
      series: Object.fromEntries(DIMENSIONS.map((d) => [d, topSeries(buckets, d, o.top ?? 6)])) as Record<
        Dimension,
        LabelSeries[]
      >,
      statusSource: this.#edgeFed ? "edge" : "usage",
      statusClasses,
      errorTypes: [...errorTypes].map(([label, count]) => ({ label, count }))
        .sort((a, b) => b.count - a.count || compare(a.label, b.label)).slice(0, 10),
    };
  }

  #slot(start: number): number {
    const i = Math.floor(start / this.bucketMs) % this.#ring.length;
    return i < 0 ? i + this.#ring.length : i;
  }

  /** The bucket for time t (a time ahead of the clock counts now), or undefined when t is older than the window. */
  #bucketAt(t: number): Bucket | undefined {
    const now = this.#now();
    const at = Number.isFinite(t) && t <= now ? t : now;
    const start = Math.floor(at / this.bucketMs) * this.bucketMs;
    if (start <= now - this.windowMs) {
      this.#totals.late++;
      return undefined;
    }
    const slot = this.#slot(start);
    const b = this.#ring[slot];
    if (b && b.start === start) return b;
    if (b && b.start > start) {
      this.#totals.late++;
      return undefined;
    }
    const fresh = newBucket(start, this.#labels);
    this.#ring[slot] = fresh;
    return fresh;
  }
}

const ERROR_HIT = { requests: 1, tokens: 0, inputTokens: 0, outputTokens: 0, errors: 1 };

function newBucket(start: number, labels: number): Bucket {
  return {
    start,
    total: emptyCell(),
    usageStatus: [0, 0, 0, 0, 0],
    edgeStatus: [0, 0, 0, 0, 0],
    latency: new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0),
    dims: {
      route: new LabelTable(labels),
      model: new LabelTable(labels),
      backend: new LabelTable(labels),
      tenant: new LabelTable(labels),
    },
    errorTypes: new LabelTable(labels),
  };
}

function statusClassIndex(status: number): number {
  return Math.min(4, Math.max(0, Math.floor(status / 100) - 1));
}

function latencyBin(ms: number): number {
  const i = LATENCY_BOUNDS_MS.findIndex((bound) => ms <= bound);
  return i < 0 ? LATENCY_BOUNDS_MS.length : i;
}

/** The q-quantile of a histogram, interpolated linearly inside its bin (the open last bin reports its lower bound). */
export function percentile(bins: readonly number[], q: number): number | null {
  const n = sum(bins);
  if (n === 0) return null;
  const rank = q * n;
  let seen = 0;
  for (let i = 0; i < bins.length; i++) {
    const c = bins[i]!;
    if (c > 0 && seen + c >= rank) {
      const lo = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]!;
      const hi = LATENCY_BOUNDS_MS[i];
      if (hi === undefined) return lo;
      return lo + (hi - lo) * Math.max(0, Math.min(1, (rank - seen) / c));
    }
    seen += c;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!;
}

function topSeries(buckets: readonly (Bucket | undefined)[], d: Dimension, top: number): LabelSeries[] {
  const ranked = new Map<string, { requests: number; tokens: number }>();
  for (const b of buckets) {
    if (!b) continue;
    for (const [label, cell] of b.dims[d].entries()) {
      const r = ranked.get(label) ?? { requests: 0, tokens: 0 };
      r.requests += cell.requests;
      r.tokens += cell.tokens;
      ranked.set(label, r);
    }
  }
  // Tenants are ranked by what they spend, the rest by how much traffic they carry.
  const byTokens = d === "tenant";
  const chosen = [...ranked].filter(([label]) => label !== OTHER)
    .sort(([a, x], [b, y]) =>
      byTokens
        ? y.tokens - x.tokens || y.requests - x.requests || compare(a, b)
        : y.requests - x.requests || y.tokens - x.tokens || compare(a, b)
    )
    .slice(0, top).map(([label]) => label);
  const out: LabelSeries[] = chosen.map((label) => {
    const cells = buckets.map((b) => b?.dims[d].get(label));
    const requestsSeries = cells.map((c) => c?.requests ?? 0);
    const tokensSeries = cells.map((c) => c?.tokens ?? 0);
    return { label, requests: sum(requestsSeries), tokens: sum(tokensSeries), requestsSeries, tokensSeries };
  });
  // "other": whatever the chosen labels leave of each bucket's labelled traffic (tenants are known for some requests
  // only, so their total is the table's, not the bucket's).
  const labelled = buckets.map((b) => (b ? b.dims[d].total() : emptyCell()));
  const otherRequests = labelled.map((c, i) => c.requests - sum(out.map((s) => s.requestsSeries[i]!)));
  const otherTokens = labelled.map((c, i) => c.tokens - sum(out.map((s) => s.tokensSeries[i]!)));
  if (otherRequests.some((n) => n > 0) || otherTokens.some((n) => n > 0)) {
    out.push({
      label: OTHER,
      requests: sum(otherRequests),
      tokens: sum(otherTokens),
      requestsSeries: otherRequests,
      tokensSeries: otherTokens,
    });
  }
  return out;
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
