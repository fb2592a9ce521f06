// One aggregator replica as an xstate actor system:
//
//   booting ──> active.running ──────(stop)──────────> active.draining ──> stopped
//      │         feed: consuming ⇄ retrying, stalled    (hits flushed, final snapshot)
//      │         readiness: catchingUp ──> caughtUp
//      │         + folder, snapshotter, rls, rules watcher;  hit publisher for the whole life
//      └─ kill / stop ──> stopped            rls.failed ──> failed
//
// Booting makes sure the usage stream exists, opens the snapshot bucket, restores the newest snapshot and notes the
// stream's last sequence: the replica is ready once it has folded up to there (and its RLS listens), so a restarted
// replica does not answer Envoy from stale counters. NATS being unreachable at boot is retried, not fatal.
import { assign, enqueueActions, fromPromise, sendTo, setup } from "xstate";
import type { JetStreamClient, JetStreamManager } from "nats";
import type { ServerCredentials } from "@grpc/grpc-js";
import { NatsError } from "nats";
import type { ListenAddress } from "../../extproc/listen_address.ts";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { type AggregatorCore, type AggregatorRuleSet, decodeAggregatorSnapshot } from "../../usage/aggregator_core.ts";
import { ensureUsageStream, type NatsLink } from "../../usage/nats_connection.ts";
import type { RateLimitHeaderNames } from "../../usage/rls_service.ts";
import type { UsageEvent } from "../../usage/usage_event.ts";
import { consumerActor, type ConsumerEvent } from "./consumer.ts";
import { folderActor, type FolderEvent } from "./folder.ts";
import { hitPublisherActor, type HitPublisherEvent } from "./hit_publisher.ts";
import type { AggregatorMetrics } from "./metrics.ts";
import { rlsActor, type RlsEvent } from "./rls.ts";
import type { RuleSources } from "./rule_files.ts";
import { rulesWatcherActor, type RulesWatcherEvent } from "./rules_watcher.ts";
import { openSnapshotStore, type SnapshotStore } from "./snapshot_store.ts";
import { snapshotterActor, type SnapshotterEvent, writeSnapshot } from "./snapshotter.ts";

export interface AggregatorSystemInput {
  readonly link: NatsLink;
  readonly core: AggregatorCore;
  readonly metrics: AggregatorMetrics;
  readonly log: Logger;
  /** Timers (snapshot interval, retries, debounce). */
  readonly clock: Clock;
  /** Wall clock, epoch ms: the RLS's windows. */
  readonly now: () => number;
  /** The RLS address; none serves when absent (a fold-only replica, as in the benchmark). */
  readonly listen?: ListenAddress;
  /** TLS for the RLS listener; plaintext when absent. */
  readonly rlsCredentials?: ServerCredentials;
  readonly rateLimitHeaders?: RateLimitHeaderNames;
  /** Watched rule files; none when absent. */
  readonly ruleSources?: RuleSources;
  readonly stream: string;
  readonly bucket: string;
  /** Replicas of the stream and of the bucket, when this replica creates them. */
  readonly replicas: number;
  readonly snapshotIntervalMs: number;
  readonly snapshotEveryRecords: number;
  readonly snapshotChunkBytes?: number;
  /** The consumer's idle heartbeat and tip poll (defaults 5 s each). */
  readonly consume?: { readonly heartbeatMs?: number; readonly tipIntervalMs?: number };
  /** Wait before retrying a failed boot or consumer (default 1000 ms). */
  readonly retryMs?: number;
  /** Longest wait for hit events to be published on drain (default 5000 ms). */
  readonly drainMs?: number;
  /** Sees each usage event folded (the dashboard). */
  readonly onUsage?: (event: UsageEvent) => void;
}

interface Booted {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly snapshots: SnapshotStore;
  readonly streamId: string;
  readonly targetSeq: number;
  readonly restoredFrom: { readonly replica: string; readonly seq: number } | undefined;
}

export interface AggregatorContext extends AggregatorSystemInput {
  booted: Booted | undefined;
  rlsAddress: ListenAddress | undefined;
  stalled: string | undefined;
  error: Error | undefined;
}

export type AggregatorSystemEvent =
  | ConsumerEvent
  | FolderEvent
  | SnapshotterEvent
  | RlsEvent
  | HitPublisherEvent
  | RulesWatcherEvent
  | { readonly type: "aggregator.setRules"; readonly ruleSet: AggregatorRuleSet }
  | { readonly type: "aggregator.snapshotNow" }
  | { readonly type: "aggregator.stop" }
  | { readonly type: "aggregator.kill" };

function isStreamNotFound(err: unknown): boolean {
  return err instanceof NatsError && err.api_error?.err_code === 10059;
}

