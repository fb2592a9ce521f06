// The usage publisher: one per process (systemId "usage"). Stream actors send it `usage.event`s; it publishes each
// to JetStream with Nats-Msg-Id = event id, and when NATS is down, slow or behind it keeps every event in the local
// spool and replays it, in order, once NATS answers again.
//
//   connecting ──> publishing ──(disconnect, publish failed, queue full)──> spooling.waiting ⇄ spooling.replaying
//        │            │  ^───────────────────(spool empty)───────────────────────────────┘
//        └─ stop ─────┴─ stop: draining (in-flight publishes settle, the rest stays in the spool) ──> stopped
//
// The invariants that make "nothing lost, nothing counted twice" hold:
// - An event is removed from memory or from the spool only once JetStream acknowledged it (stored or duplicate).
//   Whatever the pipeline holds when it ends, for any reason, goes to the spool in arrival order (its cleanup).
// - While the spool is not empty, new events go to its tail; direct publishing resumes only when a replay found it
//   empty, in the same synchronous step as the check, so no event can overtake the spool.
// - A re-sent event keeps its id, so JetStream drops the second copy if the first one landed after all (an
//   acknowledgement lost with the connection) — within the stream's duplicate window (see ensureUsageStream).
// What can still be lost, by design: events in memory (at most maxInFlight + maxQueued) when the process dies
// without a stop; events the spool's overflow policy drops (counted); events sent after the actor stopped (stop the
// stream actors first). Order: arrival order, except that a publish failing while later ones succeed (a timeout on a
// live connection) lands after them; an outage (the connection drops) keeps the order.
import { assign, fromCallback, fromPromise, sendTo, setup } from "xstate";
import { ErrorCode, NatsError } from "nats";
import type { Clock } from "../observability/clock.ts";
import { systemClock } from "../observability/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { PublishPath, UsageMetrics } from "../observability/usage_metrics.ts";
import type { NatsLink } from "../usage/nats_connection.ts";
import type { Spool } from "../usage/spool.ts";

export const USAGE_SYSTEM_ID = "usage";

export interface UsageRecord {
  /** The event id, sent as Nats-Msg-Id. */
  readonly id: string;
  readonly subject: string;
  readonly bytes: Uint8Array;
}

/** What the publisher needs from NATS; `jetStreamTransport` is the real one. */
export interface UsageTransport {
  /** Resolves once JetStream stored the event (or already had its id); rejects otherwise. */
  publish(record: UsageRecord, timeoutMs: number): Promise<{ readonly duplicate: boolean }>;
  /** Tells `listener` when the connection drops (false) and comes back (true); returns the unsubscribe. */
  watch(listener: (connected: boolean) => void): () => void;
}

/** An event NATS will never take (over max_payload or the stream's max_msg_size): retrying cannot help. */
export class UsageEventTooLargeError extends Error {
  override readonly name = "UsageEventTooLargeError";
}

export function jetStreamTransport(link: NatsLink): UsageTransport {
  const js = link.nc.jetstream();
  return {
    async publish(r, timeout) {
      try {
        return await js.publish(r.subject, r.bytes, { msgID: r.id, timeout });
      } catch (err) {
        if (
          err instanceof NatsError &&
          (err.code === ErrorCode.MaxPayloadExceeded || err.api_error?.err_code === 10054)
        ) {
          throw new UsageEventTooLargeError(`Cannot publish usage event ${r.id}: ${err.message}`, { cause: err });
        }
        throw err;
      }
    },
    watch: (listener) => link.watch(listener),
  };
}

export interface UsagePublisherInput {
  /** Resolves once NATS is reachable; may wait as long as it needs, and must give up when `signal` aborts. */
  readonly connect: (signal: AbortSignal) => Promise<UsageTransport>;
  /** Opened by the caller before, closed by the caller after the actor stopped. */
  readonly spool: Spool;
  readonly metrics: UsageMetrics;
  readonly log?: Logger;
  /** For latencies; timers come from the actor's clock (pass the same one to createActor). */
  readonly clock?: Clock;
  /** JetStream acknowledgement wait per publish (default 5000 ms). */
  readonly publishTimeoutMs?: number;
  /** Publishes awaiting their acknowledgement at once (default 256). */
  readonly maxInFlight?: number;
  /** Events waiting in memory for a publish slot; one more and they all go to the spool (default 10000). */
  readonly maxQueued?: number;
  /** Spool records sent at once during a replay (default 256). */
  readonly replayBatch?: number;
  /** Wait before trying NATS again after a failure, jittered ±50% (default 1000 ms). */
  readonly probeIntervalMs?: number;
  readonly random?: () => number;
}

