import { assertEquals, assertMatch } from "../../test/support/assert.ts";
import { evaluateRouting, formatRoutingEvaluation, parseRoutingDataset } from "./routing_eval.ts";

const DATA = `{"query": "2+2", "category": "math"}
// a comment
{"query": "3*3", "category": "math"}
{"query": "Caesar", "category": "history"}

{"query": "Napoleon", "category": "history"}
`;

/** Says math for anything with a digit, with the confidence given per query. */
const classify = (q: string) =>
  Promise.resolve({
    category: /\d/.test(q) || q === "Napoleon" ? "math" : "history",
    confidence: q === "3*3" ? 0.2 : 0.9,
  });

Deno.test("parseRoutingDataset reads query/category lines, skipping blanks and comments", () => {
  assertEquals(parseRoutingDataset(DATA).length, 4);
  let message = "";
  try {
    parseRoutingDataset(`{"query": 1, "category": "x"}`);
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(message, 'Invalid routing dataset line 1: "query" and "category" must be strings');
});

Deno.test("evaluateRouting computes accuracy, threshold coverage, precision, recall and the confusion matrix", async () => {
  const e = await evaluateRouting(parseRoutingDataset(DATA), classify, {
    threshold: 0.5,
    categories: ["math", "history", "law"],
  });
  assertEquals([e.rows, e.correct, e.accuracy], [4, 3, 0.75]);
  assertEquals([e.confident, e.confidentCorrect], [3, 2]);
  assertEquals(e.categories, ["math", "history", "law"]);
  assertEquals(e.confusion, [[2, 0, 0], [1, 1, 0], [0, 0, 0]]);
  const math = e.perCategory[0]!;
  assertEquals([math.precision, math.recall], [2 / 3, 1]);
  const history = e.perCategory[1]!;
  assertEquals([history.precision, history.recall], [1, 0.5]);
  assertEquals(e.perCategory[2]!.predicted, 0);
  assertEquals(e.mistakes, [{ query: "Napoleon", expected: "history", predicted: "math", confidence: 0.9 }]);
  const text = formatRoutingEvaluation(e);
  assertMatch(text, /accuracy 75\.0% \(3\/4\)/);
  assertMatch(text, /history -> math \(0\.90\): Napoleon/);
});
