// Request costs (AIGatewayRoute spec.llmRequestCosts): compiled once when a config is loaded, evaluated at the end of
// a response. Only the caller knows when a response ends well: it evaluates costs and writes them to dynamic metadata
// (namespace io.envoy.ai_gateway, one key per metadataKey) only at the end of a 2xx response, as Envoy AI Gateway does,
// so a failed or cut-off response never feeds a token budget.
//
// CEL follows Envoy AI Gateway (internal/llmcostcel): the token variables are uint, so `input_tokens * 3` does not
// type-check and `input_tokens * 3u` does; the result must be an int ≥ 0 or a uint; a double is refused; every
// expression is also run once on a zero-token response at config time. @bufbuild/cel 0.6.1 has no public type
// checker (bufbuild/cel-es#129), so `checkType` below infers types from the environment's own overload table and
// answers `dyn` where it cannot know; what it lets through, the evaluation-time checks still catch.
import {
  celEnv,
  type CelMapType,
  type CelResult,
  CelScalar,
  type CelType,
  celType,
  type CelUint,
  celUint,
  isCelError,
  isCelUint,
  listType,
  mapType,
  parse,
  plan,
} from "@bufbuild/cel";
import type { CompiledCost } from "../control/compile/compiled.ts";
import type { LLMRequestCostType } from "../control/resources/ai_gateway_route.ts";
import type { TokenUsage } from "../protocol/usage.ts";

/** The CEL variables holding token counts, and the TokenUsage field each reads. */
const TOKEN_VARIABLES = {
  input_tokens: "inputTokens",
  cached_input_tokens: "cachedInputTokens",
  cache_creation_input_tokens: "cacheCreationInputTokens",
  /** Envoy AI Gateway v1alpha1's name for cache_creation_input_tokens, kept so its expressions still compile. */
  cached_write_input_tokens: "cacheCreationInputTokens",
  output_tokens: "outputTokens",
  total_tokens: "totalTokens",
  reasoning_tokens: "reasoningTokens",
} as const satisfies Record<string, keyof TokenUsage>;
type TokenVariable = keyof typeof TOKEN_VARIABLES;

const TOKEN_COSTS = {
  InputToken: "inputTokens",
  CachedInputToken: "cachedInputTokens",
  CacheCreationInputToken: "cacheCreationInputTokens",
  CachedWriteInputToken: "cacheCreationInputTokens",
  OutputToken: "outputTokens",
  TotalToken: "totalTokens",
  ReasoningToken: "reasoningTokens",
} as const satisfies Record<Exclude<LLMRequestCostType, "CEL">, keyof TokenUsage>;

const U = CelScalar.UINT;
const env = celEnv({
  variables: {
    model: CelScalar.STRING,
    backend: CelScalar.STRING,
    route_name: CelScalar.STRING,
    input_tokens: U,
    cached_input_tokens: U,
    cache_creation_input_tokens: U,
    cached_write_input_tokens: U,
    output_tokens: U,
    total_tokens: U,
    reasoning_tokens: U,
  },
});
const VARIABLE_NAMES = [...env.variables].map(([name]) => name).join(", ");

/** What a cost expression reads. `model`, `backend` and `route_name` are passed through as the caller gives them:
 * Envoy AI Gateway sets model from the x-ai-eg-model header, backend as "name.namespace" and route_name as
 * "namespace/name", and expressions written for it compare against those forms. */
export interface CostFacts {
  readonly model: string;
  readonly backend: string;
  readonly routeName: string;
  readonly usage: TokenUsage;
}

export type CostProgram =
  | {
    readonly route: string;
    readonly metadataKey: string;
    readonly type: Exclude<LLMRequestCostType, "CEL">;
    readonly field: keyof TokenUsage;
  }
  | {
    readonly route: string;
    readonly metadataKey: string;
    readonly type: "CEL";
    readonly cel: string;
    readonly run: (bindings: CostBindings) => CelResult;
  };

export interface CostError {
  readonly route: string;
  readonly metadataKey: string;
  /** Sentence case; names the route and the metadataKey. */
  readonly message: string;
}

export type CompileCostsResult =
  | { readonly ok: true; readonly costs: CostProgram[] }
  | { readonly ok: false; readonly errors: CostError[] };

