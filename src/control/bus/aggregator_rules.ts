// What an aggregator takes from a config snapshot: the rate-limit rules of the BackendTrafficPolicies, and which
// counters usage events feed (the descriptors of every stream-done entry), exactly as `--resources` would give them.
import type { AggregatorRuleSet } from "../../usage/aggregator_core.ts";
import { UsageFedRules } from "../../usage/aggregator_core.ts";
import { RateLimitRules } from "../../usage/rate_limit_rules.ts";
import { rulesFromCompiled } from "../../usage/rls_config.ts";
import { usageFedTemplates } from "../../actors/aggregator/rule_files.ts";
import { formatResourceError } from "../resources/errors.ts";
import type { ConfigSnapshot } from "./config_snapshot.ts";

/** Throws with every located error when the rules do not load (the subscriber then keeps the rules in force). */
export function aggregatorRuleSet(snapshot: ConfigSnapshot): AggregatorRuleSet {
  const rules = rulesFromCompiled(snapshot.gateway.rateLimitRules);
  if (!rules.ok) {
    throw new Error(`Cannot load the rate limit rules: ${rules.errors.map(formatResourceError).join("; ")}`);
  }
  return {
    rules: new RateLimitRules(rules.rules.domains),
    usageFed: new UsageFedRules(usageFedTemplates(snapshot.gateway, snapshot.rateLimitDomain)),
  };
}
