// ExtProc metrics: streams by role and outcome, messages and per-phase processing time. Labels are bounded sets
// (role × phase × outcome), never request data.
//
// The stream host records on every message, so it goes through the methods below (streamOpened, messageAnswered,
// streamClosed) rather than prom-client's per-call label handling: counts are kept in plain numbers and added to
// the prom-client counters and gauge when they are collected (a scrape, or get()), and the two duration histograms
// are FastHistograms with their series looked up once. What /metrics shows is unchanged.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { FastHistogram, type HistogramSeries } from "./fast_histogram.ts";
import type { Phase } from "../protocol/ext_proc.ts";

export type StreamRole = "router" | "attempt";

/** Counts of one label set not yet added to their prom-client counter. */
interface Tally<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  n: number;
}

/** What the stream host records for one role and phase. */
interface PhaseSlot {
  readonly messages: Tally<"role" | "phase">;
  readonly seconds: HistogramSeries;
}

interface RoleSlot {
  readonly started: Tally<"role">;
  /** Streams open now; undefined until the first stream of the role (the gauge has no series before). */
  active: number | undefined;
  readonly phases: Map<Phase, PhaseSlot>;
  readonly outcomes: Map<string, { readonly finished: Tally<"role" | "outcome">; readonly seconds: HistogramSeries }>;
}

export class ExtProcMetrics {
  readonly streamsStarted: Counter<"role">;
  readonly streamsFinished: Counter<"role" | "outcome">;
  readonly streamsActive: Gauge<"role">;
  readonly messages: Counter<"role" | "phase">;
  readonly phaseSeconds: FastHistogram<"role" | "phase">;
  readonly streamSeconds: FastHistogram<"role" | "outcome">;
  readonly immediateResponses: Counter<"status">;
  readonly requestAttempts: Histogram;
  readonly #roles = new Map<StreamRole, RoleSlot>();

  constructor(registry: Registry) {
    const registers = [registry];
    // Each flush runs in the collect() of the metric it feeds, so a scrape always sees every count.
    const roles = () => this.#roles.values();
    this.streamsStarted = new Counter({
      name: "tollgate_extproc_streams_started_total",
      help: "ExtProc gRPC streams opened by Envoy.",
      labelNames: ["role"],
      registers,
      collect() {
        for (const r of roles()) flush(this, r.started);
      },
    });
    this.streamsFinished = new Counter({
      name: "tollgate_extproc_streams_finished_total",
      help: "ExtProc streams finished, by outcome (done, rejected, protocol, aborted, cancelled, failed).",
      labelNames: ["role", "outcome"],
      registers,
      collect() {
        for (const r of roles()) for (const o of r.outcomes.values()) flush(this, o.finished);
      },
    });
    this.streamsActive = new Gauge({
      name: "tollgate_extproc_streams_active",
      help: "ExtProc streams currently open.",
      labelNames: ["role"],
      registers,
      collect() {
        for (const r of roles()) if (r.active !== undefined) this.set(r.started.labels, r.active);
      },
    });
    this.messages = new Counter({
      name: "tollgate_extproc_messages_total",
      help: "ProcessingRequest messages received, by phase.",
      labelNames: ["role", "phase"],
      registers,
      collect() {
        for (const r of roles()) for (const p of r.phases.values()) flush(this, p.messages);
      },
    });
    this.phaseSeconds = new FastHistogram({
      name: "tollgate_extproc_phase_duration_seconds",
      help: "Time the sidecar spent answering one ProcessingRequest, by phase.",
      labelNames: ["role", "phase"],
      buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers,
    });
    this.streamSeconds = new FastHistogram({
      name: "tollgate_extproc_stream_duration_seconds",
      help: "Lifetime of an ExtProc stream, from open to close.",
      labelNames: ["role", "outcome"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers,
    });
    this.immediateResponses = new Counter({
      name: "tollgate_extproc_immediate_responses_total",
      help: "Immediate responses sent instead of forwarding the request, by HTTP status.",
      labelNames: ["status"],
      registers,
    });
    this.requestAttempts = new Histogram({
      name: "tollgate_extproc_request_attempts",
      help: "Upstream attempts per routed GenAI request, counted when its router stream closes (0: Envoy never " +
        "sent it upstream; 2 or more: retries or provider fallback).",
      buckets: [0, 1, 2, 3, 4, 6, 8],
      registers,
    });
  }

  streamOpened(role: StreamRole): void {
    const r = this.#role(role);
    r.started.n++;
    r.active = (r.active ?? 0) + 1;
  }

  /** One ProcessingRequest answered, in `seconds` of the sidecar's time. */
  messageAnswered(role: StreamRole, phase: Phase, seconds: number): void {
    const r = this.#role(role);
    let p = r.phases.get(phase);
    if (!p) {
      const labels = { role, phase };
      r.phases.set(phase, p = { messages: { labels, n: 0 }, seconds: this.phaseSeconds.series(labels) });
    }
    p.messages.n++;
    p.seconds.observe(seconds);
  }

  streamClosed(role: StreamRole, outcome: string, seconds: number): void {
    const r = this.#role(role);
    r.active = (r.active ?? 0) - 1;
    let o = r.outcomes.get(outcome);
    if (!o) {
      const labels = { role, outcome };
      r.outcomes.set(outcome, o = { finished: { labels, n: 0 }, seconds: this.streamSeconds.series(labels) });
    }
    o.finished.n++;
    o.seconds.observe(seconds);
  }

  #role(role: StreamRole): RoleSlot {
    let r = this.#roles.get(role);
    if (!r) {
      r = { started: { labels: { role }, n: 0 }, active: undefined, phases: new Map(), outcomes: new Map() };
      this.#roles.set(role, r);
    }
    return r;
  }
}

function flush<L extends string>(counter: Counter<L>, tally: Tally<L>): void {
  if (tally.n === 0) return;
  counter.inc(tally.labels as Partial<Record<L, string>>, tally.n);
  tally.n = 0;
}