export function compileCosts(costs: readonly CompiledCost[]): CompileCostsResult {
  const out: CostProgram[] = [];
  const errors: CostError[] = [];
  const seen = new Set<string>();
  for (const cost of costs) {
    const { route, metadataKey } = cost;
    const id = `${route}\u0000${metadataKey}`;
    if (seen.has(id)) {
      errors.push({ route, metadataKey, message: `Route "${route}" defines the cost "${metadataKey}" more than once` });
      continue;
    }
    seen.add(id);
    const program = compileCost(cost);
    if (typeof program === "string") errors.push({ route, metadataKey, message: program });
    else out.push(program);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, costs: out };
}

function compileCost(cost: CompiledCost): CostProgram | string {
  const { route, metadataKey } = cost;
  if (cost.type !== "CEL") return { route, metadataKey, type: cost.type, field: TOKEN_COSTS[cost.type] };
  const what = () => `CEL cost "${metadataKey}" of route "${route}"`;
  if (cost.cel === undefined) return `${what()} has no expression`;
  const outcome = celProgram(cost.cel);
  if ("problem" in outcome) return `${what()} ${outcome.problem}`;
  return { route, metadataKey, type: "CEL", cel: cost.cel, run: outcome.run };
}

type CelOutcome = { readonly run: (bindings: CostBindings) => CelResult } | { readonly problem: string };

/**
 * Compiled expressions by their text. Compiling one takes a few hundred microseconds (parse, type inference, plan,
 * the zero-token run), and every config load compiles every route's costs — the controller on each change and each
 * sidecar on each snapshot: with thousands of routes that was the larger part of a change's time. Routes mostly
 * share a few expressions, and a change leaves most of them as they were. A plan is a pure function of its text.
 */
const celPrograms = new Map<string, CelOutcome>();
const KEPT_CEL_PROGRAMS = 10_000;

function celProgram(text: string): CelOutcome {
  let outcome = celPrograms.get(text);
  if (outcome) return outcome;
  outcome = compileCel(text);
  celPrograms.set(text, outcome);
  if (celPrograms.size > KEPT_CEL_PROGRAMS) celPrograms.delete(celPrograms.keys().next().value!);
  return outcome;
}

function compileCel(text: string): CelOutcome {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(text);
  } catch (e) {
    return { problem: `does not parse: ${e instanceof Error ? e.message : String(e)}` };
  }
  try {
    for (const t of resultTypes(parsed.expr, new Map())) {
      if (!isScalar(t, "int", "uint", "dyn")) return { problem: `must return an int or a uint, not ${t}` };
    }
  } catch (e) {
    if (e instanceof CelTypeError) return { problem: e.message };
    throw e;
  }
  const run: (bindings: CostBindings) => CelResult = plan(env, parsed);
  // Envoy AI Gateway's sanity check, with its values: an expression that cannot price an empty response is a config
  // error.
  const zero = costValue(
    run(new CostBindings({ model: "dummy", backend: "dummy", routeName: "dummy", usage: ZERO_USAGE })),
  );
  if (typeof zero === "string") return { problem: `fails on a test run with zero tokens and "dummy" names: ${zero}` };
  return { run };
}

const ZERO_USAGE: TokenUsage = Object.fromEntries(Object.values(TOKEN_COSTS).map((f) => [f, 0]));

export interface CostEvaluation {
  /** metadataKey → non-negative integer; a cost that could not be computed is absent, never 0. */
  readonly values: Record<string, number>;
  readonly errors: CostError[];
}

/**
 * The costs of one response. `programs` are the costs of the route that served it.
 *
 * A token-type cost whose count the provider did not report is absent. A CEL cost reads an unreported count as 0, as
 * Envoy AI Gateway does (so `input_tokens - cached_input_tokens` prices a provider that never reports cache reads),
 * except that when every count the evaluation read was unreported, the cost is absent: it would be a made-up 0.
 */
export function evaluateCosts(programs: readonly CostProgram[], facts: CostFacts): CostEvaluation {
  const values: Record<string, number> = {};
  const errors: CostError[] = [];
  for (const p of programs) {
    if (p.type !== "CEL") {
      const n = facts.usage[p.field];
      if (n !== undefined) values[p.metadataKey] = n;
      continue;
    }
    const bindings = new CostBindings(facts);
    const value = costValue(p.run(bindings));
    if (bindings.readUnreported && !bindings.readReported) continue;
    if (typeof value === "number") values[p.metadataKey] = value;
    else {
      const message = `CEL cost "${p.metadataKey}" of route "${p.route}" failed: ${value}`;
      errors.push({ route: p.route, metadataKey: p.metadataKey, message });
    }
  }
  return { values, errors };
}