async function boot(c: AggregatorSystemInput): Promise<Booted> {
  const { nc } = c.link;
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  // Created when missing, never changed: the publishers' settings (replicas, duplicate window) are not ours to undo.
  let info = await jsm.streams.info(c.stream).catch(async (err) => {
    if (!isStreamNotFound(err)) throw err;
    return await ensureUsageStream(jsm, { name: c.stream, replicas: c.replicas });
  });
  const streamId = `${c.stream}@${info.created}`;
  const snapshots = await openSnapshotStore(js, {
    bucket: c.bucket,
    replicas: c.replicas,
    ...(c.snapshotChunkBytes ? { maxChunkBytes: c.snapshotChunkBytes } : {}),
    ...(nc.info ? { maxPayload: nc.info.max_payload } : {}),
  });
  let restoredFrom: Booted["restoredFrom"];
  const loaded = await snapshots.load(
    c.core.replica,
    streamId,
    (replica, err) => c.log.warn({ err, replica }, "Skipped an aggregator snapshot"),
  );
  if (loaded) {
    try {
      c.core.restore(decodeAggregatorSnapshot(loaded.bytes));
      restoredFrom = { replica: loaded.replica, seq: loaded.seq };
    } catch (err) {
      c.log.warn({ err, replica: loaded.replica }, "Cannot restore the aggregator snapshot; replaying the stream");
    }
  }
  info = await jsm.streams.info(c.stream);
  if (info.state.messages > 0 && info.state.first_seq > c.core.seq + 1) {
    c.log.warn(
      { from: c.core.seq + 1, firstSeq: info.state.first_seq },
      "Usage records older than the stream keeps are gone: counters miss them",
    );
  }
  const targetSeq = info.state.messages === 0 ? c.core.seq : Math.max(c.core.seq, info.state.last_seq);
  c.metrics.progress(c.core.seq, info.state.last_seq);
  c.log.info(
    { replica: c.core.replica, restoredFrom, startSeq: c.core.seq + 1, targetSeq },
    "Aggregator catching up with the usage stream",
  );
  return { js, jsm, snapshots, streamId, targetSeq, restoredFrom };
}

const booted = (c: AggregatorContext): Booted => c.booted!;

/** Ids in the replica's actor system (each replica is its own system) of the actors others send to directly. */
const FOLDER_SYSTEM_ID = "aggregator.folder";
const HIT_PUBLISHER_SYSTEM_ID = "aggregator.hitPublisher";

