import { assert, assertEquals, assertMatch } from "../../test/support/assert.ts";
import type { CompiledCost } from "../control/compile/compiled.ts";
import type { TokenUsage } from "../protocol/usage.ts";
import { compileCosts, type CostFacts, type CostProgram, evaluateCosts } from "./costs.ts";

const ROUTE = "default/chat";
const FULL: TokenUsage = {
  inputTokens: 200,
  outputTokens: 20,
  totalTokens: 220,
  cachedInputTokens: 100,
  cacheCreationInputTokens: 1,
  reasoningTokens: 7,
};

function facts(more: Partial<CostFacts> = {}): CostFacts {
  return { model: "gpt-4o", backend: "openai.default", routeName: ROUTE, usage: FULL, ...more };
}

function compile(...costs: Omit<CompiledCost, "route">[]): CostProgram[] {
  const result = compileCosts(costs.map((c) => ({ route: ROUTE, ...c })));
  if (!result.ok) throw new Error(result.errors.map((e) => e.message).join("\n"));
  return result.costs;
}

function cel(expression: string, metadataKey = "cost"): CostProgram[] {
  return compile({ metadataKey, type: "CEL", cel: expression });
}

Deno.test("evaluateCosts gives each token cost type the count it names", () => {
  const table: [CompiledCost["type"], number][] = [
    ["InputToken", 200],
    ["OutputToken", 20],
    ["TotalToken", 220],
    ["CachedInputToken", 100],
    ["CacheCreationInputToken", 1],
    ["CachedWriteInputToken", 1],
    ["ReasoningToken", 7],
  ];
  for (const [type, expected] of table) {
    assertEquals(evaluateCosts(compile({ metadataKey: "k", type }), facts()), { values: { k: expected }, errors: [] });
  }
});

Deno.test("evaluateCosts evaluates CEL over every variable", () => {
  const table: [string, Partial<CostFacts>, number][] = [
    ["model == 'gpt-4o' ? 2u : 1u", {}, 2],
    ["model == 'gpt-4o' ? 2u : 1u", { model: "llama" }, 1],
    ["backend == 'openai.default' ? 3u : 1u", {}, 3],
    ["route_name == 'default/chat' ? 4u : 1u", {}, 4],
    ["input_tokens", {}, 200],
    ["cached_input_tokens", {}, 100],
    ["cache_creation_input_tokens", {}, 1],
    ["cached_write_input_tokens", {}, 1],
    ["output_tokens", {}, 20],
    ["total_tokens", {}, 220],
    ["reasoning_tokens", {}, 7],
    // Envoy AI Gateway's own examples (internal/llmcostcel/cel_test.go, api/v1alpha1 docs).
    ["input_tokens * uint(3) + output_tokens", {}, 620],
    [
      "model == 'cool_model' ? (input_tokens - cached_input_tokens - cache_creation_input_tokens) * output_tokens" +
      " : total_tokens",
      {
        model: "cool_model",
        usage: {
          inputTokens: 200,
          cachedInputTokens: 100,
          cacheCreationInputTokens: 1,
          outputTokens: 2,
          totalTokens: 3,
        },
      },
      198,
    ],
    ["int(input_tokens) - int(output_tokens)", {}, 180],
    ["model in {'gpt-4o': 5u} ? {'gpt-4o': 5u}[model] * output_tokens : output_tokens", {}, 100],
    ["[1u, 2u].exists(x, x > reasoning_tokens) ? 1u : 9u", {}, 9],
    ["model.startsWith('gpt') && size(backend) > 3 ? 1u : 0u", {}, 1],
    ["type(input_tokens) == uint ? dyn(input_tokens) : dyn(0u)", {}, 200],
  ];
  for (const [expression, more, expected] of table) {
    assertEquals(evaluateCosts(cel(expression), facts(more)), { values: { cost: expected }, errors: [] }, expression);
  }
});

