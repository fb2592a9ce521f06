// ExtProc metrics: streams by role and outcome, messages and per-phase processing time. Labels are bounded sets
// (role × phase × outcome), never request data.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export type StreamRole = "router" | "attempt";

export class ExtProcMetrics {
  readonly streamsStarted: Counter<"role">;
  readonly streamsFinished: Counter<"role" | "outcome">;
  readonly streamsActive: Gauge<"role">;
  readonly messages: Counter<"role" | "phase">;
  readonly phaseSeconds: Histogram<"role" | "phase">;
  readonly streamSeconds: Histogram<"role" | "outcome">;
  readonly immediateResponses: Counter<"status">;
  readonly requestAttempts: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.streamsStarted = new Counter({
      name: "tollgate_extproc_streams_started_total",
      help: "ExtProc gRPC streams opened by Envoy.",
      labelNames: ["role"],
      registers,
    });
    this.streamsFinished = new Counter({
      name: "tollgate_extproc_streams_finished_total",
      help: "ExtProc streams finished, by outcome (done, rejected, protocol, aborted, cancelled, failed).",
      labelNames: ["role", "outcome"],
      registers,
    });
    this.streamsActive = new Gauge({
      name: "tollgate_extproc_streams_active",
      help: "ExtProc streams currently open.",
      labelNames: ["role"],
      registers,
    });
    this.messages = new Counter({
      name: "tollgate_extproc_messages_total",
      help: "ProcessingRequest messages received, by phase.",
      labelNames: ["role", "phase"],
      registers,
    });
    this.phaseSeconds = new Histogram({
      name: "tollgate_extproc_phase_duration_seconds",
      help: "Time the sidecar spent answering one ProcessingRequest, by phase.",
      labelNames: ["role", "phase"],
      buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers,
    });
    this.streamSeconds = new Histogram({
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
}