export type UsagePublisherEvent =
  | { readonly type: "usage.event"; readonly id: string; readonly subject: string; readonly bytes: Uint8Array }
  | { readonly type: "usage.stop" }
  | { readonly type: "nats.up" }
  | { readonly type: "nats.down" }
  | { readonly type: "pipeline.failed"; readonly reason: "publish" | "backpressure" }
  | { readonly type: "pipeline.drained" }
  | { readonly type: "replay.caughtUp" }
  | { readonly type: "replay.failed" }
  | { readonly type: "replay.drained" };

type Resolved = Required<Omit<UsagePublisherInput, "log">> & { readonly log: Logger | undefined };

interface PublisherContext extends Resolved {
  transport: UsageTransport | undefined;
  connected: boolean;
}

interface WorkerInput {
  readonly transport: UsageTransport;
  readonly ctx: Resolved;
}

function record(e: { id: string; subject: string; bytes: Uint8Array }): UsageRecord {
  return { id: e.id, subject: e.subject, bytes: e.bytes };
}

/** Appends to the spool and counts what happened; never throws (a spool that cannot be written loses the event). */
function spoolRecord(ctx: Resolved, r: UsageRecord): void {
  try {
    const result = ctx.spool.append(r.id, r.subject, r.bytes);
    if (result.accepted) {
      ctx.metrics.spooled.inc();
      if (result.evicted > 0) ctx.metrics.dropped.inc({ reason: "spool_evicted" }, result.evicted);
    } else {
      ctx.metrics.dropped.inc({ reason: result.reason === "full" ? "spool_full" : "too_large" });
    }
  } catch (err) {
    ctx.metrics.dropped.inc({ reason: "spool_error" });
    ctx.log?.error({ err, eventId: r.id }, "Cannot spool usage event: the spool file could not be written");
  }
  ctx.metrics.setSpoolDepth(ctx.spool.records, ctx.spool.bytes);
}

function publishOnce(transport: UsageTransport, r: UsageRecord, timeoutMs: number): Promise<{ duplicate: boolean }> {
  try {
    return transport.publish(r, timeoutMs);
  } catch (err) {
    return Promise.reject(err);
  }
}

function observe(ctx: Resolved, path: PublishPath, startedAt: number, ack: { duplicate: boolean }): void {
  ctx.metrics.publishSeconds.observe({ path }, (ctx.clock.now() - startedAt) / 1000);
  if (ack.duplicate) ctx.metrics.deduplicated.inc({ path });
  else ctx.metrics.published.inc({ path });
}

/** Writes events to the spool while the publisher is not publishing directly. */
const spoolWriter = fromCallback<UsagePublisherEvent, Resolved>(({ input, receive }) => {
  if (input.spool.recovered.tornBytes > 0) input.metrics.dropped.inc({ reason: "torn_record" });
  input.metrics.setSpoolDepth(input.spool.records, input.spool.bytes);
  receive((e) => {
    if (e.type === "usage.event") spoolRecord(input, record(e));
  });
});

/** Relays connection drops and returns. */
const natsWatch = fromCallback<UsagePublisherEvent, UsageTransport>(({ input, sendBack }) =>
  input.watch((up) => sendBack({ type: up ? "nats.up" : "nats.down" }))
);

/**
 * Direct publishing: up to maxInFlight publishes awaiting acknowledgement, then a bounded queue. The first failure
 * (or a full queue) ends it; its cleanup hands everything not acknowledged, in order, to the spool. On
 * `pipeline.drain` it sends nothing more and reports once the publishes in flight have settled.
 */
