// Usage publisher metrics: what reached JetStream (directly or replayed from the spool), what waited in the spool,
// and what was lost, by reason. Labels are bounded sets, never event data.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export type PublishPath = "direct" | "replay";

/**
 * Why an event was dropped:
 * - `spool_full`: the spool was full and its policy is reject-new (the new event is dropped);
 * - `spool_evicted`: the spool was full and its policy is drop-oldest (the oldest waiting event is dropped);
 * - `too_large`: the event can never fit (larger than the spool, or than NATS max_payload);
 * - `spool_error`: the spool file could not be written (disk full, I/O error);
 * - `torn_record`: a record cut short when the process died while writing it, found when the spool was opened.
 */
export type DropReason = "spool_full" | "spool_evicted" | "too_large" | "spool_error" | "torn_record";

export class UsageMetrics {
  readonly published: Counter<"path">;
  readonly deduplicated: Counter<"path">;
  readonly spooled: Counter;
  readonly dropped: Counter<"reason">;
  readonly spoolRecords: Gauge;
  readonly spoolBytes: Gauge;
  readonly publishSeconds: Histogram<"path">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.published = new Counter({
      name: "tollgate_usage_events_published_total",
      help: "Usage events JetStream confirmed as stored, sent directly or replayed from the spool.",
      labelNames: ["path"],
      registers,
    });
    this.deduplicated = new Counter({
      name: "tollgate_usage_events_deduplicated_total",
      help: "Publishes JetStream confirmed as duplicates of an event it already had (same Nats-Msg-Id).",
      labelNames: ["path"],
      registers,
    });
    this.spooled = new Counter({
      name: "tollgate_usage_events_spooled_total",
      help: "Usage events written to the local spool because NATS was down, slow or behind.",
      registers,
    });
    this.dropped = new Counter({
      name: "tollgate_usage_events_dropped_total",
      help: "Usage events lost, by reason (spool_full, spool_evicted, too_large, spool_error, torn_record).",
      labelNames: ["reason"],
      registers,
    });
    this.spoolRecords = new Gauge({
      name: "tollgate_usage_spool_records",
      help: "Usage events waiting in the local spool.",
      registers,
    });
    this.spoolBytes = new Gauge({
      name: "tollgate_usage_spool_bytes",
      help: "Bytes of the usage events waiting in the local spool.",
      registers,
    });
    this.publishSeconds = new Histogram({
      name: "tollgate_usage_publish_duration_seconds",
      help: "Time from sending a usage event to JetStream to its acknowledgement.",
      labelNames: ["path"],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
  }

  /** Events confirmed stored (first copy) for a path, read back from the counter. */
  async publishedCount(path: PublishPath): Promise<number> {
    return await counterValue(this.published, { path });
  }

  async droppedCount(reason: DropReason): Promise<number> {
    return await counterValue(this.dropped, { reason });
  }

  setSpoolDepth(records: number, bytes: number): void {
    this.spoolRecords.set(records);
    this.spoolBytes.set(bytes);
  }
}

async function counterValue<L extends string>(c: Counter<L>, labels: Partial<Record<L, string>>): Promise<number> {
  const { values } = await c.get();
  const match = values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k as L] === want));
  return match?.value ?? 0;
}
