// Jailbreak and prompt-injection detection without a model: a weighted pattern set (jailbreak_patterns.ts) matched
// against normalised views of the prompt (jailbreak_normalise.ts), and an adapter for an external classifier
// (jailbreak_remote.ts) for users who run one.
//
// Scoring is noisy-or: score = 1 − Π(1 − wᵢ) over the distinct signals that matched, so the score stays in [0, 1],
// one strong signal decides alone, and weak ones ("from now on you…", a harmful topic, "without disclaimers") only
// add up. A prompt is a jailbreak when score ≥ threshold (default 0.5).
import { BUILTIN_PATTERNS, COMPACT_PATTERNS, META_SIGNALS } from "./jailbreak_patterns.ts";
import { decodedPayloads, promptViews, rot13 } from "./jailbreak_normalise.ts";

export { classifyJailbreakRemote, JailbreakClassifierError } from "./jailbreak_remote.ts";
export type { JailbreakClassifierErrorReason, RemoteJailbreakOptions } from "./jailbreak_remote.ts";

export const DEFAULT_JAILBREAK_THRESHOLD = 0.5;

export interface JailbreakOptions {
  /** Score at or above which the prompt is a jailbreak; in (0, 1]. Default 0.5. */
  readonly threshold?: number;
  /**
   * Extra patterns, added to the built-in set: a regex source matched case-insensitively against the normalised
   * prompt (lower case, accents and zero-width characters removed; " " and {wN} shorthands as in
   * jailbreak_patterns.ts) and a weight in [0, 1]. Reported in `matched` by their source.
   */
  readonly patterns?: readonly { pattern: string; weight: number }[];
  /** Use the built-in pattern set (default true). */
  readonly builtin?: boolean;
}

export interface JailbreakScore {
  readonly score: number;
  /** Names of the signals that matched (built-in names, or the source of a custom pattern), in order of weight. */
  readonly matched: string[];
  readonly jailbreak: boolean;
}

interface CompiledPattern {
  readonly name: string;
  readonly weight: number;
  readonly re: RegExp;
  /** See BuiltinPattern.anchors, split by kind; custom patterns have none and always run. */
  readonly wordAnchors?: readonly string[];
  readonly textAnchors?: readonly string[];
}

/** Expands the two shorthands and compiles. Throws an Error naming the pattern when the source is invalid. */
export function compileJailbreakPattern(name: string, source: string, weight: number): CompiledPattern {
  if (!(weight >= 0 && weight <= 1)) {
    throw new RangeError(`Invalid jailbreak pattern weight ${weight} for "${name}": expected a number in [0, 1]`);
  }
  const expanded = expandShorthands(source);
  try {
    return { name, weight, re: new RegExp(expanded, "is") };
  } catch (err) {
    throw new Error(`Invalid jailbreak pattern "${name}": ${(err as Error).message}`, { cause: err });
  }
}

// Words are letters and digits with apostrophes only inside ("don't"); separators are everything else. The two
// never overlap, so text splits into words and separators one way only and {wN} cannot backtrack polynomially.
const WORD = "[a-z0-9]+(?:'[a-z0-9]+)*";
const SEPARATORS = "[^a-z0-9]+";
const SEPARATORS_OPTIONAL = "[^a-z0-9]*";

/** " " outside a character class → separators; {wN} → up to N words. Escapes and classes are copied as they are. */
function expandShorthands(source: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]!;
    if (ch === "\\") {
      out += ch + (source[i + 1] ?? "");
      i++;
    } else if (inClass) {
      if (ch === "]") inClass = false;
      out += ch;
    } else if (ch === "[") {
      inClass = true;
      out += ch;
    } else if (ch === " ") {
      // " *" and " ?" become one optional run, never a quantified group of runs: (?:[^a-z0-9]+)* backtracks
      // exponentially on a long run of punctuation (a Markdown table rule, a row of dashes).
      if (source[i + 1] === "*" || source[i + 1] === "?") {
        out += SEPARATORS_OPTIONAL;
        i++;
      } else {
        out += SEPARATORS;
      }
    } else if (ch === "{" && /^\{w\d\}/.test(source.slice(i))) {
      out += `(?:${WORD}${SEPARATORS}){0,${source[i + 2]}}`;
      i += 3;
    } else {
      out += ch;
    }
  }
  return out;
}

