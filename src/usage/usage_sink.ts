// Where a sidecar's usage events go on NATS: the spool is opened, the usage publisher actor started, and every event
// the ExtProc server reports is encoded and handed to it. The sink never creates or changes the usage stream — its
// settings (replicas, duplicate window) belong to the aggregators that create it; until it exists, publishes fail
// and events wait in the spool.
import { dirname } from "node:path";
import { createActor, waitFor } from "xstate";
import type { Registry } from "prom-client";
import type { Logger } from "../observability/logger.ts";
import { UsageMetrics } from "../observability/usage_metrics.ts";
import {
  jetStreamTransport,
  usagePublisherActorOptions,
  type UsagePublisherInput,
  usagePublisherMachine,
} from "../actors/usage_publisher.ts";
import type { NatsLink } from "./nats_connection.ts";
import { Spool, type SpoolOptions } from "./spool.ts";
import { encodeUsageEvent, type UsageEvent, usageEventSubject } from "./usage_event.ts";

export const DEFAULT_USAGE_SUBJECT_PREFIX = "tollgate.usage";

export interface UsageSinkOptions {
  /** Resolves with the process's NATS link once it is connected; rejects when `signal` aborts. */
  readonly connect: (signal: AbortSignal) => Promise<NatsLink>;
  readonly spool: SpoolOptions;
  readonly registry: Registry;
  readonly logger: Logger;
  /** Events go to `<prefix>.<route hash>` (default tollgate.usage, what the aggregators consume). */
  readonly subjectPrefix?: string;
  /** Tuning passed to the publisher actor (timeouts, in-flight and queue limits, probe interval). */
  readonly publisher?: Partial<
    Pick<UsagePublisherInput, "publishTimeoutMs" | "maxInFlight" | "maxQueued" | "replayBatch" | "probeIntervalMs">
  >;
}

export interface UsageSink {
  /** Hands one event to the publisher; never blocks and never throws (a lost event is counted in the metrics). */
  publish(event: UsageEvent): void;
  readonly metrics: UsageMetrics;
  /** Events waiting in the spool. */
  readonly spooled: number;
  /** Stops the publisher: publishes in flight settle, whatever is left stays in the spool for the next start. */
  close(): Promise<void>;
}

export function startUsageSink(o: UsageSinkOptions): UsageSink {
  const prefix = o.subjectPrefix ?? DEFAULT_USAGE_SUBJECT_PREFIX;
  usageEventSubject(prefix, { route: "" }); // Rejects a malformed prefix now rather than at the first event.
  const dir = dirname(o.spool.path);
  Deno.mkdirSync(dir, { recursive: true });
  const spool = Spool.open(o.spool);
  const metrics = new UsageMetrics(o.registry);
  if (spool.recovered.records > 0 || spool.recovered.tornBytes > 0) {
    o.logger.info(
      { path: spool.path, records: spool.recovered.records, tornBytes: spool.recovered.tornBytes },
      "Usage spool holds events from an earlier run; they are replayed once NATS answers",
    );
  }
  const input: UsagePublisherInput = {
    connect: async (signal) => jetStreamTransport(await o.connect(signal)),
    spool,
    metrics,
    log: o.logger,
    ...o.publisher,
  };
  const actor = createActor(usagePublisherMachine, usagePublisherActorOptions(input));
  actor.subscribe({ error: (err) => o.logger.error({ err }, "The usage publisher failed") });
  actor.start();
  let closed = false;
  return {
    metrics,
    get spooled() {
      return spool.records;
    },
    publish(event) {
      if (closed) {
        metrics.dropped.inc({ reason: "spool_error" });
        o.logger.error({ id: event.id }, "A usage event arrived after the usage sink closed; it is lost");
        return;
      }
      let bytes: Uint8Array;
      try {
        bytes = encodeUsageEvent(event);
      } catch (err) {
        metrics.dropped.inc({ reason: "too_large" });
        o.logger.error({ err, id: event.id }, "Cannot encode a usage event; it is lost");
        return;
      }
      actor.send({ type: "usage.event", id: event.id, subject: usageEventSubject(prefix, event), bytes });
    },
    async close() {
      if (closed) return;
      closed = true;
      actor.send({ type: "usage.stop" });
      await waitFor(actor, (s) => s.status !== "active", { timeout: Infinity }).catch(() => {});
      actor.stop();
      spool[Symbol.dispose]();
    },
  };
}