Deno.test("compileCosts accepts well-typed CEL beyond arithmetic: macros, maps, conversions, timestamps", () => {
  const table: [string, number][] = [
    ["[1u, 2u].map(x, x * input_tokens)[1]", 400],
    ["[1, 2, 3].filter(x, x > 1).size() == 2 ? 1u : 0u", 1],
    ["{'a': 1}.all(k, k == 'a') && [1, 2].exists_one(x, x == 2) ? 1u : 0u", 1],
    ["has({'a': 1u}.a) && !has({'a': 1u}.b) ? 1u : 0u", 1],
    ["uint(1) < 2 && 1.5 > input_tokens / 1000u ? 1u : 0u", 1],
    ["'x' + model == 'xgpt-4o' ? uint(string(input_tokens)) : 0u", 200],
    ["timestamp('2025-01-01T00:00:00Z').getFullYear() == 2025 ? input_tokens % 7u : 0u", 4],
    ["bytes('a') == b'a' && null == null ? int(output_tokens) / 3 : 0", 6],
    ["[input_tokens, output_tokens][0] + {1: output_tokens}[1]", 220],
  ];
  for (const [expression, expected] of table) {
    assertEquals(evaluateCosts(cel(expression), facts()), { values: { cost: expected }, errors: [] }, expression);
  }
});

