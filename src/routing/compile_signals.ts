// The signal half of compiling a SemanticRouter: the classifier (its training texts) and decision conditions, whose
// names must exist among the categories and signals. Errors go through `fail`, located at their field.
import { durationMs } from "../control/resources/common.ts";
import type { PathSegment } from "../control/resources/errors.ts";
import type { SemanticRouter } from "../control/resources/resource.ts";
import type { ConditionSpec } from "../control/resources/semantic_router.ts";
import { DEFAULT_EPOCHS, DEFAULT_L2 } from "./category_classifier.ts";
import type { ClassifierConfig, Condition } from "./config.ts";

export type Fail = (path: PathSegment[], message: string) => void;

/** Examples and description phrases become training text; a description is split at commas, semicolons, lines. */
export function compileClassifier(r: SemanticRouter, fail: Fail): ClassifierConfig {
  const spec = r.spec;
  const examples = (spec.categories ?? []).flatMap((c) =>
    [
      ...(c.examples ?? []),
      ...(c.description ?? "").split(/[,;\n]/).map((p) => p.trim()).filter((p) => p.length > 0),
    ].map((text) => ({ category: c.name, text }))
  );
  const type = spec.classifier?.type ?? (examples.length > 0 ? "builtin" : "none");
  if (type === "remote") {
    const remote = spec.classifier?.remote;
    if (!remote) {
      fail(["classifier", "remote"], "A remote classifier needs remote.url");
      return { kind: "none" };
    }
    return { kind: "remote", url: remote.url, timeoutMs: remote.timeout ? durationMs(remote.timeout) : 500 };
  }
  if (type === "none") return { kind: "none" };
  const labelled = new Set(examples.map((e) => e.category));
  if (labelled.size < 2) {
    fail(["categories"], "The built-in classifier needs examples or a description for at least two categories");
  }
  (spec.categories ?? []).forEach((c, i) => {
    if (!labelled.has(c.name)) fail(["categories", i], `Category "${c.name}" has no examples and no description`);
  });
  return {
    kind: "builtin",
    examples,
    l2: spec.classifier?.l2 ?? DEFAULT_L2,
    epochs: spec.classifier?.epochs ?? DEFAULT_EPOCHS,
  };
}

export function compileCondition(
  c: ConditionSpec,
  path: PathSegment[],
  names: Record<"category" | "keyword" | "embedding" | "context", ReadonlySet<string>>,
  fail: Fail,
): Condition {
  const known = (kind: "category" | "keyword" | "embedding" | "context", name: string) => {
    if (!names[kind].has(name)) {
      fail([...path, kind], `No ${kind}${kind === "category" ? "" : " signal"} is named "${name}"`);
    }
  };
  if (c.category !== undefined) {
    known("category", c.category);
    return c.minConfidence === undefined
      ? { category: c.category }
      : { category: c.category, minConfidence: c.minConfidence };
  }
  if (c.keyword !== undefined) return known("keyword", c.keyword), { keyword: c.keyword };
  if (c.embedding !== undefined) return known("embedding", c.embedding), { embedding: c.embedding };
  if (c.context !== undefined) return known("context", c.context), { context: c.context };
  if (c.all) return { all: c.all.map((x, i) => compileCondition(x, [...path, "all", i], names, fail)) };
  if (c.any) return { any: c.any.map((x, i) => compileCondition(x, [...path, "any", i], names, fail)) };
  return { not: compileCondition(c.not!, [...path, "not"], names, fail) };
}
