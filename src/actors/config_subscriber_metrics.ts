// A config subscriber's Prometheus metrics: which revision runs, and what happened to each snapshot received.
import { Counter, Gauge, type Registry } from "prom-client";

export class ConfigSubscriberMetrics {
  readonly revision: Gauge;
  readonly appliedAt: Gauge;
  readonly updates: Counter<"result" | "source">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.revision = new Gauge({
      name: "tollgate_config_revision",
      help: "The config revision this process runs (0: none applied yet).",
      registers,
    });
    this.appliedAt = new Gauge({
      name: "tollgate_config_applied_timestamp_seconds",
      help: "When the running config revision was applied, Unix seconds.",
      registers,
    });
    this.updates = new Counter({
      name: "tollgate_config_updates_total",
      help: "Config snapshots received, by result (applied, refused, failed) and source (nats, cache).",
      labelNames: ["result", "source"],
      registers,
    });
    this.revision.set(0);
  }
}