const pipeline = fromCallback<UsagePublisherEvent | { type: "pipeline.drain" }, WorkerInput>(
  ({ input, sendBack, receive }) => {
    const { transport, ctx } = input;
    const entries: { record: UsageRecord; acked: boolean }[] = [];
    let head = 0; // entries before head are acknowledged
    let next = 0; // entries from next on are queued, not sent
    let inFlight = 0;
    let ended = false; // failed or drained: nothing more is sent
    let draining = false;
    let closed = false;

    const settle = () => {
      while (head < next && entries[head]!.acked) head++;
      if (head > 4096 && head * 2 > entries.length) {
        entries.splice(0, head);
        next -= head;
        head = 0;
      }
      if (draining && inFlight === 0 && !ended) {
        ended = true;
        sendBack({ type: "pipeline.drained" });
      }
    };
    const fail = (reason: "publish" | "backpressure", err?: unknown) => {
      if (ended) return;
      ended = true;
      ctx.log?.warn({ err, reason, pending: entries.length - head }, "Usage events go to the spool");
      sendBack({ type: "pipeline.failed", reason });
    };
    const send = (entry: { record: UsageRecord; acked: boolean }) => {
      inFlight++;
      const startedAt = ctx.clock.now();
      publishOnce(transport, entry.record, ctx.publishTimeoutMs).then(
        (ack) => {
          inFlight--;
          if (closed) return;
          entry.acked = true;
          observe(ctx, "direct", startedAt, ack);
          settle();
          pump();
        },
        (err) => {
          inFlight--;
          if (closed) return;
          if (err instanceof UsageEventTooLargeError) {
            entry.acked = true;
            ctx.metrics.dropped.inc({ reason: "too_large" });
            settle();
            pump();
          } else {
            fail("publish", err);
            settle();
          }
        },
      );
    };
    const pump = () => {
      while (!ended && !draining && inFlight < ctx.maxInFlight && next < entries.length) send(entries[next++]!);
    };

    receive((e) => {
      if (e.type === "pipeline.drain") {
        draining = true;
        settle();
      } else if (e.type === "usage.event") {
        entries.push({ record: record(e), acked: false });
        if (entries.length - next > ctx.maxQueued) fail("backpressure");
        else pump();
      }
    });
    return () => {
      closed = true;
      for (let i = head; i < entries.length; i++) if (!entries[i]!.acked) spoolRecord(ctx, entries[i]!.record);
    };
  },
);

/**
 * Replays the spool oldest first, a batch at a time, acknowledging in the spool the prefix JetStream confirmed.
 * Reports `replay.caughtUp` in the same synchronous step in which it saw the spool empty.
 */
const replayer = fromCallback<UsagePublisherEvent | { type: "replay.drain" }, WorkerInput>(
  ({ input, sendBack, receive }) => {
    const { transport, ctx } = input;
    let closed = false;
    let draining = false;
    receive((e) => {
      if (e.type === "replay.drain") draining = true;
    });
    (async () => {
      let replayed = 0;
      for (;;) {
        if (closed) return;
        if (draining) return sendBack({ type: "replay.drained" });
        const batch = ctx.spool.peekBatch(ctx.replayBatch);
        if (batch.length === 0) {
          if (replayed > 0) ctx.log?.info({ replayed }, "Usage spool replayed");
          return sendBack({ type: "replay.caughtUp" });
        }
        const results = await Promise.allSettled(batch.map(async (r) => {
          const startedAt = ctx.clock.now();
          try {
            observe(ctx, "replay", startedAt, await publishOnce(transport, r, ctx.publishTimeoutMs));
          } catch (err) {
            if (!(err instanceof UsageEventTooLargeError)) throw err;
            ctx.metrics.dropped.inc({ reason: "too_large" });
          }
        }));
        const confirmed = results.findIndex((r) => r.status === "rejected");
        const upTo = confirmed === -1 ? batch.length : confirmed;
        // Once stopped, leave the spool alone (its owner may have closed it): what was confirmed after the stop is
        // sent again next time and dropped by JetStream as a duplicate.
        if (closed) return;
        if (upTo > 0) ctx.spool.ack(batch[upTo - 1]!.index);
        ctx.metrics.setSpoolDepth(ctx.spool.records, ctx.spool.bytes);
        replayed += upTo;
        if (upTo < batch.length) {
          const err = (results[upTo] as PromiseRejectedResult).reason;
          ctx.log?.warn(
            { err, replayed, waiting: ctx.spool.records },
            "Usage spool replay paused: NATS did not answer",
          );
          return sendBack({ type: "replay.failed" });
        }
      }
    })().catch((err) => {
      ctx.log?.error({ err }, "Usage spool replay failed");
      if (!closed) sendBack({ type: "replay.failed" });
    });
    return () => {
      closed = true;
    };
  },
);

/**
 * Options for createActor when the publisher is the process singleton: systemId "usage" (stream actors find it with
 * `system.get("usage")`), and the input's clock for its timers too.
 */
export function usagePublisherActorOptions(input: UsagePublisherInput) {
  return { systemId: USAGE_SYSTEM_ID, input, ...(input.clock ? { clock: input.clock } : {}) };
}

