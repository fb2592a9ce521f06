// The rules watcher: watches the rule files and directories and reloads them after a quiet time (editors write in
// several steps). A change that loads becomes `rules.loaded`; one that does not is logged with every located error
// and the rules in force stay (`rules.rejected`).
import { type EventObject, fromCallback } from "xstate";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { formatResourceError, type ResourceError } from "../../control/resources/errors.ts";
import type { AggregatorRuleSet } from "../../usage/aggregator_core.ts";
import { loadRuleSources, type RuleSources } from "./rule_files.ts";
import type { AggregatorMetrics } from "./metrics.ts";

export type RulesWatcherEvent =
  | { readonly type: "rules.loaded"; readonly ruleSet: AggregatorRuleSet }
  | { readonly type: "rules.rejected"; readonly errors: readonly ResourceError[] };

export interface RulesWatcherInput {
  readonly sources: RuleSources;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: AggregatorMetrics;
  /** Default 200 ms. */
  readonly debounceMs?: number;
}

export const rulesWatcherActor = fromCallback<EventObject, RulesWatcherInput, RulesWatcherEvent>(
  ({ input, sendBack }) => {
    const { sources, clock, log, metrics } = input;
    const paths = [...sources.rules, ...sources.resources];
    const watcher = Deno.watchFs(paths, { recursive: true });
    let closed = false;
    let timer: unknown;
    let loading = Promise.resolve();

    const reload = async () => {
      const result = await loadRuleSources(sources);
      if (closed) return;
      if (result.ok) {
        metrics.rulesReloads.inc({ result: "applied" });
        log.info({ domains: result.ruleSet.rules.domains.map((d) => d.domain) }, "Applied a rate limit rules change");
        sendBack({ type: "rules.loaded", ruleSet: result.ruleSet });
      } else {
        metrics.rulesReloads.inc({ result: "rejected" });
        log.error(
          { errors: result.errors.map(formatResourceError) },
          "Rejected a rate limit rules change; keeping the rules in force",
        );
        sendBack({ type: "rules.rejected", errors: result.errors });
      }
    };
    (async () => {
      for await (const _event of watcher) {
        clock.clearTimeout(timer);
        // Reloads run one after another: a slow load never lands after a newer one.
        timer = clock.setTimeout(() => {
          loading = loading.then(reload).catch((err) => log.error({ err }, "Cannot reload the rate limit rules"));
        }, input.debounceMs ?? 200);
      }
    })().catch(() => {/* the watcher was closed */});

    return () => {
      closed = true;
      clock.clearTimeout(timer);
      watcher.close();
    };
  },
);
