// The consumer: reads the usage stream (usage events and hit events) in sequence order from a start sequence and
// hands the records to its parent in batches (`log.records`).
//
// An ephemeral ordered consumer, not a durable one: the replica's position is its own applied sequence, kept in its
// snapshot, so the server holds no state worth keeping for it. The consumer is created here (memory storage, one
// replica, no acks, deleted by the server when idle) and checked the way nats.js's ordered consumer checks its own:
// every delivery must be the next one, or records were lost on the way. Anything wrong — a gap, missed heartbeats, the
// consumer or its server gone, no delivery while the stream grows for two tip polls in a row — ends this actor with
// `log.failed`, and its parent starts a fresh one from the applied sequence (records seen twice are ignored by the
// fold). nats.js's own ordered consumer was not enough: on a 3-node cluster, when the node holding it died, its
// recreation sometimes hung for good, with no error to act on.
//
// Why no acks and no durable: acks would be on the hot path, and a durable per replica is server state to clean up,
// for nothing the snapshot does not already give.
//
// Batching: nats.js calls back once per message while it parses a socket read; the first message of a read schedules
// a microtask that sends everything gathered by then as one batch, so the folder and xstate pay per batch, not per
// record. The stream's last sequence is polled now and then (`log.tip`) so lag shows while nothing arrives.
import { fromCallback } from "xstate";
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  nanos,
  nuid,
} from "nats";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";

export interface LogRecord {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  /** When JetStream stored it, epoch ms: the same for every replica. */
  readonly logTimeMs: number;
  /** Records after this one when it was delivered. */
  readonly pending: number;
}

export type ConsumerEvent =
  | { readonly type: "log.records"; readonly records: readonly LogRecord[] }
  | { readonly type: "log.tip"; readonly lastSeq: number }
  | { readonly type: "log.failed"; readonly error: Error };

export interface ConsumerInput {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly stream: string;
  /** The first sequence to read (the snapshot's + 1). */
  readonly startSeq: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** Messages per pull (default 4096). */
  readonly maxMessages?: number;
  /** How long a pull waits on the server; heartbeats every half of it tell a lost server (default 10 s). */
  readonly expiresMs?: number;
  /** How often the stream's last sequence is read for the lag and the stall check (default 5 s). */
  readonly tipIntervalMs?: number;
}

/** Consumer notifications that mean this consumer will not deliver again. */
const FATAL_STATUS = new Set(["heartbeats_missed", "consumer_not_found", "consumer_deleted", "stream_not_found"]);

export const consumerActor = fromCallback<ConsumerEvent, ConsumerInput>(({ input, sendBack }) => {
  const { js, jsm, stream, clock, log } = input;
  const expiresMs = input.expiresMs ?? 10_000;
  const name = `tollgate_aggregator_${nuid.next()}`;
  let stopped = false;
  let messages: ConsumerMessages | undefined;
  let batch: LogRecord[] = [];
  let tipTimer: unknown;
  let delivered = input.startSeq - 1;
  let deliveries = 0;

  const end = () => {
    stopped = true;
    clock.clearTimeout(tipTimer);
    messages?.stop();
    // The server would drop it once idle anyway (inactive_threshold); this frees it at once.
    jsm.consumers.delete(stream, name).catch(() => {});
  };
  const fail = (why: string, cause?: unknown) => {
    if (stopped) return;
    end();
    sendBack({ type: "log.failed", error: new Error(`Usage stream consumer: ${why}`, { cause }) });
  };
  const flush = () => {
    const records = batch;
    batch = [];
    if (!stopped && records.length > 0) sendBack({ type: "log.records", records });
  };
  const onMessage = (m: JsMsg) => {
    if (stopped) return;
    const info = m.info;
    if (info.deliverySequence !== deliveries + 1) {
      flush();
      return fail(`delivery ${info.deliverySequence} after ${deliveries}: records were lost on the way`);
    }
    deliveries = info.deliverySequence;
    delivered = info.streamSequence;
    if (batch.length === 0) queueMicrotask(flush);
    batch.push({
      seq: info.streamSequence,
      subject: m.subject,
      data: m.data,
      logTimeMs: Math.floor(info.timestampNanos / 1e6),
      pending: info.pending,
    });
  };

  let deliveredAtLastPoll = delivered;
  let stalledPolls = 0;
  const pollTip = () => {
    tipTimer = clock.setTimeout(async () => {
      try {
        const { last_seq: lastSeq } = (await jsm.streams.info(stream)).state;
        if (stopped) return;
        sendBack({ type: "log.tip", lastSeq });
        stalledPolls = lastSeq > delivered && delivered === deliveredAtLastPoll ? stalledPolls + 1 : 0;
        deliveredAtLastPoll = delivered;
        if (stalledPolls >= 2) return fail(`stalled at ${delivered} while the stream holds records up to ${lastSeq}`);
      } catch (err) {
        log.debug({ err }, "Cannot read the usage stream's last sequence");
      }
      if (!stopped) pollTip();
    }, input.tipIntervalMs ?? 5000);
  };

  (async () => {
    await jsm.consumers.add(stream, {
      name,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, input.startSeq),
      ack_policy: AckPolicy.None,
      max_deliver: 1,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(Math.max(60_000, 6 * expiresMs)),
    });
    if (stopped) return jsm.consumers.delete(stream, name).catch(() => {});
    const consumer = await js.consumers.get(stream, name);
    if (stopped) return;
    messages = await consumer.consume({
      max_messages: input.maxMessages ?? 4096,
      expires: expiresMs,
      callback: onMessage,
    });
    if (stopped) return messages.stop();
    (async () => {
      for await (const s of await messages.status()) {
        if (FATAL_STATUS.has(s.type)) return fail(`${s.type} (${s.data})`);
      }
    })().catch(() => {});
    messages.closed().then((err) => err && fail("closed", err)).catch(() => {});
    pollTip();
  })().catch((err) => fail("cannot start", err));

  return () => {
    if (!stopped) end();
  };
});
