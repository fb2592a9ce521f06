// The rate limit service of a replica: envoyproxy/ratelimit's ShouldRateLimit over gRPC, answered from the replica's
// core. It reads and adds through the core's view (folded counters + held reservations + this replica's local hits),
// checks only the counters usage events feed (checkOnly) unless the request reserves on them, and hands every hit and
// reservation it adds to its parent as a hit event to publish (`hit.local`), so the other replicas add it too.
import { fromCallback } from "xstate";
import type { ServerCredentials } from "@grpc/grpc-js";
import type { ListenAddress } from "../../extproc/listen_address.ts";
import type { Logger } from "../../observability/logger.ts";
import type { AggregatorCore, AggregatorRuleSet } from "../../usage/aggregator_core.ts";
import type { HitEvent } from "../../usage/hit_event.ts";
import { type RateLimitHeaderNames, RlsServer } from "../../usage/rls_service.ts";
import type { AggregatorMetrics } from "./metrics.ts";

export type RlsEvent =
  | { readonly type: "rls.listening"; readonly address: ListenAddress }
  | { readonly type: "rls.failed"; readonly error: Error }
  | { readonly type: "hit.local"; readonly hit: HitEvent };

export type RlsReceived = { readonly type: "rules.set"; readonly ruleSet: AggregatorRuleSet };

export interface RlsInput {
  readonly core: AggregatorCore;
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
  const { core, metrics } = input;
  let closed = false;
  const server = new RlsServer({
    listen: input.listen,
    rules: core.rules,
    logger: input.log,
    store: core.view,
    now: input.now,
    checkOnly: core.checkOnly,
    onHits: (domain, counterKey, windowId, n, eventTimeMs) =>
      sendBack({ type: "hit.local", hit: core.localHitEvent({ domain, counterKey, windowId, n, eventTimeMs }) }),
    onReserve: (r) => sendBack({ type: "hit.local", hit: core.reserveLocal(r) }),
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