const WORD_ANCHOR = /^[a-z0-9]+$/;
const withAnchors = (p: (typeof BUILTIN_PATTERNS)[number]): CompiledPattern => ({
  ...compileJailbreakPattern(p.name, p.source, p.weight),
  wordAnchors: p.anchors.filter((a) => WORD_ANCHOR.test(a)),
  textAnchors: p.anchors.filter((a) => !WORD_ANCHOR.test(a)),
});
const BUILTIN = BUILTIN_PATTERNS.map(withAnchors);
const COMPACT = COMPACT_PATTERNS.map(withAnchors);

/** @internal Tests turn the anchor prefilter off to check that it never changes a result. */
export const scoring = { prefilter: true };

interface TrieNode {
  /** Children by letter or digit: a–z at 0–25, 0–9 at 26–35. */
  readonly next: (TrieNode | undefined)[];
  anchor?: string;
}

/** a–z → 0–25, 0–9 → 26–35, anything else → -1. */
function slot(c: number): number {
  if (c >= 97 && c <= 122) return c - 97;
  if (c >= 48 && c <= 57) return c - 22;
  return -1;
}

/** Every word anchor of every pattern, as a trie, for one pass over a view. */
const ANCHOR_TRIE: TrieNode = { next: [] };
for (const anchor of new Set([...BUILTIN, ...COMPACT].flatMap((p) => p.wordAnchors ?? []))) {
  let node = ANCHOR_TRIE;
  for (let i = 0; i < anchor.length; i++) {
    const k = slot(anchor.charCodeAt(i));
    node = node.next[k] ??= { next: [] };
  }
  node.anchor = anchor;
}

/** The word anchors that start a word of `text` (lower-case view). */
function wordAnchorsIn(text: string): Set<string> {
  const found = new Set<string>();
  const n = text.length;
  for (let i = 0; i < n;) {
    if (slot(text.charCodeAt(i)) < 0) {
      i++;
      continue;
    }
    let node: TrieNode | undefined = ANCHOR_TRIE;
    for (let j = i; node && j < n; j++) {
      const k = slot(text.charCodeAt(j));
      if (k < 0) break;
      node = node.next[k];
      if (node?.anchor) found.add(node.anchor);
    }
    while (i < n && slot(text.charCodeAt(i)) >= 0) i++;
  }
  return found;
}

/** A view and, found on first use, the anchors it contains. */
class IndexedView {
  readonly text: string;
  /** The compact view is one long word: there every anchor is a substring test. */
  readonly #substringsOnly: boolean;
  #anchors: Set<string> | undefined;

  constructor(text: string, substringsOnly = false) {
    this.text = text;
    this.#substringsOnly = substringsOnly;
  }