/** The result as a cost, or why it is not one. */
function costValue(result: CelResult): number | string {
  if (isCelError(result)) return result.message;
  let n: bigint;
  if (isCelUint(result)) n = result.value;
  else if (typeof result === "bigint") n = result;
  else return `the result is ${withArticle(celType(result))} (${String(result)}), not an int or a uint`;
  if (n < 0n) return `the result is negative (${n})`;
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) return `the result ${n} is larger than ${Number.MAX_SAFE_INTEGER}`;
  return Number(n);
}

/** The variables of one evaluation. Token counts are getters so the evaluation can tell which counts it read. */
export class CostBindings {
  readonly model: string;
  readonly backend: string;
  readonly route_name: string;
  readReported = false;
  readUnreported = false;
  readonly #usage: TokenUsage;

  constructor(facts: CostFacts) {
    this.model = facts.model;
    this.backend = facts.backend;
    this.route_name = facts.routeName;
    this.#usage = facts.usage;
  }

  #count(variable: TokenVariable): CelUint {
    const n = this.#usage[TOKEN_VARIABLES[variable]];
    if (n === undefined) this.readUnreported = true;
    else this.readReported = true;
    return celUint(BigInt(n ?? 0));
  }
  get input_tokens(): CelUint {
    return this.#count("input_tokens");
  }
  get cached_input_tokens(): CelUint {
    return this.#count("cached_input_tokens");
  }
  get cache_creation_input_tokens(): CelUint {
    return this.#count("cache_creation_input_tokens");
  }
  get cached_write_input_tokens(): CelUint {
    return this.#count("cached_write_input_tokens");
  }
  get output_tokens(): CelUint {
    return this.#count("output_tokens");
  }
  get total_tokens(): CelUint {
    return this.#count("total_tokens");
  }
  get reasoning_tokens(): CelUint {
    return this.#count("reasoning_tokens");
  }
}

// Type inference over the parsed expression. Only what is certainly wrong is an error: an unknown name, an operator
// with no overload for the argument types it is given, a result type that can never be a cost.

type Expr = ReturnType<typeof parse>["expr"];
type Scope = ReadonlyMap<string, CelType>;
const DYN = CelScalar.DYN;
const TYPE_NAMES = new Set("int uint double bool string bytes list map null_type type dyn".split(" "));

class CelTypeError extends Error {
  override readonly name = "CelTypeError";
}

/** The types the expression can return: the branches of a top-level conditional are kept apart. */
function resultTypes(e: Expr, scope: Scope): CelType[] {
  const k = e.exprKind;
  if (k.case === "callExpr" && k.value.function === "_?_:_" && k.value.args.length === 3) {
    const [cond, a, b] = k.value.args as [Expr, Expr, Expr];
    expectBool(checkType(cond, scope), "?:");
    return [...resultTypes(a, scope), ...resultTypes(b, scope)];
  }
  return [checkType(e, scope)];
}

function checkType(e: Expr, scope: Scope): CelType {
  const k = e.exprKind;
  switch (k.case) {
    case "constExpr":
      return CONSTANT_TYPES[k.value.constantKind.case ?? ""] ?? DYN;
    case "identExpr": {
      const name = k.value.name;
      const t = scope.get(name) ?? env.variables.find(name) ?? (TYPE_NAMES.has(name) ? CelScalar.TYPE : undefined);
      if (t === undefined) throw new CelTypeError(`reads unknown variable "${name}" (known: ${VARIABLE_NAMES})`);
      return t;
    }
    case "selectExpr": {
      const operand = k.value.operand ? checkType(k.value.operand, scope) : DYN;
      if (operand.kind === "map") return k.value.testOnly ? CelScalar.BOOL : operand.value;
      if (isScalar(operand, "dyn") || operand.kind === "object") return k.value.testOnly ? CelScalar.BOOL : DYN;
      throw new CelTypeError(`reads field "${k.value.field}" of ${withArticle(operand)}, which has no fields`);
    }
    case "callExpr": {
      const target = k.value.target ? checkType(k.value.target, scope) : undefined;
      return callType(k.value.function, target, k.value.args.map((a) => checkType(a, scope)));
    }
    case "listExpr":
      return listType(common(k.value.elements.map((x) => checkType(x, scope))));
    case "structExpr": {
      if (k.value.messageName !== "") throw new CelTypeError(`builds a ${k.value.messageName} message`);
      const keys: CelType[] = [];
      const values: CelType[] = [];
      for (const entry of k.value.entries) {
        if (entry.keyKind.case === "mapKey") keys.push(checkType(entry.keyKind.value, scope));
        if (entry.value) values.push(checkType(entry.value, scope));
      }
      return mapType(mapKey(common(keys)), common(values));
    }
    case "comprehensionExpr": {
      const c = k.value;
      const range = c.iterRange ? checkType(c.iterRange, scope) : DYN;
      const iter = range.kind === "list" ? range.element : range.kind === "map" ? range.key : DYN;
      const accu = c.accuInit ? checkType(c.accuInit, scope) : DYN;
      const inner = new Map(scope).set(c.iterVar, iter).set(c.accuVar, accu);
      if (c.iterVar2 !== "") inner.set(c.iterVar2, DYN);
      for (const x of [c.loopCondition, c.loopStep]) if (x) checkType(x, inner);
      return c.result ? checkType(c.result, new Map(scope).set(c.accuVar, accu)) : DYN;
    }
    default:
      throw new CelTypeError("has an empty expression");
  }
}

