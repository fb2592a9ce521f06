// Keyword signals: named sets of regular expressions over the user's query. `any` fires when one pattern matches,
// `all` when every one does, `none` when none does (a negative rule, e.g. "no code in the question"). Patterns are
// compiled once per config; a pattern that does not compile is a config error reported at load.
import type { KeywordRuleConfig } from "./config.ts";

export interface KeywordSignal {
  readonly name: string;
  /** Whether the rule fires for `text`. */
  matches(text: string): boolean;
}

export function compileKeywordRule(rule: KeywordRuleConfig): KeywordSignal {
  // No g or y flag: test() must not carry lastIndex from one request to the next.
  const flags = rule.caseSensitive ? "u" : "iu";
  const patterns = rule.patterns.map((p) => new RegExp(p, flags));
  switch (rule.operator) {
    case "any":
      return { name: rule.name, matches: (text) => patterns.some((re) => re.test(text)) };
    case "all":
      return { name: rule.name, matches: (text) => patterns.every((re) => re.test(text)) };
    case "none":
      return { name: rule.name, matches: (text) => !patterns.some((re) => re.test(text)) };
  }
}

/** The error a pattern gives when compiled the way compileKeywordRule compiles it, or undefined. */
export function keywordPatternError(pattern: string, caseSensitive: boolean): string | undefined {
  try {
    new RegExp(pattern, caseSensitive ? "u" : "iu");
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
