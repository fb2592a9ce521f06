// The leadership actor: tries to take the controller lease, renews it while held, and tells its parent when this
// controller becomes the leader (`lease.acquired`), stands by behind another (`lease.standby`) or stops leading
// (`lease.lost`). Renewal runs every third of the TTL. The deadline is counted from when a successful write was
// *sent*, on this process's monotonic clock, so this controller always stops leading before the bucket lets the
// lease expire and a standby can take it.
import { type EventObject, fromCallback } from "xstate";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { LeaseLostError, type LeaseStore } from "../../control/bus/lease.ts";

export type LeadershipEvent =
  | { readonly type: "lease.acquired" }
  | { readonly type: "lease.standby"; readonly holder: string | undefined }
  | { readonly type: "lease.lost"; readonly reason: string };

export interface LeadershipInput {
  readonly lease: LeaseStore;
  readonly id: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** Filled in while this controller leads; the controller releases it on a clean stop. */
  readonly held: { revision: number | undefined; validUntil: number };
}

export const leadershipActor = fromCallback<EventObject, LeadershipInput, LeadershipEvent>(({ input, sendBack }) => {
  const { lease, id, clock, log, held } = input;
  const period = Math.max(100, Math.floor(lease.ttlMs / 3));
  let closed = false;
  let timer: unknown;
  let lastHolder: string | undefined | null = null;

  let inFlight = false;

  const lose = (reason: string) => {
    held.revision = undefined;
    held.validUntil = 0;
    sendBack({ type: "lease.lost", reason });
  };
  const step = async () => {
    const sentAt = clock.now();
    const revision = held.revision;
    if (revision === undefined) {
      const r = await lease.tryAcquire(id);
      if (closed) return;
      if (r.acquired) {
        held.revision = r.revision;
        held.validUntil = sentAt + lease.ttlMs;
        lastHolder = id;
        sendBack({ type: "lease.acquired" });
      } else if (r.holder !== lastHolder) {
        lastHolder = r.holder;
        sendBack({ type: "lease.standby", holder: r.holder });
      }
      return;
    }
    try {
      const renewed = await lease.renew(id, revision);
      // Lost meanwhile (the deadline passed while the write was in flight): a late success changes nothing.
      if (held.revision !== revision) return;
      held.revision = renewed;
      held.validUntil = sentAt + lease.ttlMs;
    } catch (err) {
      if (closed || held.revision !== revision) return;
      if (err instanceof LeaseLostError) lose("another controller holds the lease");
      else log.warn({ err }, "Cannot renew the controller lease yet; still within its TTL");
    }
  };
  // Ticks run whether or not the last write came back: a hung renewal must not keep this controller leading.
  const tick = () => {
    if (closed) return;
    if (held.revision !== undefined && clock.now() >= held.validUntil) lose("the lease expired before it was renewed");
    if (!inFlight) {
      inFlight = true;
      step()
        .catch((err) => log.warn({ err }, "Controller lease check failed; retrying"))
        .finally(() => inFlight = false);
    }
    timer = clock.setTimeout(tick, period);
  };
  tick();
  return () => {
    closed = true;
    clock.clearTimeout(timer);
  };
});
