// Rate-limit headroom for the dashboard: the busiest counters of the current windows, read from an aggregator's
// store (folded usage and hit events plus this replica's unconfirmed hits, exactly what its rate limit service
// answers from), each with the limit of the rule it counts against.
import type { AggregatorCore } from "../../usage/aggregator_core.ts";
import type { RateLimitRules, RuleNode } from "../../usage/rate_limit_rules.ts";
import { parseWindowId } from "../../usage/windows.ts";
import type { RateLimitEntry } from "../../edge/config.ts";

/** How a descriptor key reads to an operator: `tollgate run` knows which request header fed it, and which cost. */
export interface DescriptorKeyName {
  readonly label: string;
  readonly hint?: string;
}

export interface HeadroomCounter {
  readonly domain: string;
  /** The entries that vary per client ("x-user-id=alice"), or the whole descriptor when none does. */
  readonly descriptor: string;
  /** Fixed entries (generic keys, route markers), shortened. */
  readonly scope: string;
  readonly entries: readonly { readonly key: string; readonly value: string }[];
  /** rate_limit.name, else what the descriptor counts when known (e.g. the cost "llm_input_token"). */
  readonly name: string;
  readonly unit: string;
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  /** used / limit (above 1 once over the limit). */
  readonly utilisation: number;
  readonly windowEnd: number;
  readonly shadowMode: boolean;
}

export interface HeadroomReport {
  /** Limited descriptors in the rules. */
  readonly limitedRules: number;
  readonly domains: readonly string[];
  /** Counters in a window that contains now. */
  readonly activeCounters: number;
  /** The busiest, by utilisation. */
  readonly top: readonly HeadroomCounter[];
}

export type HeadroomSource = Pick<AggregatorCore, "store" | "view" | "rules">;

export function headroomReport(
  core: HeadroomSource,
  o: { readonly now: number; readonly top?: number; readonly names?: ReadonlyMap<string, DescriptorKeyName> },
): HeadroomReport {
  const counters: HeadroomCounter[] = [];
  const seen = new Set<string>();
  // The folded store and this replica's local hits; a key in both is one counter (view.get adds them up).
  for (const source of [core.store.entries(), core.view.entries()]) {
    for (const [key] of source) {
      if (seen.has(key)) continue;
      seen.add(key);
      const c = counterOf(core, key, o.now, o.names);
      if (c) counters.push(c);
    }
  }
  counters.sort((a, b) => b.utilisation - a.utilisation || b.used - a.used || compare(a.descriptor, b.descriptor));
  return {
    limitedRules: countLimited(core.rules),
    domains: core.rules.domains.map((d) => d.domain),
    activeCounters: counters.length,
    top: counters.slice(0, o.top ?? 12),
  };
}

/**
 * Descriptor keys whose values tell clients apart: the keys of value-less rule nodes, each of which gets a counter
 * per distinct value (a tenant, a user, an API key). A usage event's value for one of them names its tenant.
 */
export function tenantKeysOf(rules: RateLimitRules): ReadonlySet<string> {
  const keys = new Set<string>();
  const walk = (nodes: readonly RuleNode[]) => {
    for (const n of nodes) {
      if (n.value === undefined) keys.add(n.key);
      walk(n.children);
    }
  };
  for (const d of rules.domains) walk(d.descriptors);
  return keys;
}

function counterOf(
  core: HeadroomSource,
  windowKey: string,
  now: number,
  names: ReadonlyMap<string, DescriptorKeyName> | undefined,
): HeadroomCounter | undefined {
  const hash = windowKey.lastIndexOf("#");
  const window = parseWindowId(windowKey.slice(hash + 1));
  if (hash < 0 || !window || window.start > now || window.end <= now) return undefined;
  const [domainPart, ...parts] = windowKey.slice(0, hash).split("|");
  const entries = parts.map((p) => {
    const eq = p.indexOf("=");
    return { key: decode(p.slice(0, eq)), value: decode(p.slice(eq + 1)) };
  });
  const domain = decode(domainPart ?? "");
  const match = core.rules.matchDescriptor(domain, entries);
  if (!match || match.limit.kind !== "limited") return undefined;
  const used = core.view.get(windowKey);
  const limit = match.limit.requestsPerUnit;
  const varying = entries.filter((e) => e.key !== e.value);
  const fixed = entries.filter((e) => e.key === e.value);
  const show = (e: { key: string; value: string }) => `${names?.get(e.key)?.label ?? e.key}=${e.value}`;
  const hint = varying.map((e) => names?.get(e.key)?.hint).find((h) => h !== undefined);
  return {
    domain,
    descriptor: (varying.length > 0 ? varying : entries).map(show).join(", "),
    scope: fixed.map((e) => shorten(e.value)).join(", "),
    entries,
    name: match.limit.name || hint || "",
    unit: match.limit.unit,
    limit,
    used,
    remaining: Math.max(0, limit - used),
    // A limit of 0 refuses everything: no headroom at all.
    utilisation: limit > 0 ? used / limit : 1,
    windowEnd: window.end,
    shadowMode: match.shadowMode,
  };
}

/** Names for the descriptor keys of a gateway's rate limits: the request header a key is read from, and the cost
 * (dynamic metadata key) the descriptor's hits come from. */
export function descriptorKeyNames(
  rateLimits: ReadonlyMap<string, { readonly entries: readonly RateLimitEntry[] }>,
): Map<string, DescriptorKeyName> {
  const names = new Map<string, DescriptorKeyName>();
  for (const { entries } of rateLimits.values()) {
    for (const entry of entries) {
      const cost = entry.hitsAddend && "metadata" in entry.hitsAddend ? entry.hitsAddend.metadata.key : undefined;
      for (const a of entry.actions) {
        if (a.kind !== "requestHeaders" || names.has(a.descriptorKey)) continue;
        names.set(a.descriptorKey, { label: a.headerName, ...(cost ? { hint: cost } : {}) });
      }
    }
  }
  return names;
}

function countLimited(rules: RateLimitRules): number {
  let n = 0;
  const walk = (nodes: readonly RuleNode[]) => {
    for (const node of nodes) {
      if (node.limit?.kind === "limited") n++;
      walk(node.children);
    }
  };
  for (const d of rules.domains) walk(d.descriptors);
  return n;
}

/** Envoy Gateway's route markers ("httproute/ns/name/rule/0/match/0/*") read as the route they stand for. */
function shorten(value: string): string {
  const m = /^httproute\/([^/]+)\/([^/]+)\//.exec(value);
  return m ? `route ${m[1]}/${m[2]}` : value;
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
