// The folder: owns the replica's AggregatorCore and folds each batch of stream records into it, in sequence order,
// synchronously (so a snapshot or an RLS answer never sees half a batch). It reports `fold.progress` to its parent
// once it has folded all it was told of (the last record had nothing pending) or every PROGRESS_EVERY records while it
// catches up (the parent's machine is the costliest step of a small batch), and `fold.stalled` when a record is of a
// newer version than this replica reads: folding stops there (skipping it would miscount), the rate limit service
// keeps answering from what was folded, and readiness says why.
import { fromCallback } from "xstate";
import type { Logger } from "../../observability/logger.ts";
import type { AggregatorCore, AggregatorRuleSet } from "../../usage/aggregator_core.ts";
import type { LogRecordsEvent } from "./consumer.ts";
import { decodeRecord } from "./record_decoder.ts";
import { UsageEventReader } from "../../usage/usage_event_reader.ts";
import type { AggregatorMetrics } from "./metrics.ts";
import type { UsageEvent } from "../../usage/usage_event.ts";

/** While catching up, fold.progress is reported once this many records were folded since the last report. */
const PROGRESS_EVERY = 2048;

export type FolderEvent =
  | { readonly type: "fold.progress"; readonly seq: number; readonly folded: number; readonly lastSeq: number }
  | { readonly type: "fold.stalled"; readonly seq: number; readonly reason: string };

export type FolderReceived =
  | LogRecordsEvent
  | { readonly type: "rules.set"; readonly ruleSet: AggregatorRuleSet };

export interface FolderInput {
  readonly core: AggregatorCore;
  readonly metrics: AggregatorMetrics;
  readonly log: Logger;
  /** Sees each usage event folded (the dashboard); must not throw. */
  readonly onUsage?: (event: UsageEvent) => void;
}

/** Records a batch in counts, then into the metrics once. */
interface Tally {
  usage: number;
  hit: number;
  own_hit: number;
  unreadable: number;
  other_subject: number;
}

export const folderActor = fromCallback<FolderReceived, FolderInput, FolderEvent>(({ input, sendBack, receive }) => {
  const { core, metrics, log } = input;
  let stalled = false;
  let unreadableLogged = 0;
  let unreported = 0;
  const reader = new UsageEventReader();

  const fold = (records: LogRecordsEvent["records"]) => {
    const tally: Tally = { usage: 0, hit: 0, own_hit: 0, unreadable: 0, other_subject: 0 };
    let lastSeq = 0;
    for (const r of records) {
      lastSeq = r.seq + r.pending;
      if (r.seq <= core.seq) continue;
      const decoded = decodeRecord(r.subject, r.data, reader);
      switch (decoded.kind) {
        case "usage":
          core.applyUsage(decoded.event, r, decoded.timeMs);
          input.onUsage?.(decoded.event);
          tally.usage++;
          break;
        case "hit":
          core.applyHits(decoded.hit, r);
          if (decoded.hit.replica === core.replica) tally.own_hit++;
          else tally.hit++;
          break;
        case "skip":
          core.skip(r);
          if (decoded.reason === "subject") tally.other_subject++;
          else {
            tally.unreadable++;
            // One line per record would flood the log when a producer is broken; the metric counts them all.
            if (unreadableLogged++ < 100) log.warn({ err: decoded.error, seq: r.seq }, "Skipped an unreadable record");
          }
          break;
        case "tooNew":
          stalled = true;
          log.error({ err: decoded.error, seq: r.seq }, "Folding stopped: a record is newer than this replica reads");
          sendBack({ type: "fold.stalled", seq: core.seq, reason: decoded.error.message });
          break;
      }
      if (stalled) break;
    }
    for (const [kind, n] of Object.entries(tally)) if (n > 0) metrics.records.inc({ kind }, n);
    unreported += tally.usage + tally.hit + tally.own_hit + tally.unreadable + tally.other_subject;
    metrics.progress(core.seq, lastSeq);
    if (stalled || (lastSeq > core.seq && unreported < PROGRESS_EVERY)) return;
    sendBack({ type: "fold.progress", seq: core.seq, folded: unreported, lastSeq: Math.max(lastSeq, core.seq) });
    unreported = 0;
  };

  receive((e) => {
    if (e.type === "log.records") {
      if (!stalled) fold(e.records);
    } else if (e.type === "rules.set") {
      core.setRules(e.ruleSet);
    }
  });
});
