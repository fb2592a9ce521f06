// The rate limit service of a replica: envoyproxy/ratelimit's ShouldRateLimit over gRPC, answered from the replica's
// core. It reads and adds through the core's view (folded counters + held reservations + this replica's local hits),
// checks only the counters usage events feed (checkOnly) unless the request reserves on them, and hands every hit and
// reservation it adds to the hit publisher (`hit.applied`, `hit.local`; its actor ref comes in the input, so the
// parent's machine is not on the path of a check), so the other replicas add it too.
import { type AnyActorRef, fromCallback } from "xstate";
import type { ServerCredentials } from "@grpc/grpc-js";
import type { ListenAddress } from "../../extproc/listen_address.ts";
import type { Logger } from "../../observability/logger.ts";
import type { AggregatorCore, AggregatorRuleSet } from "../../usage/aggregator_core.ts";
import type { HitPublisherReceived } from "./hit_publisher.ts";
import { type RateLimitHeaderNames, RlsServer } from "../../usage/rls_service.ts";
import type { AggregatorMetrics } from "./metrics.ts";

export type RlsEvent =
  | { readonly type: "rls.listening"; readonly address: ListenAddress }
  | { readonly type: "rls.failed"; readonly error: Error };

type HitsSent = Extract<HitPublisherReceived, { type: "hit.applied" | "hit.local" }>;

export type RlsReceived = { readonly type: "rules.set"; readonly ruleSet: AggregatorRuleSet };

export interface RlsInput {
  readonly core: AggregatorCore;
  /** The hit publisher. */
  readonly hits: AnyActorRef;
  readonly listen: ListenAddress;
  readonly log: Logger;
  readonly metrics: AggregatorMetrics;
  /** Wall clock, epoch ms: the window of a check. */
  readonly now: () => number;
  readonly rateLimitHeaders?: RateLimitHeaderNames;
  /** TLS for the listener; plaintext when absent. */
  readonly serverCredentials?: ServerCredentials;
}

export const rlsActor = fromCallback<RlsReceived, RlsInput, RlsEvent>(({ input, sendBack, receive }) => {
  const { core, metrics, hits } = input;
  let closed = false;
  const server = new RlsServer({
    listen: input.listen,
    rules: core.rules,
    logger: input.log,
    store: core.view,
    now: input.now,
    checkOnly: core.checkOnly,
    onHits: (domain, counterKey, windowId, n, eventTimeMs) =>
      hits.send({ type: "hit.applied", hit: { domain, counterKey, windowId, n, eventTimeMs } } satisfies HitsSent),
    onReserve: (r) => hits.send({ type: "hit.local", hit: core.reserveLocal(r) } satisfies HitsSent),
    onDecision: (result) => metrics.decision(result),
    ...(input.rateLimitHeaders ? { rateLimitHeaders: input.rateLimitHeaders } : {}),
    ...(input.serverCredentials ? { serverCredentials: input.serverCredentials } : {}),
  });
  server.start().then(
    (address) => {
      if (!closed) sendBack({ type: "rls.listening", address });
    },
    (err) => {
      if (!closed) sendBack({ type: "rls.failed", error: err instanceof Error ? err : new Error(String(err)) });
    },
  );
  receive((e) => {
    if (e.type === "rules.set") server.setRules(e.ruleSet.rules);
  });
  return () => {
    closed = true;
    void server.close();
  };
});
