// Envoy's HeaderMutationRules as the ext_proc filter applies them. With no rules configured a processor may add,
// change or remove any header except x-envoy-* and the routing headers host, :authority, :scheme and :method;
// pseudo-headers and host may never be removed. A disallowed mutation is ignored (and counted) unless
// disallow_is_error is set, in which case it fails the stream.
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/common/mutation_rules/v3/mutation_rules.proto
import type { HeaderMutationRules } from "./config.ts";

const ROUTING = new Set(["host", ":authority", ":scheme", ":method"]);

export type MutationVerdict = "allow" | "ignore" | "error";

export function checkHeaderChange(name: string, rules: HeaderMutationRules | undefined): MutationVerdict {
  const n = name.toLowerCase();
  const allowed = rules?.disallowAll
    ? false
    : ROUTING.has(n)
    ? rules?.allowAllRouting === true
    : n.startsWith("x-envoy")
    ? rules?.allowEnvoy === true
    : n.startsWith(":")
    ? rules?.disallowSystem !== true
    : true;
  return allowed ? "allow" : rules?.disallowIsError ? "error" : "ignore";
}

export function checkHeaderRemoval(name: string, rules: HeaderMutationRules | undefined): MutationVerdict {
  const n = name.toLowerCase();
  if (n.startsWith(":") || n === "host") return rules?.disallowIsError ? "error" : "ignore";
  return checkHeaderChange(n, rules);
}
