// The consumer: reads the usage stream (usage events and hit events) in sequence order from a start sequence and
// hands the records to the folder in batches (`log.records`).
//
// An ephemeral push consumer on a plain subscription, not a durable one and not nats.js's consumer API: the replica's
// position is its own applied sequence, kept in its snapshot, so the server holds no state worth keeping for it. The
// consumer is created here (memory storage, one replica, no acks, flow control, idle heartbeats, deleted by the server
// when idle) and checked the way nats.js's ordered consumer checks its own: every delivery must be the next one (the
// delivery sequence in the reply subject, and the last one a heartbeat names), or records were lost on the way.
// Anything wrong — a gap, heartbeats missed, a status the consumer does not expect, no delivery while the stream grows
// for two tip polls in a row — ends this actor with `log.failed`, and its parent starts a fresh one from the applied
// sequence (records seen twice are ignored by the fold). nats.js's own ordered consumer was not enough: on a 3-node
// cluster, when the node holding it died, its recreation sometimes hung for good, with no error to act on.
//
// Why no acks and no durable: acks would be on the hot path, and a durable per replica is server state to clean up,
// for nothing the snapshot does not already give. Why push on a plain subscription rather than nats.js's pull
// `consume`: a replica must take 100,000 records a second, and the pull machinery (a JsMsg per record, its reply
// subject split into an info object, heartbeat bookkeeping per message, pull requests to top up) cost about 1.5 µs a
// record here; the plain subscription reads the reply subject's numbers in place and leaves the headers (each record
// carries its Nats-Msg-Id) unparsed. Flow control keeps the server from outrunning the replica.
//
// Batching: nats.js calls back once per message while it parses a socket read; the first message of a read schedules
// a microtask that sends everything gathered by then as one batch, straight to the folder (its actor ref comes in the
// input), so the folder pays per batch, not per record, and the parent's machine is not on the path. The stream's last
// sequence is polled now and then (`log.tip`) so lag shows while nothing arrives.
import { type AnyActorRef, fromCallback } from "xstate";
import {
  AckPolicy,
  createInbox,
  DeliverPolicy,
  type JetStreamManager,
  JsHeaders,
  type Msg,
  nanos,
  type NatsConnection,
  type NatsError,
  type Subscription,
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

/** What the consumer sends the folder. */
export type LogRecordsEvent = { readonly type: "log.records"; readonly records: readonly LogRecord[] };

/** What the consumer tells its parent. */
export type ConsumerEvent =
  | { readonly type: "log.tip"; readonly lastSeq: number }
  | { readonly type: "log.failed"; readonly error: Error };

export interface ConsumerInput {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly stream: string;
  /** The first sequence to read (the snapshot's + 1). */
  readonly startSeq: number;
  /** Where `log.records` go (the folder); the parent gets `log.tip` and `log.failed`. */
  readonly records: AnyActorRef;
  readonly clock: Clock;
  readonly log: Logger;
  /** The server's idle heartbeat; two missed in a row tell a lost consumer (default 5 s). */
  readonly heartbeatMs?: number;
  /** How often the stream's last sequence is read for the lag and the stall check (default 5 s). */
  readonly tipIntervalMs?: number;
}

export const consumerActor = fromCallback<{ type: string }, ConsumerInput, ConsumerEvent>(({ input, sendBack }) => {
  const { nc, jsm, stream, clock, log } = input;
  const heartbeatMs = input.heartbeatMs ?? 5000;
  const name = consumerName();
  const inbox = createInbox();
  let stopped = false;
  let sub: Subscription | undefined;
  let batch: LogRecord[] = [];
  let tipTimer: unknown;
  let heartbeatTimer: unknown;
  let delivered = input.startSeq - 1;
  let deliveries = 0;
  let heard = false;

  const end = () => {
    stopped = true;
    clock.clearTimeout(tipTimer);
    clock.clearTimeout(heartbeatTimer);
    sub?.unsubscribe();
    // The server would drop it once idle anyway (inactive_threshold); this frees it at once.
    jsm.consumers.delete(stream, name).catch(() => {});
  };
  const fail = (why: string, cause?: unknown) => {
    if (stopped) return;
    flush();
    end();
    sendBack({ type: "log.failed", error: new Error(`Usage stream consumer: ${why}`, { cause }) });
  };
  const flush = () => {
    const records = batch;
    batch = [];
    if (!stopped && records.length > 0) input.records.send({ type: "log.records", records } satisfies LogRecordsEvent);
  };
  /** A status message (no data, a status code in its headers): flow control, a heartbeat, or trouble. */
  const onStatus = (m: Msg) => {
    const h = m.headers;
    if (h?.code !== 100) return fail(`status ${h?.code ?? "?"} (${h?.description ?? "no description"})`);
    if (h.description === "Idle Heartbeat") {
      const stalled = h.get(JsHeaders.ConsumerStalledHdr);
      if (stalled !== "") nc.publish(stalled);
      const last = Number(h.get(JsHeaders.LastConsumerSeqHdr));
      if (last !== deliveries) return fail(`heartbeat names delivery ${last} after ${deliveries}: records were lost`);
    } else if (m.reply) m.respond(); // flow control: the server waits for this before it sends more
  };
  const onMessage = (err: NatsError | null, m: Msg) => {
    if (stopped) return;
    if (err) return fail("subscription failed", err);
    heard = true;
    const data = m.data;
    // A status has a code (a record published with headers and no data has none).
    if (data.length === 0 && m.headers && m.headers.code !== 0) return onStatus(m);
    const reply = m.reply;
    const info = reply ? readAckReply(reply) : undefined;
    if (!info) return fail(`a delivery without a JetStream reply subject (${reply})`);
    if (info.deliverySeq !== deliveries + 1) {
      return fail(`delivery ${info.deliverySeq} after ${deliveries}: records were lost on the way`);
    }
    deliveries = info.deliverySeq;
    delivered = info.streamSeq;
    if (batch.length === 0) queueMicrotask(flush);
    batch.push({ seq: info.streamSeq, subject: m.subject, data, logTimeMs: info.logTimeMs, pending: info.pending });
  };

  const watchHeartbeats = (missed: number) => {
    heartbeatTimer = clock.setTimeout(() => {
      if (stopped) return;
      const now = heard ? 0 : missed + 1;
      heard = false;
      if (now >= 2) return fail(`heartbeats missed for ${(now * heartbeatMs * 1.5) / 1000} s`);
      watchHeartbeats(now);
    }, heartbeatMs * 1.5);
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
    // Subscribed first: the consumer starts pushing as soon as it exists.
    sub = nc.subscribe(inbox, { callback: onMessage });
    await nc.flush();
    if (stopped) return;
    await jsm.consumers.add(stream, {
      name,
      deliver_subject: inbox,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, input.startSeq),
      ack_policy: AckPolicy.None,
      max_deliver: 1,
      flow_control: true,
      idle_heartbeat: nanos(heartbeatMs),
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(Math.max(60_000, 12 * heartbeatMs)),
    });
    if (stopped) return jsm.consumers.delete(stream, name).catch(() => {});
    sub.closed.then(() => fail("subscription closed")).catch((err) => fail("subscription closed", err));
    watchHeartbeats(0);
    pollTip();
  })().catch((err) => fail("cannot start", err));

  return () => {
    if (!stopped) end();
  };
});

