// The rate-limit rule tree of envoyproxy/ratelimit (one tree of nested descriptors per domain) and the lookup that
// finds the limit of a request descriptor, following its GetLimit (src/config/config_impl.go):
//
// - the request's entries are matched level by level, one config level per entry;
// - at each level the most specific config descriptor wins: key and exact value, else the first (in config order)
//   value ending in "*" whose prefix starts the value, else the key without value (any value);
// - the choice at a level is final (no backtracking to a less specific sibling with deeper children);
// - a limit applies only when the request has exactly as many entries as the matched depth (README example 4);
// - the walk stops at a descriptor without children.
//
// One deliberate difference: envoyproxy/ratelimit joins key and value as "key_value" strings for these lookups, so
// key "a" with wildcard "b_c*" also matches key "a_b" with value "c…". Here key and value are compared apart.
//
// Counters: envoyproxy/ratelimit keys a counter by the domain and every (key, value) of the request descriptor plus
// the window (src/limiter/cache_key.go). Because a match has exactly one config level per entry, that is the matched
// path with the request's concrete values at value-less and wildcard levels, so every distinct value gets its own
// counter (README examples 2 and 9). With share_threshold, all values matched by one wildcard share its counter.
import type { RateLimitUnitName, WindowOptions } from "./windows.ts";

export type { RateLimitUnitName };

/** A config descriptor's rate_limit block. */
export type LimitSpec =
  | {
    readonly kind: "limited";
    readonly unit: RateLimitUnitName;
    readonly requestsPerUnit: number;
    /** rate_limit.name; "" when unnamed. Reported as current_limit.name and used by `replaces`. */
    readonly name: string;
    readonly replaces: readonly string[];
  }
  | { readonly kind: "unlimited"; readonly name: string; readonly replaces: readonly string[] };

export interface RuleNode {
  readonly key: string;
  /** Absent: any value (a counter per value). Ending in "*": a prefix wildcard. */
  readonly value?: string;
  readonly limit?: LimitSpec;
  readonly shadowMode: boolean;
  /** Metrics only: report the request's values rather than the config path. */
  readonly detailedMetric: boolean;
  /** Only on wildcard values: every value the wildcard matches counts against one shared counter. */
  readonly shareThreshold: boolean;
  readonly children: readonly RuleNode[];
}

export interface DomainRules {
  readonly domain: string;
  readonly descriptors: readonly RuleNode[];
}

export interface DescriptorEntry {
  readonly key: string;
  readonly value: string;
}

export interface MatchedLimit {
  readonly domain: string;
  readonly limit: LimitSpec;
  readonly shadowMode: boolean;
  /** Deterministic and identical in every process for the same config path and request values. */
  readonly counterKey: string;
  /** envoyproxy/ratelimit's stat key: `domain.key_value.key` along the config path, or along the request's
   * values when the matched descriptor has detailed_metric. */
  readonly statKey: string;
}

interface Level {
  readonly exact: ReadonlyMap<string, IndexedNode>;
  readonly wildcards: readonly IndexedNode[];
  readonly anyValue: ReadonlyMap<string, IndexedNode>;
}

interface IndexedNode {
  readonly node: RuleNode;
  readonly children: Level;
}

export class RateLimitRules {
  readonly domains: readonly DomainRules[];
  readonly windows: WindowOptions;
  readonly #index: ReadonlyMap<string, Level>;

  /** The nodes must already be valid (rls_config.ts checks them); duplicates at a level keep the first. */
  constructor(domains: readonly DomainRules[], windows: WindowOptions = {}) {
    this.domains = domains;
    this.windows = windows;
    this.#index = new Map(domains.map((d) => [d.domain, indexLevel(d.descriptors)]));
  }

  static empty(): RateLimitRules {
    return new RateLimitRules([]);
  }

  hasDomain(domain: string): boolean {
    return this.#index.has(domain);
  }

  /** The limit for one request descriptor, or undefined when the domain or no config descriptor matches. */
  matchDescriptor(domain: string, entries: readonly DescriptorEntry[]): MatchedLimit | undefined {
    let level = this.#index.get(domain);
    if (!level || entries.length === 0) return undefined;
    const counterParts = [encode(domain)];
    const configPath = [domain];
    for (const [i, entry] of entries.entries()) {
      const found = lookup(level, entry);
      if (!found) return undefined;
      const { node } = found;
      const shared = node.shareThreshold && node.value?.endsWith("*") === true;
      counterParts.push(`${encode(entry.key)}=${encode(shared ? node.value! : entry.value)}`);
      configPath.push(node.value === undefined ? node.key : `${node.key}_${node.value}`);
      if (i === entries.length - 1) {
        if (!node.limit) return undefined;
        const requestPath = [domain, ...entries.map((e) => `${e.key}_${e.value}`)];
        return {
          domain,
          limit: node.limit,
          shadowMode: node.shadowMode,
          counterKey: counterParts.join("|"),
          statKey: (node.detailedMetric ? requestPath : configPath).join("."),
        };
      }
      if (node.children.length === 0) return undefined;
      level = found.children;
    }
    return undefined;
  }
}

/** The counter key of a descriptor's own entries: what a limit override in the request counts against. */
export function descriptorCounterKey(domain: string, entries: readonly DescriptorEntry[]): string {
  return [encode(domain), ...entries.map((e) => `${encode(e.key)}=${encode(e.value)}`)].join("|");
}

function lookup(level: Level, entry: DescriptorEntry): IndexedNode | undefined {
  const exact = level.exact.get(pairKey(entry.key, entry.value));
  if (exact) return exact;
  for (const w of level.wildcards) {
    if (w.node.key === entry.key && entry.value.startsWith(w.node.value!.slice(0, -1))) return w;
  }
  return level.anyValue.get(entry.key);
}

function indexLevel(nodes: readonly RuleNode[]): Level {
  const exact = new Map<string, IndexedNode>();
  const wildcards: IndexedNode[] = [];
  const anyValue = new Map<string, IndexedNode>();
  for (const node of nodes) {
    const indexed = { node, children: indexLevel(node.children) };
    if (node.value === undefined) {
      if (!anyValue.has(node.key)) anyValue.set(node.key, indexed);
    } else if (node.value.endsWith("*")) {
      wildcards.push(indexed);
    } else if (!exact.has(pairKey(node.key, node.value))) {
      exact.set(pairKey(node.key, node.value), indexed);
    }
  }
  return { exact, wildcards, anyValue };
}

function pairKey(key: string, value: string): string {
  return `${key}\u0000${value}`;
}

/** Percent-encoding keeps "|", "=" and "#" (the separators of counter and window keys) out of every part. */
function encode(part: string): string {
  return encodeURIComponent(part);
}
