// The controller's Prometheus metrics.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export class ControllerMetrics {
  readonly leader: Gauge;
  readonly publishedRevision: Gauge;
  readonly compiles: Counter<"result">;
  readonly compileSeconds: Histogram;
  readonly publishes: Counter<"result">;
  readonly snapshotBytes: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.leader = new Gauge({
      name: "tollgate_controller_leader",
      help: "1 while this controller holds the lease and publishes, 0 while it stands by.",
      registers,
    });
    this.publishedRevision = new Gauge({
      name: "tollgate_controller_published_revision",
      help: "The config revision at the head of the bucket, as this controller last read or wrote it.",
      registers,
    });
    this.compiles = new Counter({
      name: "tollgate_controller_compiles_total",
      help: "Compiles of the resources, by result: changed, unchanged, rejected, failed.",
      labelNames: ["result"],
      registers,
    });
    this.compileSeconds = new Histogram({
      name: "tollgate_controller_compile_seconds",
      help: "Time to read, validate, compile and encode the resources.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.publishes = new Counter({
      name: "tollgate_controller_publishes_total",
      help: "Snapshot publications, by result: published, conflict, failed.",
      labelNames: ["result"],
      registers,
    });
    this.snapshotBytes = new Gauge({
      name: "tollgate_controller_snapshot_bytes",
      help: "Size of the last compiled snapshot, canonical JSON before compression.",
      registers,
    });
  }
}