/**
 * `tollgate_` and ten random base-36 digits: unique among the stream's consumers for all practical purposes (a clash
 * fails the add, and the parent retries with another), and short, because the name is in the reply subject of every
 * delivery and nats.js parses those byte by byte (a 42-character name cost ~4 % of a replica's CPU).
 */
function consumerName(): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  const digits = (random[0]! * 2 ** 20 + (random[1]! >>> 12)).toString(36).padStart(10, "0").slice(-10);
  return `tollgate_${digits}`;
}

/** The numbers a JetStream delivery's reply subject carries. */
export interface AckReply {
  readonly streamSeq: number;
  readonly deliverySeq: number;
  readonly logTimeMs: number;
  readonly pending: number;
}

/**
 * Reads `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<delivery seq>.<nanos>.<pending>` or its newer form
 * `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<delivery seq>.<nanos>.<pending>.<…>`
 * (names never hold a dot), as nats.js's JsMsg.info does, without splitting it into strings. Undefined when it is not
 * one.
 */
export function readAckReply(reply: string): AckReply | undefined {
  if (!reply.startsWith("$JS.ACK.")) return undefined;
  const dots: number[] = [];
  for (let i = reply.indexOf("."); i !== -1; i = reply.indexOf(".", i + 1)) dots.push(i);
  // Tokens t[k] = reply.slice(dots[k - 1] + 1, dots[k]); the delivered count is t[4] (old form) or t[6] (new form).
  const first = dots.length === 8 ? 4 : dots.length >= 10 ? 6 : -1;
  if (first < 0) return undefined;
  const token = (k: number) => reply.slice(dots[k - 1]! + 1, k < dots.length ? dots[k] : reply.length);
  const streamSeq = digits(reply, dots[first]! + 1, dots[first + 1]!);
  const deliverySeq = digits(reply, dots[first + 1]! + 1, dots[first + 2]!);
  const pending = digits(reply, dots[first + 3]! + 1, first + 4 < dots.length ? dots[first + 4]! : reply.length);
  if (streamSeq < 0 || deliverySeq < 0 || pending < 0) return undefined;
  // As nats.js computes it (Math.floor(timestampNanos / 1e6) of the parsed nanos): every replica, whatever its
  // version, must read the same log time from the same record.
  const logTimeMs = Math.floor(Number.parseInt(token(first + 3), 10) / 1e6);
  if (!Number.isFinite(logTimeMs)) return undefined;
  return { streamSeq, deliverySeq, logTimeMs, pending };
}

/** The non-negative integer written in s[from, to), or -1. */
function digits(s: string, from: number, to: number): number {
  if (to <= from || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}
