import { assertEquals } from "../../test/support/assert.ts";
import { compileKeywordRule, keywordPatternError } from "./keyword_signal.ts";

const rule = (operator: "any" | "all" | "none", patterns: string[], caseSensitive = false) =>
  compileKeywordRule({ name: "k", operator, patterns, caseSensitive });

Deno.test("keyword rule any fires when one pattern matches", () => {
  const k = rule("any", ["\\burgent\\b", "asap"]);
  assertEquals([k.matches("This is URGENT"), k.matches("reply asap"), k.matches("urgently")], [true, true, false]);
});

Deno.test("keyword rule all needs every pattern", () => {
  const k = rule("all", ["security", "review"]);
  assertEquals([k.matches("security review please"), k.matches("security only")], [true, false]);
});

Deno.test("keyword rule none fires when no pattern matches", () => {
  const k = rule("none", ["```", "\\bdef\\b"]);
  assertEquals([k.matches("plain question"), k.matches("def f(): pass")], [true, false]);
});

Deno.test("keyword rules honour case sensitivity and give the same answer every time", () => {
  const k = rule("any", ["SQL"], true);
  assertEquals([k.matches("SQL join"), k.matches("sql join")], [true, false]);
  const again = rule("any", ["a+"]);
  assertEquals([again.matches("aaa"), again.matches("aaa"), again.matches("aaa")], [true, true, true]);
});

Deno.test("keywordPatternError reports a pattern that does not compile", () => {
  assertEquals(keywordPatternError("(ok)", false), undefined);
  assertEquals(typeof keywordPatternError("(unclosed", false), "string");
});