function callType(fn: string, target: CelType | undefined, args: CelType[]): CelType {
  // The operators the planner implements itself; every other function is in the environment with its overloads.
  if (fn === "_&&_" || fn === "_||_" || fn === "@not_strictly_false") {
    for (const a of args) expectBool(a, fn);
    return CelScalar.BOOL;
  }
  if (fn === "_?_:_" && args.length === 3) {
    expectBool(args[0]!, "?:");
    return common(args.slice(1));
  }
  if (fn === "_[_]" && args.length === 2) {
    const [container, index] = args as [CelType, CelType];
    if (container.kind === "list" && isScalar(index, "int", "uint", "dyn")) return container.element;
    if (container.kind === "map") return container.value;
    if (isScalar(container, "dyn")) return DYN;
    throw new CelTypeError(`cannot index ${withArticle(container)} with ${withArticle(index)}`);
  }
  const group = env.funcs.find(fn);
  if (!group) throw new CelTypeError(`calls unknown function "${fn}"`);
  const results: CelType[] = [];
  for (const f of group) {
    if ((f.target === undefined) !== (target === undefined) || f.arguments.length !== args.length) continue;
    if (f.target && target && !assignable(f.target, target)) continue;
    if (f.arguments.every((p, i) => assignable(p, args[i]!))) results.push(f.result);
  }
  if (results.length === 0) {
    const types = [...(target ? [target] : []), ...args].join(", ");
    const hint = args.some((a) => isScalar(a, "uint")) && args.some((a) => isScalar(a, "int"))
      ? "; token counts are uint, so write numbers as uint literals (3u)"
      : "";
    throw new CelTypeError(`has no overload of '${opName(fn)}' for (${types})${hint}`);
  }
  return common(results);
}

function expectBool(t: CelType, op: string): void {
  if (!isScalar(t, "bool", "dyn")) throw new CelTypeError(`uses ${withArticle(t)} where '${opName(op)}' needs a bool`);
}

/** `_*_` → `*`, `@in` → `in`, the macros' `@not_strictly_false` → `all`; function names unchanged. */
function opName(fn: string): string {
  if (fn === "@not_strictly_false") return "all";
  return /^[_@!-]|_$/.test(fn) ? fn.replaceAll("_", "").replace("@", "") : fn;
}

function withArticle(t: CelType): string {
  return `${String(t).startsWith("int") ? "an" : "a"} ${t}`;
}

function mapKey(t: CelType): CelMapType["key"] {
  return t.kind === "scalar" && ["int", "uint", "bool", "string"].includes(t.scalar) ? t as CelMapType["key"] : DYN;
}

function assignable(param: CelType, arg: CelType): boolean {
  if (isScalar(param, "dyn") || isScalar(arg, "dyn")) return true;
  if (param.kind === "list" && arg.kind === "list") return assignable(param.element, arg.element);
  if (param.kind === "map" && arg.kind === "map") {
    return assignable(param.key, arg.key) && assignable(param.value, arg.value);
  }
  return param.kind === arg.kind && param.name === arg.name;
}

/** The one type all of `types` share, else dyn (CEL's heterogeneous lists and maps). */
function common(types: readonly CelType[]): CelType {
  const [first, ...rest] = types;
  if (!first) return DYN;
  return rest.every((t) => String(t) === String(first)) ? first : DYN;
}

function isScalar(t: CelType, ...names: string[]): boolean {
  return t.kind === "scalar" && names.includes(t.scalar);
}

const CONSTANT_TYPES: Readonly<Record<string, CelType>> = {
  boolValue: CelScalar.BOOL,
  int64Value: CelScalar.INT,
  uint64Value: U,
  doubleValue: CelScalar.DOUBLE,
  stringValue: CelScalar.STRING,
  bytesValue: CelScalar.BYTES,
  nullValue: CelScalar.NULL,
};
