// `tollgate run`'s rate limiting, in one process: the aggregator's fold (AggregatorCore) fed directly by the
// sidecar's usage events (the in-process bus), and the rate limit service on a Unix socket reading the same
// counters, which the edge's ratelimit filter calls. Token rules are fed by usage events only; the edge's
// stream-done call is check-only for them, so nothing is counted twice.
import type { CompiledGateway } from "../control/compile/compiled.ts";
import type { Logger } from "../observability/logger.ts";
import { AggregatorCore, UsageFedRules } from "../usage/aggregator_core.ts";
import { type RlsConfigOptions, rulesFromCompiled } from "../usage/rls_config.ts";
import { RlsServer } from "../usage/rls_service.ts";
import type { UsageEvent } from "../usage/usage_event.ts";
import { usageFedTemplates } from "../actors/aggregator/rule_files.ts";
import { formatResourceError } from "../control/resources/errors.ts";
import type { Registry } from "prom-client";
import type { NatsLink } from "../usage/nats_connection.ts";
import { startAggregator } from "../actors/aggregator/replica.ts";

export interface LocalRateLimits extends AsyncDisposable {
  /** gRPC target of the rate limit service. */
  readonly target: string;
  readonly domain: string;
  /** The counters and rules the rate limit service answers from (the dashboard's headroom). */
  readonly core: AggregatorCore;
  apply(event: UsageEvent): void;
}

/** The RateLimitOptions' calendar, which every rate-limit window of the configuration follows. */
export function windowOptions(compiled: CompiledGateway): RlsConfigOptions {
  const calendar = compiled.rateLimitOptions?.calendar;
  return calendar ? { windows: { calendar } } : {};
}

export async function startLocalRateLimits(
  compiled: CompiledGateway,
  o: { readonly socketPath: string; readonly domain: string; readonly logger: Logger },
): Promise<LocalRateLimits> {
  const loaded = rulesFromCompiled(compiled.rateLimitRules, windowOptions(compiled));
  if (!loaded.ok) throw new Error(`Invalid rate-limit rules:\n${loaded.errors.map(formatResourceError).join("\n")}`);
  const usageFed = new UsageFedRules(usageFedTemplates(compiled, o.domain));
  const core = new AggregatorCore({ replica: "run", rules: loaded.rules, usageFed });
  const rls = await RlsServer.start({
    listen: { kind: "unix", path: o.socketPath },
    rules: loaded.rules,
    logger: o.logger,
    store: core.view,
    checkOnly: (limit) => usageFed.covers(limit.counterKey),
    // No log here: a reservation is folded as soon as it is held, and the usage event folded in process releases it.
    onReserve: (r) => core.reserveFolded(r),
  });
  // Expired windows are dropped once a minute, so a long-running gateway does not keep every old counter.
  const pruning = setInterval(() => core.prune(), 60_000);
  return {
    target: `unix://${o.socketPath}`,
    domain: o.domain,
    core,
    apply: (event) => void core.applyUsage(event),
    async [Symbol.asyncDispose]() {
      clearInterval(pruning);
      await rls.close();
    },
  };
}

/**
 * `run --nats`: the same rules served by an aggregator replica on NATS JetStream — the sidecar's usage events take
 * the same path as in production (publisher, stream, fold), so other replicas and other `run` processes on the same
 * NATS share the counters.
 */
export async function startNatsRateLimits(
  compiled: CompiledGateway,
  o: {
    readonly socketPath: string;
    readonly domain: string;
    readonly logger: Logger;
    readonly registry: Registry;
    readonly link: NatsLink;
    readonly replica: string;
  },
): Promise<LocalRateLimits> {
  const loaded = rulesFromCompiled(compiled.rateLimitRules, windowOptions(compiled));
  if (!loaded.ok) throw new Error(`Invalid rate-limit rules:\n${loaded.errors.map(formatResourceError).join("\n")}`);
  const usageFed = new UsageFedRules(usageFedTemplates(compiled, o.domain));
  const replica = startAggregator({
    link: o.link,
    replica: o.replica,
    ruleSet: { rules: loaded.rules, usageFed },
    log: o.logger,
    registry: o.registry,
    listen: { kind: "unix", path: o.socketPath },
  });
  await replica.listening;
  return {
    target: `unix://${o.socketPath}`,
    domain: o.domain,
    core: replica.core,
    apply: () => {}, // Usage reaches this replica through JetStream.
    async [Symbol.asyncDispose]() {
      await replica.stop();
    },
  };
}
