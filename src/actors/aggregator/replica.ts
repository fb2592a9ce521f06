// A running aggregator replica: its core and its actor system, with what the CLI, the tests and the benchmarks need
// from outside — readiness, the RLS address, rules, stop (drain) and kill (crash).
import { type Actor, createActor, waitFor } from "xstate";
import type { Registry } from "prom-client";
import type { ServerCredentials } from "@grpc/grpc-js";
import type { ListenAddress } from "../../extproc/listen_address.ts";
import { type Clock, systemClock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { AggregatorCore, type AggregatorRuleSet } from "../../usage/aggregator_core.ts";
import { type NatsLink, USAGE_STREAM } from "../../usage/nats_connection.ts";
import type { RateLimitHeaderNames } from "../../usage/rls_service.ts";
import type { UsageEvent } from "../../usage/usage_event.ts";
import { AggregatorMetrics } from "./metrics.ts";
import type { RuleSources } from "./rule_files.ts";
import { checkReplica, SNAPSHOT_BUCKET } from "./snapshot_store.ts";
import { type AggregatorSystemInput, aggregatorSystemMachine } from "./system.ts";

export interface AggregatorOptions {
  readonly link: NatsLink;
  /** A-Z a-z 0-9 _ -, stable across restarts (it names the replica's snapshot). */
  readonly replica: string;
  readonly ruleSet: AggregatorRuleSet;
  readonly log: Logger;
  readonly registry: Registry;
  /** The RLS address; without it the replica only folds. */
  readonly listen?: ListenAddress;
  /** TLS for the RLS listener; plaintext when absent. */
  readonly rlsCredentials?: ServerCredentials;
  readonly rateLimitHeaders?: RateLimitHeaderNames;
  /** Rule files to watch (the ruleSet is their first load). */
  readonly ruleSources?: RuleSources;
  readonly clock?: Clock;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly now?: () => number;
  readonly stream?: string;
  readonly bucket?: string;
  /** Of the usage stream and the snapshot bucket when this replica creates them (default 1). */
  readonly replicas?: number;
  /** Default 10 s. */
  readonly snapshotIntervalMs?: number;
  /** Default 100,000 records. */
  readonly snapshotEveryRecords?: number;
  readonly snapshotChunkBytes?: number;
  readonly consume?: AggregatorSystemInput["consume"];
  readonly retryMs?: number;
  readonly drainMs?: number;
  /** Default 60 s (AggregatorCoreOptions.retainMs). */
  readonly retainMs?: number;
  /** Sees each usage event folded (the dashboard); must not throw. */
  readonly onUsage?: (event: UsageEvent) => void;
}

export interface AggregatorReplica extends AsyncDisposable {
  readonly core: AggregatorCore;
  readonly metrics: AggregatorMetrics;
  /** Set once the RLS listens. */
  readonly rlsAddress: ListenAddress | undefined;
  /** The snapshot the replica started from, if any. */
  readonly restoredFrom: { readonly replica: string; readonly seq: number } | undefined;
  /** Null when ready (booted, caught up with the stream's last sequence at boot, RLS listening), else why not. */
  notReadyReason(): string | null;
  setRules(ruleSet: AggregatorRuleSet): void;
  /** Writes a snapshot now (unless the last one is current). */
  snapshotNow(): void;
  /** Drains: stops serving and consuming, publishes the hit events it holds, writes a final snapshot. */
  stop(): Promise<void>;
  /** Stops everything at once and writes nothing, as a crash would. */
  kill(): void;
  /** Resolves with the RLS address once it listens (undefined without one); rejects if the replica ends first. */
  readonly listening: Promise<ListenAddress | undefined>;
  /** Resolves when the system has stopped; rejects with what made it fail. */
  readonly done: Promise<void>;
}

/** Starts a replica: it connects its JetStream pieces, restores a snapshot and catches up in the background. */
export function startAggregator(o: AggregatorOptions): AggregatorReplica {
  checkReplica(o.replica);
  const clock = o.clock ?? systemClock;
  const now = o.now ?? Date.now;
  const core = new AggregatorCore({
    replica: o.replica,
    ...o.ruleSet,
    now,
    ...(o.retainMs !== undefined ? { retainMs: o.retainMs } : {}),
  });
  const metrics = new AggregatorMetrics(o.registry);
  const input: AggregatorSystemInput = {
    link: o.link,
    core,
    metrics,
    log: o.log,
    clock,
    now,
    ...(o.listen ? { listen: o.listen } : {}),
    ...(o.rlsCredentials ? { rlsCredentials: o.rlsCredentials } : {}),
    ...(o.rateLimitHeaders ? { rateLimitHeaders: o.rateLimitHeaders } : {}),
    ...(o.ruleSources ? { ruleSources: o.ruleSources } : {}),
    stream: o.stream ?? USAGE_STREAM,
    bucket: o.bucket ?? SNAPSHOT_BUCKET,
    replicas: o.replicas ?? 1,
    snapshotIntervalMs: o.snapshotIntervalMs ?? 10_000,
    snapshotEveryRecords: o.snapshotEveryRecords ?? 100_000,
    ...(o.snapshotChunkBytes ? { snapshotChunkBytes: o.snapshotChunkBytes } : {}),
    ...(o.consume ? { consume: o.consume } : {}),
    ...(o.retryMs !== undefined ? { retryMs: o.retryMs } : {}),
    ...(o.drainMs !== undefined ? { drainMs: o.drainMs } : {}),
    ...(o.onUsage ? { onUsage: o.onUsage } : {}),
  };
  const actor: Actor<typeof aggregatorSystemMachine> = createActor(aggregatorSystemMachine, { input, clock });
  const done = new Promise<void>((resolve, reject) => {
    actor.subscribe({
      complete: () => {
        const { error } = actor.getSnapshot().context;
        if (error) reject(error);
        else resolve();
      },
      error: reject,
    });
  });
  done.catch(() => {}); // observed through `done` by whoever cares
  actor.start();
  const listening = waitFor(
    actor,
    (s) => s.status !== "active" || !o.listen || s.context.rlsAddress !== undefined,
    { timeout: Infinity },
  ).then((s) => {
    if (s.context.error) throw s.context.error;
    if (o.listen && !s.context.rlsAddress) throw new Error("The aggregator stopped before its RLS listened");
    return s.context.rlsAddress;
  });
  listening.catch(() => {});

  return {
    core,
    metrics,
    get rlsAddress() {
      return actor.getSnapshot().context.rlsAddress;
    },
    get restoredFrom() {
      return actor.getSnapshot().context.booted?.restoredFrom;
    },
    notReadyReason() {
      const s = actor.getSnapshot();
      if (s.status !== "active") return s.context.error ? `failed: ${s.context.error.message}` : "stopped";
      if (s.matches("booting")) return "connecting to NATS JetStream";
      if (!s.matches({ active: "running" })) return "draining";
      if (s.context.stalled) return `folding stopped: ${s.context.stalled}`;
      if (s.matches({ active: { running: { readiness: "catchingUp" } } })) {
        const target = s.context.booted?.targetSeq ?? 0;
        return `catching up with the usage stream: ${core.seq} of ${target} records folded`;
      }
      if (o.listen && !s.context.rlsAddress) return "the rate limit service is not listening yet";
      return null;
    },
    setRules: (ruleSet) => actor.send({ type: "aggregator.setRules", ruleSet }),
    snapshotNow: () => actor.send({ type: "aggregator.snapshotNow" }),
    async stop() {
      actor.send({ type: "aggregator.stop" });
      await waitFor(actor, (s) => s.status !== "active", { timeout: Infinity });
    },
    kill() {
      actor.send({ type: "aggregator.kill" });
    },
    listening,
    done,
    async [Symbol.asyncDispose]() {
      if (actor.getSnapshot().status === "active") await this.stop();
    },
  };
}
