// Which rule a rate-limit descriptor matches, remembered: the aggregator's fold and its rate limit service both look up
// the same descriptors again and again (a user's, a route's), and RateLimitRules.matchDescriptor builds strings each
// time. A memo also keeps the window its counter last counted in, so the window key is built once per window.
import type { MatchedLimit, RateLimitRules } from "./rate_limit_rules.ts";
import {
  type RateLimitUnitName,
  type WindowId,
  type WindowKey,
  windowKey,
  windowOf,
  type WindowOptions,
} from "./windows.ts";

/** What a descriptor matched, and the window it last counted in with its counter key: the same string object every
 * time, so the store's map hashes it once. */
export interface DescriptorMemo {
  readonly match: MatchedLimit | undefined;
  windowStart: number;
  windowEnd: number;
  windowId: WindowId;
  key: WindowKey;
}

/** Moves the memo (of a limited match) to the window of `unit` holding `t` when t is outside the one it holds. */
export function moveToWindow(memo: DescriptorMemo, unit: RateLimitUnitName, t: number, windows: WindowOptions): void {
  if (t >= memo.windowStart && t < memo.windowEnd) return;
  const window = windowOf(unit, t, windows);
  memo.windowStart = window.start;
  memo.windowEnd = window.end;
  memo.windowId = window.id;
  memo.key = windowKey(memo.match!.counterKey, window.id);
}

/** Classes, with every field set from the start: objects of one shape keep the lookups' inline caches fast. */
class MemoNode {
  readonly byKey = new Map<string, KeyNode>();
  memo: DescriptorMemo | undefined = undefined;
}

class KeyNode {
  readonly byValue = new Map<string, MemoNode>();
}

/**
 * RateLimitRules.matchDescriptor, remembered per (domain, entries): the fold and the rate limit service see the same
 * few thousand descriptors over and over, and matching one builds half a dozen strings. Looked up through nested maps on the entries' own
 * strings, so a hit builds none; and first by the entries array itself when it is frozen (the usage event reader hands
 * out the same frozen array again for the same descriptor; a frozen array cannot change). Bounded: past `limit`
 * descriptors it starts afresh.
 */
export class MatchCache {
  readonly #rules: RateLimitRules;
  readonly #limit: number;
  #roots = new Map<string, MemoNode>();
  #byEntries = new WeakMap<readonly unknown[], { readonly domain: string; readonly memo: DescriptorMemo }>();
  #size = 0;

  constructor(rules: RateLimitRules, limit = 100_000) {
    this.#rules = rules;
    this.#limit = limit;
  }

  get(domain: string, entries: readonly { readonly key: string; readonly value: string }[]): DescriptorMemo {
    if (!Object.isFrozen(entries)) return this.#lookup(domain, entries);
    const known = this.#byEntries.get(entries);
    if (known !== undefined && known.domain === domain) return known.memo;
    const memo = this.#lookup(domain, entries);
    this.#byEntries.set(entries, { domain, memo });
    return memo;
  }

  #lookup(domain: string, entries: readonly { readonly key: string; readonly value: string }[]): DescriptorMemo {
    if (this.#size >= this.#limit) {
      this.#roots = new Map();
      this.#byEntries = new WeakMap();
      this.#size = 0;
    }
    let node: MemoNode | undefined = this.#roots.get(domain);
    if (!node) this.#roots.set(domain, node = new MemoNode());
    for (const { key, value } of entries) {
      let k: KeyNode | undefined = node.byKey.get(key);
      if (!k) node.byKey.set(key, k = new KeyNode());
      let next: MemoNode | undefined = k.byValue.get(value);
      if (!next) k.byValue.set(value, next = new MemoNode());
      node = next;
    }
    if (!node.memo) {
      const match = this.#rules.matchDescriptor(domain, entries);
      node.memo = { match, windowStart: 0, windowEnd: 0, windowId: "", key: "" };
      this.#size++;
    }
    return node.memo;
  }
}