Deno.test("compileCosts reports config errors with the route and metadataKey, in sentence case", () => {
  const table: [string, RegExp][] = [
    ["1 +", /does not parse: .*expecting/],
    ["foo + 1u", /reads unknown variable "foo" \(known: model, backend, route_name, input_tokens/],
    ["has(foo.bar) ? 1u : 0u", /reads unknown variable "foo"/],
    ["input_tokens * 3", /has no overload of '\*' for \(uint, int\); token counts are uint, so write .* \(3u\)/],
    ["-input_tokens", /has no overload of '-' for \(uint\)/],
    ["max(input_tokens, 1u)", /calls unknown function "max"/],
    ["input_tokens.count", /reads field "count" of a uint, which has no fields/],
    ["model", /must return an int or a uint, not string/],
    ["input_tokens > 10u", /must return an int or a uint, not bool/],
    ["double(input_tokens) * 0.5", /must return an int or a uint, not double/],
    ["model == 'x' ? 'free' : input_tokens", /must return an int or a uint, not string/],
    ["input_tokens ? 1u : 2u", /uses a uint where '\?:' needs a bool/],
    ["[1u].all(x, x) ? 1u : 0u", /uses a uint where '&&' needs a bool/],
    ["model[0]", /cannot index a string with an int/],
    ["model == 'a' ? 1u : model == 'b' ? 2 : 1.5", /must return an int or a uint, not double/],
    ["uint(1) - uint(1200)", /fails on a test run with zero tokens and "dummy" names: uint overflow/],
    ["int(input_tokens) - 1", /fails on a test run with zero tokens and "dummy" names: the result is negative \(-1\)/],
    ["{'gpt-4o': 5u}[model]", /fails on a test run with zero tokens and "dummy" names: field not found: dummy$/],
  ];
  for (const [expression, expected] of table) {
    const result = compileCosts([{ route: ROUTE, metadataKey: "price", type: "CEL", cel: expression }]);
    assert(!result.ok, expression);
    assertEquals(result.errors.length, 1, expression);
    const [error] = result.errors;
    assertEquals([error!.route, error!.metadataKey], [ROUTE, "price"]);
    assertMatch(error!.message, /^CEL cost "price" of route "default\/chat" /);
    assertMatch(error!.message, expected);
  }
});

Deno.test("compileCosts reports every bad cost of a config, and a metadataKey defined twice in a route", () => {
  const result = compileCosts([
    { route: ROUTE, metadataKey: "a", type: "InputToken" },
    { route: ROUTE, metadataKey: "a", type: "OutputToken" },
    { route: "default/other", metadataKey: "a", type: "OutputToken" },
    { route: ROUTE, metadataKey: "b", type: "CEL", cel: "nope" },
    { route: ROUTE, metadataKey: "c", type: "CEL" },
  ]);
  assert(!result.ok);
  assertEquals(result.errors.map((e) => [e.metadataKey, e.message]), [
    ["a", 'Route "default/chat" defines the cost "a" more than once'],
    [
      "b",
      'CEL cost "b" of route "default/chat" reads unknown variable "nope" (known: model, backend, route_name, ' +
      "input_tokens, cached_input_tokens, cache_creation_input_tokens, cached_write_input_tokens, output_tokens, " +
      "total_tokens, reasoning_tokens)",
    ],
    ["c", 'CEL cost "c" of route "default/chat" has no expression'],
  ]);
});

Deno.test("evaluateCosts rejects a negative, non-integer or oversized result with an error and keeps the others", () => {
  const table: [string, RegExp][] = [
    ["int(output_tokens) - int(input_tokens)", /failed: the result is negative \(-180\)$/],
    ["input_tokens == 0u ? dyn(0u) : dyn(1.5)", /failed: the result is a double \(1\.5\), not an int or a uint$/],
    ["input_tokens == 0u ? dyn(0u) : dyn(200.0)", /failed: the result is a double \(200\), not an int or a uint$/],
    ["input_tokens == 0u ? dyn(0u) : dyn('a')", /failed: the result is a string \(a\), not an int or a uint$/],
    ["output_tokens - input_tokens", /failed: uint overflow/],
    ["input_tokens * 100000000000000u", /failed: the result 20000000000000000 is larger than 9007199254740991$/],
  ];
  for (const [expression, expected] of table) {
    const programs = [...cel(expression, "bad"), ...compile({ metadataKey: "in", type: "InputToken" })];
    const { values, errors } = evaluateCosts(programs, facts());
    assertEquals(values, { in: 200 }, expression);
    assertEquals(errors.map((e) => [e.route, e.metadataKey]), [[ROUTE, "bad"]]);
    assertMatch(errors[0]!.message, /^CEL cost "bad" of route "default\/chat" failed: /);
    assertMatch(errors[0]!.message, expected);
  }
});

Deno.test("evaluateCosts leaves a cost absent, not 0, when the counts it needs were not reported", () => {
  const table: [string, Omit<CompiledCost, "route" | "metadataKey">, Partial<CostFacts>, number | undefined][] = [
    ["token type, nothing reported", { type: "InputToken" }, { usage: {} }, undefined],
    ["token type, another count reported", { type: "ReasoningToken" }, { usage: { outputTokens: 3 } }, undefined],
    ["token type, reported as 0", { type: "OutputToken" }, { usage: { outputTokens: 0 } }, 0],
    [
      "CEL reading only unreported counts",
      { type: "CEL", cel: "input_tokens + output_tokens" },
      { usage: {} },
      undefined,
    ],
    // Envoy AI Gateway reads an unreported count as 0; so do we while the evaluation read something reported.
    ["CEL reading a reported count", { type: "CEL", cel: "input_tokens + cached_input_tokens" }, {
      usage: { inputTokens: 9 },
    }, 9],
    ["CEL reading no count", { type: "CEL", cel: "uint(7)" }, { usage: {} }, 7],
    ["CEL whose taken branch reads no count", { type: "CEL", cel: "model == 'x' ? input_tokens : 5u" }, {
      usage: {},
    }, 5],
    ["CEL whose taken branch reads an unreported count", { type: "CEL", cel: "model == 'x' ? input_tokens : 5u" }, {
      model: "x",
      usage: { outputTokens: 1 },
    }, undefined],
  ];
  for (const [name, cost, more, expected] of table) {
    const result = evaluateCosts(compile({ metadataKey: "k", ...cost }), facts(more));
    assertEquals(result, { values: expected === undefined ? {} : { k: expected }, errors: [] }, name);
  }
});

Deno.test("compileCosts compiles an expression once for every route that uses it, and names each route", () => {
  const text = "input_tokens * 3u + output_tokens";
  const result = compileCosts(
    ["default/a", "default/b"].map((route) => ({ route, metadataKey: "k", type: "CEL", cel: text })),
  );
  if (!result.ok) throw new Error(result.errors.map((e) => e.message).join("\n"));
  const [a, b] = result.costs;
  assert(a?.type === "CEL" && b?.type === "CEL", "expected two CEL programs");
  assertEquals([a.route, b.route], ["default/a", "default/b"]);
  assert(a.run === b.run, "the expression was compiled twice");
  assertEquals(evaluateCosts([b], facts()).values, { k: 620 });

  // A bad expression is refused again (it was remembered as bad), naming the route that uses it each time.
  for (const route of ["default/a", "default/b"]) {
    const bad = compileCosts([{ route, metadataKey: "k", type: "CEL", cel: "input_tokens * 3" }]);
    assert(!bad.ok, "a signed multiplier was accepted");
    assertMatch(bad.errors[0]!.message, new RegExp(`^CEL cost "k" of route "${route}" `));
  }
});
