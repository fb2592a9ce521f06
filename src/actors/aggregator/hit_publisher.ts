// The hit publisher: sends the hit events of this replica's rate limit service to JetStream, Nats-Msg-Id = event id,
// so a re-send after a lost acknowledgement is stored once. Hits add up in any order, which allows two things:
// - coalescing: the hits of one counter and window arriving within `coalesceMs` go out as one event (made when they go
//   out, at the first one's time, with the sum of their hits). A JetStream publish and its fold on every replica cost
//   far more than a check, so at thousands of checks a second on a few counters this is most of the work saved; the
//   other replicas see the hits that much later. The rate limit service sends its hits here directly (`hit.applied`,
//   no event made per hit, the parent's machine not on the path of a check);
// - retries in any order: a failed publish goes back in the queue and is retried after `retryMs`.
// The queue is bounded: past `maxQueued` the oldest events are dropped (counted); their hits stay counted on this
// replica only, until their window ends. Reservations (hit events with a reservation id) are never coalesced.
//
// `hits.flush` (on drain) stops taking new events and reports `hits.flushed` once the queue is empty or its publishes
// failed once more: a stopping replica does not wait for NATS forever.
import { fromCallback } from "xstate";
import type { JetStreamClient } from "nats";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { encodeHitEvent, type HitEvent, hitEventSubject } from "../../usage/hit_event.ts";
import type { AppliedHit } from "../../usage/rls_service.ts";
import type { AggregatorMetrics } from "./metrics.ts";

export type HitPublisherReceived =
  /** Hits the rate limit service added: coalesced, made into an event when they go out. */
  | { readonly type: "hit.applied"; readonly hit: AppliedHit }
  /** A made event (a reservation): sent at once and alone. */
  | { readonly type: "hit.local"; readonly hit: HitEvent }
  | { readonly type: "hits.flush" };

export type HitPublisherEvent = { readonly type: "hits.flushed"; readonly unsent: number };

export interface HitPublisherInput {
  readonly js: JetStreamClient;
  /** The hit event of applied hits (the core's localHitEvent). */
  readonly hitEvent: (hit: AppliedHit) => HitEvent;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: AggregatorMetrics;
  /** Publishes awaiting their acknowledgement at once (default 256). */
  readonly maxInFlight?: number;
  /** Default 100,000. */
  readonly maxQueued?: number;
  /** Default 500 ms. */
  readonly retryMs?: number;
  /** JetStream acknowledgement wait (default 5000 ms). */
  readonly timeoutMs?: number;
  /** How long the hits of one counter and window are gathered into one event (default 20 ms; 0: none). */
  readonly coalesceMs?: number;
}

export const hitPublisherActor = fromCallback<HitPublisherReceived, HitPublisherInput, HitPublisherEvent>(
  ({ input, sendBack, receive }) => {
    const { js, clock, log, metrics } = input;
    const maxInFlight = input.maxInFlight ?? 256;
    const maxQueued = input.maxQueued ?? 100_000;
    const queue: HitEvent[] = [];
    let head = 0;
    let inFlight = 0;
    let retryTimer: unknown;
    let waiting = false; // a retry is scheduled
    let flushing = false;
    let flushedSent = false;
    let closed = false;

    const coalesceMs = input.coalesceMs ?? 20;
    /** Hits gathered by counter key (which starts with the domain), then window. */
    const gathering = new Map<string, Map<string, { first: AppliedHit; n: number }>>();
    let gatherTimer: unknown;
    const release = () => {
      clock.clearTimeout(gatherTimer);
      gatherTimer = undefined;
      for (const windows of gathering.values()) {
        for (const { first, n } of windows.values()) enqueue(input.hitEvent(n === first.n ? first : { ...first, n }));
      }
      gathering.clear();
      pump();
    };
    const enqueue = (hit: HitEvent) => {
      queue.push(hit);
      if (queued() > maxQueued) {
        head++;
        metrics.hitEvents.inc({ result: "dropped" });
      }
    };
    const queued = () => queue.length - head;
    const maybeFlushed = (gaveUp: boolean) => {
      if (!flushing || flushedSent || inFlight > 0 || (queued() > 0 && !gaveUp)) return;
      flushedSent = true;
      sendBack({ type: "hits.flushed", unsent: queued() });
    };
    const pump = () => {
      while (!closed && !waiting && inFlight < maxInFlight && queued() > 0) send(queue[head++]!);
      if (head > 4096 && head * 2 > queue.length) queue.splice(0, head), head = 0;
      maybeFlushed(false);
    };
    const send = (hit: HitEvent) => {
      inFlight++;
      const options = { msgID: hit.id, timeout: input.timeoutMs ?? 5000 };
      // Through a promise even when nats.js throws at once (a closed connection): every failure is retried alike.
      Promise.resolve().then(() => js.publish(hitEventSubject(hit.domain), encodeHitEvent(hit), options))
        .then(
          (ack) => {
            inFlight--;
            metrics.hitEvents.inc({ result: ack.duplicate ? "duplicate" : "published" });
            pump();
          },
          (err) => {
            inFlight--;
            if (closed) return;
            metrics.hitEvents.inc({ result: "retried" });
            queue.push(hit);
            if (!waiting) {
              log.warn({ err, queued: queued() }, "Cannot publish hit events; retrying");
              waiting = true;
              retryTimer = clock.setTimeout(() => {
                waiting = false;
                pump();
              }, input.retryMs ?? 500);
            }
            maybeFlushed(true);
          },
        );
    };

    receive((e) => {
      if (e.type === "hits.flush") {
        flushing = true;
        release();
        maybeFlushed(false);
        return;
      }
      // A reservation goes out at once and alone: its id is what the request's usage event releases, and the sooner
      // it is in the log the likelier it is folded before that usage event (aggregator_core.ts).
      if (e.type === "hit.local") {
        enqueue(e.hit);
        return pump();
      }
      const hit = e.hit;
      if (coalesceMs <= 0 || flushing) {
        enqueue(input.hitEvent(hit));
        return pump();
      }
      let windows = gathering.get(hit.counterKey);
      if (!windows) gathering.set(hit.counterKey, windows = new Map());
      const gathered = windows.get(hit.windowId);
      if (gathered) gathered.n += hit.n;
      else windows.set(hit.windowId, { first: hit, n: hit.n });
      gatherTimer ??= clock.setTimeout(release, coalesceMs);
    });
    return () => {
      closed = true;
      clock.clearTimeout(retryTimer);
      clock.clearTimeout(gatherTimer);
    };
  },
);