export const aggregatorSystemMachine = setup({
  types: {
    input: {} as AggregatorSystemInput,
    context: {} as AggregatorContext,
    events: {} as AggregatorSystemEvent,
  },
  actors: {
    boot: fromPromise<Booted, AggregatorSystemInput>(({ input }) => boot(input)),
    finalSnapshot: fromPromise<number, AggregatorContext>(({ input }) =>
      writeSnapshot({ ...input, store: booted(input).snapshots, streamId: booted(input).streamId }, -1)
    ),
    consumer: consumerActor,
    folder: folderActor,
    snapshotter: snapshotterActor,
    rls: rlsActor,
    hitPublisher: hitPublisherActor,
    rulesWatcher: rulesWatcherActor,
  },
  actions: {
    applyRules: enqueueActions(({ event: e, enqueue, self }) => {
      const event = e as AggregatorSystemEvent;
      if (event.type !== "aggregator.setRules" && event.type !== "rules.loaded") return;
      const rules = { type: "rules.set" as const, ruleSet: event.ruleSet };
      enqueue.sendTo("folder", rules);
      if (self.getSnapshot().children.rls) enqueue.sendTo("rls", rules);
    }),
  },
  guards: {
    caughtUp: ({ context }) => context.core.seq >= booted(context).targetSeq,
    progressCaughtUp: ({ context, event }) =>
      event.type === "fold.progress" && (event.seq >= booted(context).targetSeq || event.lastSeq <= event.seq),
    serves: ({ context }) => context.listen !== undefined,
    watches: ({ context }) => context.ruleSources !== undefined,
  },
  delays: {
    retry: ({ context }) => context.retryMs ?? 1000,
    drain: ({ context }) => context.drainMs ?? 5000,
  },
}).createMachine({
  id: "aggregator",
  context: ({ input }) => ({
    ...input,
    booted: undefined,
    rlsAddress: undefined,
    stalled: undefined,
    error: undefined,
  }),
  initial: "booting",
  on: {
    "aggregator.kill": ".stopped",
    // Rules that arrive while no folder or RLS runs yet (a config subscriber applies its cached snapshot, or a
    // snapshot from NATS, while JetStream is still connecting) go straight into the core, which both start from;
    // `running` hands later ones to its actors instead.
    "aggregator.setRules": { actions: ({ context, event }) => void context.core.setRules(event.ruleSet) },
  },
  states: {
    booting: {
      initial: "trying",
      on: { "aggregator.stop": "stopped" },
      states: {
        trying: {
          invoke: {
            src: "boot",
            input: ({ context }) => context,
            onDone: { target: "#aggregator.active", actions: assign({ booted: ({ event }) => event.output }) },
            onError: {
              target: "waiting",
              actions: ({ context, event }) =>
                context.log.warn({ err: event.error }, "Aggregator cannot start on NATS yet; retrying"),
            },
          },
        },
        waiting: { after: { retry: "trying" } },
      },
    },
    active: {
      // The hit publisher outlives `running`: hits the RLS added before a stop are still sent while draining.
      invoke: {
        id: "hitPublisher",
        systemId: HIT_PUBLISHER_SYSTEM_ID,
        src: "hitPublisher",
        input: ({ context }) => ({
          js: booted(context).js,
          hitEvent: (hit) => context.core.localHitEvent(hit),
          clock: context.clock,
          log: context.log,
          metrics: context.metrics,
        }),
      },
      initial: "running",
      states: {
        running: {
          type: "parallel",
          invoke: [
            // Registered in the system: the consumer sends it records directly (see consumer.ts).
            { id: "folder", systemId: FOLDER_SYSTEM_ID, src: "folder", input: ({ context }) => context },
            {
              id: "snapshotter",
              src: "snapshotter",
              input: ({ context }) => ({
                core: context.core,
                store: booted(context).snapshots,
                streamId: booted(context).streamId,
                restoredSeq: context.core.seq,
                clock: context.clock,
                log: context.log,
                metrics: context.metrics,
                intervalMs: context.snapshotIntervalMs,
                everyRecords: context.snapshotEveryRecords,
              }),
            },
          ],
          on: {
            "log.tip": { actions: ({ context, event }) => context.metrics.progress(context.core.seq, event.lastSeq) },
            "fold.progress": { actions: sendTo("snapshotter", ({ event }) => event) },
            "aggregator.snapshotNow": { actions: sendTo("snapshotter", { type: "snapshot.now" }) },
            "aggregator.setRules": { actions: "applyRules" },
            "rules.loaded": { actions: "applyRules" },
            "rls.listening": { actions: assign({ rlsAddress: ({ event }) => event.address }) },
            "rls.failed": { target: "#aggregator.failed", actions: assign({ error: ({ event }) => event.error }) },
            "aggregator.stop": "draining",
          },
          states: {
            feed: {
              initial: "consuming",
              on: {
                "fold.stalled": { target: ".stalled", actions: assign({ stalled: ({ event }) => event.reason }) },
              },
              states: {
                consuming: {
                  invoke: {
                    src: "consumer",
                    input: ({ context, self }) => ({
                      nc: context.link.nc,
                      jsm: booted(context).jsm,
                      ...context.consume,
                      stream: context.stream,
                      startSeq: context.core.seq + 1,
                      records: self.system.get(FOLDER_SYSTEM_ID),
                      clock: context.clock,
                      log: context.log,
                    }),
                  },
                  on: {
                    "log.failed": {
                      target: "retrying",
                      actions: ({ context, event }) =>
                        context.log.warn({ err: event.error }, "Usage stream consumer failed; retrying"),
                    },
                  },
                },
                retrying: { after: { retry: "consuming" } },
                stalled: {},
              },
            },
            readiness: {
              initial: "catchingUp",
              states: {
                catchingUp: {
                  always: { guard: "caughtUp", target: "caughtUp" },
                  on: { "fold.progress": { guard: "progressCaughtUp", target: "caughtUp" } },
                },
                caughtUp: {
                  entry: ({ context }) => context.log.info({ seq: context.core.seq }, "Aggregator caught up"),
                },
              },
            },
            service: {
              initial: "choosing",
              states: {
                choosing: { always: [{ guard: "serves", target: "serving" }, { target: "none" }] },
                serving: {
                  invoke: {
                    id: "rls",
                    src: "rls",
                    input: ({ context, self }) => ({
                      core: context.core,
                      hits: self.system.get(HIT_PUBLISHER_SYSTEM_ID),
                      listen: context.listen!,
                      log: context.log,
                      metrics: context.metrics,
                      now: context.now,
                      ...(context.rateLimitHeaders ? { rateLimitHeaders: context.rateLimitHeaders } : {}),
                      ...(context.rlsCredentials ? { serverCredentials: context.rlsCredentials } : {}),
                    }),
                  },
                },
                none: {},
              },
            },
            watching: {
              initial: "choosing",
              states: {
                choosing: { always: [{ guard: "watches", target: "watching" }, { target: "none" }] },
                watching: {
                  invoke: {
                    src: "rulesWatcher",
                    input: ({ context }) => ({
                      sources: context.ruleSources!,
                      clock: context.clock,
                      log: context.log,
                      metrics: context.metrics,
                    }),
                  },
                },
                none: {},
              },
            },
          },
        },
        draining: {
          // The RLS and the consumer stopped with `running`: the hits this replica alone counted go out, then the
          // state. Those last hit events are not folded into it; a restart folds them from the tail.
          initial: "hits",
          states: {
            hits: {
              entry: sendTo("hitPublisher", { type: "hits.flush" }),
              on: { "hits.flushed": "snapshot" },
              after: { drain: "snapshot" },
            },
            snapshot: {
              invoke: {
                src: "finalSnapshot",
                input: ({ context }) => context,
                onDone: "#aggregator.stopped",
                onError: {
                  target: "#aggregator.stopped",
                  actions: ({ context, event }) => context.log.warn({ err: event.error }, "Final snapshot failed"),
                },
              },
            },
          },
        },
      },
    },
    stopped: { type: "final" },
    failed: { type: "final" },
  },
});
