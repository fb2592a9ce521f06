// The snapshotter: writes the folded state to the KV bucket every `intervalMs`, and sooner once `everyRecords` records
// were folded since the last snapshot, so a restart replays a short tail. The state is captured synchronously between
// two batches (consistent: sequence and counters together); compressing and writing happen after, while folding goes
// on. Nothing is written when nothing was folded since the last snapshot.
import { fromCallback } from "xstate";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { type AggregatorCore, encodeAggregatorSnapshot } from "../../usage/aggregator_core.ts";
import type { AggregatorMetrics } from "./metrics.ts";
import type { SnapshotStore } from "./snapshot_store.ts";

export type SnapshotterReceived =
  | { readonly type: "fold.progress"; readonly seq: number; readonly folded: number; readonly lastSeq: number }
  | { readonly type: "snapshot.now" };

export type SnapshotterEvent = { readonly type: "snapshot.written"; readonly seq: number };

export interface SnapshotterInput {
  readonly core: AggregatorCore;
  readonly store: SnapshotStore;
  /** The stream incarnation (see SnapshotStore.load). */
  readonly streamId: string;
  /** The sequence of the snapshot the replica started from (0: none). */
  readonly restoredSeq: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: AggregatorMetrics;
  readonly intervalMs: number;
  readonly everyRecords: number;
}

/** Captures and writes one snapshot unless the last one is current; resolves with its sequence. */
export async function writeSnapshot(
  o: Pick<SnapshotterInput, "core" | "store" | "streamId" | "metrics">,
  lastWritten: number,
): Promise<number> {
  const { core, store, metrics } = o;
  core.prune();
  if (core.seq === lastWritten) return lastWritten;
  const snapshot = core.snapshot();
  try {
    const bytes = await store.save(core.replica, o.streamId, snapshot.seq, encodeAggregatorSnapshot(snapshot));
    metrics.snapshots.inc({ result: "written" });
    metrics.snapshotSeq.set(snapshot.seq);
    metrics.snapshotBytes.set(bytes);
    return snapshot.seq;
  } catch (err) {
    metrics.snapshots.inc({ result: "failed" });
    throw err;
  } finally {
    metrics.counters.set(core.store.size);
    metrics.localHits.set(core.view.size);
  }
}

export const snapshotterActor = fromCallback<SnapshotterReceived, SnapshotterInput, SnapshotterEvent>(
  ({ input, sendBack, receive }) => {
    const { clock, log } = input;
    let closed = false;
    let written = input.restoredSeq;
    let since = 0;
    let writing: Promise<void> | undefined;
    let timer: unknown;

    const take = (): Promise<void> => {
      if (writing) return writing;
      since = 0;
      writing = writeSnapshot(input, written)
        .then((seq) => {
          if (seq !== written && !closed) sendBack({ type: "snapshot.written", seq });
          written = seq;
        })
        .catch((err) => log.warn({ err, seq: input.core.seq }, "Cannot write the aggregator snapshot; will retry"))
        .finally(() => writing = undefined);
      return writing;
    };
    const arm = () => {
      timer = clock.setTimeout(() => {
        void take().finally(() => !closed && arm());
      }, input.intervalMs);
    };
    arm();

    receive((e) => {
      if (e.type === "snapshot.now") void take();
      else {
        since += e.folded;
        if (since >= input.everyRecords) void take();
      }
    });
    return () => {
      closed = true;
      clock.clearTimeout(timer);
    };
  },
);