export const usagePublisherMachine = setup({
  types: {
    input: {} as UsagePublisherInput,
    context: {} as PublisherContext,
    events: {} as UsagePublisherEvent,
  },
  actors: {
    connect: fromPromise<UsageTransport, Resolved>(({ input, signal }) => input.connect(signal)),
    spoolWriter,
    natsWatch,
    pipeline,
    replayer,
  },
  guards: {
    spoolEmpty: ({ context }) => context.spool.records === 0,
    connected: ({ context }) => context.connected,
  },
  actions: {
    toSpool: sendTo("spoolWriter", ({ event }) => event),
    toPipeline: sendTo("pipeline", ({ event }) => event),
    markUp: assign({ connected: true }),
    markDown: assign({ connected: false }),
  },
  delays: {
    probe: ({ context }) => context.probeIntervalMs * (0.5 + context.random()),
    // Publishes in flight settle within their own timeout; this only bounds a transport that never answers.
    drain: ({ context }) => context.publishTimeoutMs + 1000,
  },
}).createMachine({
  id: "usagePublisher",
  context: ({ input }) => ({
    connect: input.connect,
    spool: input.spool,
    metrics: input.metrics,
    log: input.log,
    clock: input.clock ?? systemClock,
    publishTimeoutMs: input.publishTimeoutMs ?? 5000,
    maxInFlight: input.maxInFlight ?? 256,
    maxQueued: input.maxQueued ?? 10_000,
    replayBatch: input.replayBatch ?? 256,
    probeIntervalMs: input.probeIntervalMs ?? 1000,
    random: input.random ?? Math.random,
    transport: undefined,
    connected: false,
  }),
  invoke: { id: "spoolWriter", src: "spoolWriter", input: ({ context }) => context },
  on: { "usage.event": { actions: "toSpool" } },
  initial: "connecting",
  states: {
    connecting: {
      initial: "trying",
      on: { "usage.stop": "stopped" },
      states: {
        trying: {
          invoke: {
            src: "connect",
            input: ({ context }) => context,
            onDone: {
              target: "#usagePublisher.online",
              actions: assign({ transport: ({ event }) => event.output, connected: true }),
            },
            onError: "backoff",
          },
        },
        backoff: { after: { probe: "trying" } },
      },
    },
    online: {
      invoke: { src: "natsWatch", input: ({ context }) => context.transport! },
      on: { "nats.up": { actions: "markUp" }, "nats.down": { actions: "markDown" } },
      initial: "choosing",
      states: {
        choosing: {
          always: [{ guard: "spoolEmpty", target: "publishing" }, { target: "spooling.replaying" }],
        },
        publishing: {
          invoke: {
            id: "pipeline",
            src: "pipeline",
            input: ({ context }) => ({ transport: context.transport!, ctx: context }),
          },
          initial: "open",
          on: { "nats.down": { target: "spooling", actions: "markDown" }, "pipeline.failed": "spooling" },
          states: {
            open: {
              on: { "usage.event": { actions: "toPipeline" }, "usage.stop": "draining" },
            },
            draining: {
              entry: sendTo("pipeline", { type: "pipeline.drain" }),
              after: { drain: "#usagePublisher.stopped" },
              on: {
                "usage.event": { actions: "toPipeline" },
                "pipeline.drained": "#usagePublisher.stopped",
                "pipeline.failed": "#usagePublisher.stopped",
                "nats.down": "#usagePublisher.stopped",
              },
            },
          },
        },
        spooling: {
          initial: "waiting",
          states: {
            waiting: {
              on: { "nats.up": { target: "replaying", actions: "markUp" }, "usage.stop": "#usagePublisher.stopped" },
              after: { probe: [{ guard: "connected", target: "replaying" }, { target: "waiting", reenter: true }] },
            },
            replaying: {
              invoke: {
                id: "replayer",
                src: "replayer",
                input: ({ context }) => ({ transport: context.transport!, ctx: context }),
              },
              initial: "running",
              on: {
                "nats.down": { target: "waiting", actions: "markDown" },
                "replay.failed": "waiting",
              },
              states: {
                running: {
                  on: {
                    "replay.caughtUp": [
                      { guard: "spoolEmpty", target: "#usagePublisher.online.publishing" },
                      { target: "#usagePublisher.online.spooling.replaying", reenter: true },
                    ],
                    "usage.stop": "draining",
                  },
                },
                draining: {
                  entry: sendTo("replayer", { type: "replay.drain" }),
                  after: { drain: "#usagePublisher.stopped" },
                  on: {
                    "replay.drained": "#usagePublisher.stopped",
                    "replay.caughtUp": "#usagePublisher.stopped",
                    "replay.failed": "#usagePublisher.stopped",
                    "nats.down": "#usagePublisher.stopped",
                  },
                },
              },
            },
          },
        },
      },
    },
    stopped: { type: "final" },
  },
});
