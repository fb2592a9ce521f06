import { assertEquals } from "../../test/support/assert.ts";
import type { DecisionConfig } from "./config.ts";
import { firstDecision, holds, type SignalValues } from "./decisions.ts";

const signals = (o: Partial<SignalValues> = {}): SignalValues => ({
  classification: { category: "math", confidence: 0.6 },
  confidenceThreshold: 0.5,
  keywords: new Set(["urgent"]),
  embeddings: new Set(["support"]),
  contexts: new Set(),
  ...o,
});

Deno.test("a category condition needs the top category with enough confidence", () => {
  assertEquals(holds({ category: "math" }, signals()), true);
  assertEquals(holds({ category: "math", minConfidence: 0.7 }, signals()), false);
  assertEquals(holds({ category: "law" }, signals()), false);
  assertEquals(holds({ category: "math" }, signals({ confidenceThreshold: 0.65 })), false);
  const { classification: _, ...noClassifier } = signals();
  assertEquals(holds({ category: "math" }, noClassifier), false);
});

Deno.test("all, any and not combine signals", () => {
  const s = signals();
  assertEquals(holds({ all: [{ keyword: "urgent" }, { embedding: "support" }] }, s), true);
  assertEquals(holds({ all: [{ keyword: "urgent" }, { context: "long" }] }, s), false);
  assertEquals(holds({ any: [{ context: "long" }, { keyword: "urgent" }] }, s), true);
  assertEquals(holds({ not: { keyword: "urgent" } }, s), false);
  assertEquals(holds({ all: [{ not: { context: "long" } }, { any: [{ category: "math" }] }] }, s), true);
});

Deno.test("the highest-priority decision that holds wins; ties keep config order", () => {
  const d = (name: string, priority: number, when: DecisionConfig["when"]): DecisionConfig => ({
    name,
    priority,
    when,
    models: [],
  });
  // Compiled decisions arrive sorted by priority, highest first.
  const decisions = [
    d("long", 300, { context: "long" }),
    d("urgent-a", 100, { keyword: "urgent" }),
    d("urgent-b", 100, { keyword: "urgent" }),
  ];
  assertEquals(firstDecision(decisions, signals())?.name, "urgent-a");
  assertEquals(firstDecision(decisions, signals({ contexts: new Set(["long"]) }))?.name, "long");
  assertEquals(firstDecision(decisions, signals({ keywords: new Set() })), undefined);
});