  mayMatch(p: CompiledPattern): boolean {
    if (!scoring.prefilter || !p.wordAnchors || !p.textAnchors) return true;
    if (p.textAnchors.some((a) => this.text.includes(a))) return true;
    if (this.#substringsOnly) return p.wordAnchors.some((a) => this.text.includes(a));
    const anchors = this.#anchors ??= wordAnchorsIn(this.text);
    return p.wordAnchors.some((a) => anchors.has(a));
  }
}

function matches(p: CompiledPattern, view: IndexedView): boolean {
  return view.mayMatch(p) && p.re.test(view.text);
}
const FICTION_PARTS = ["fiction_frame", "harmful_topic", "detailed_instructions"];
const ROT13_MENTION = /\brot[ -]?13\b/i;

const customCache = new WeakMap<readonly { pattern: string; weight: number }[], CompiledPattern[]>();

function customPatterns(list: readonly { pattern: string; weight: number }[] | undefined): CompiledPattern[] {
  if (!list || list.length === 0) return [];
  let compiled = customCache.get(list);
  if (!compiled) {
    compiled = list.map((p) => compileJailbreakPattern(p.pattern, p.pattern, p.weight));
    customCache.set(list, compiled);
  }
  return compiled;
}

/** Checks options once (e.g. at config load) so that scoring later cannot throw. */
export function validateJailbreakOptions(options: JailbreakOptions): void {
  const t = options.threshold;
  if (t !== undefined && !(t > 0 && t <= 1)) {
    throw new RangeError(`Invalid jailbreak threshold ${t}: expected a number in (0, 1]`);
  }
  customPatterns(options.patterns);
}

/** Scores `text` for jailbreak and prompt-injection attempts. Pure; throws only on invalid options. */
export function scoreJailbreak(text: string, options: JailbreakOptions = {}): JailbreakScore {
  validateJailbreakOptions(options);
  const threshold = options.threshold ?? DEFAULT_JAILBREAK_THRESHOLD;
  const patterns = [...(options.builtin === false ? [] : BUILTIN), ...customPatterns(options.patterns)];
  const signals = new Map<string, number>();
  const add = (name: string, weight: number) => signals.set(name, Math.max(weight, signals.get(name) ?? 0));

  const views = promptViews(text);
  const plain = new IndexedView(views.plain);
  const deobfuscated = views.deobfuscated === undefined ? undefined : new IndexedView(views.deobfuscated);
  let obfuscated = false;
  for (const p of patterns) {
    if (matches(p, plain)) add(p.name, p.weight);
    else if (deobfuscated !== undefined && matches(p, deobfuscated)) {
      add(p.name, p.weight);
      obfuscated = true;
    }
  }
  if (views.compact !== undefined && options.builtin !== false) {
    const compact = new IndexedView(views.compact, true);
    for (const p of COMPACT) {
      if (!signals.has(p.name) && matches(p, compact)) {
        add(p.name, p.weight);
        obfuscated = true;
      }
    }
  }
  // Hidden payloads: what base64, hex or announced ROT13 decodes to is scored like the prompt itself.
  const hidden = decodedPayloads(text);
  if (ROT13_MENTION.test(text)) hidden.push(rot13(text));
  for (const payload of hidden) {
    const inner = promptViews(payload);
    const innerPlain = new IndexedView(inner.plain);
    const innerDeobfuscated = inner.deobfuscated === undefined ? undefined : new IndexedView(inner.deobfuscated);
    let found = false;
    for (const p of patterns) {
      if (matches(p, innerPlain) || (innerDeobfuscated !== undefined && matches(p, innerDeobfuscated))) {
        add(p.name, p.weight);
        found = true;
      }
    }
    if (found) add(META_SIGNALS.encodedPayload.name, META_SIGNALS.encodedPayload.weight);
  }

  for (const p of BUILTIN_PATTERNS) {
    if (p.supersedes && signals.has(p.name)) { for (const weaker of p.supersedes) signals.delete(weaker); }
  }
  const strong = [...signals.values()].some((w) => w >= 0.3);
  if (obfuscated && strong) add(META_SIGNALS.obfuscated.name, META_SIGNALS.obfuscated.weight);
  if (views.invisible) add(META_SIGNALS.invisible.name, META_SIGNALS.invisible.weight);
  if (views.mixedScripts) add(META_SIGNALS.mixedScripts.name, META_SIGNALS.mixedScripts.weight);
  if (FICTION_PARTS.every((n) => signals.has(n))) {
    add(META_SIGNALS.fictionalHarm.name, META_SIGNALS.fictionalHarm.weight);
  }

  let keep = 1;
  for (const w of signals.values()) keep *= 1 - w;
  const score = Math.round((1 - keep) * 1e6) / 1e6;
  const matched = [...signals.entries()].sort((a, b) => b[1] - a[1]).map(([name]) => name);
  return { score, matched, jailbreak: score >= threshold };
}
