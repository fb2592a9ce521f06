import { assert, assertEquals } from "../../test/support/assert.ts";
import { trainCategoryClassifier, trainCategoryClassifierAsync } from "./category_classifier.ts";
import { featureCounts, fitVectorizer } from "./text_features.ts";

const EXAMPLES = [
  { category: "math", text: "What is the derivative of x squared?" },
  { category: "math", text: "Solve the quadratic equation for x." },
  { category: "math", text: "Compute the integral of a polynomial." },
  { category: "math", text: "How many prime numbers are below twenty?" },
  { category: "cooking", text: "How long should I boil an egg?" },
  { category: "cooking", text: "What spices go into a curry?" },
  { category: "cooking", text: "How do I bake sourdough bread?" },
  { category: "cooking", text: "Which oil is best for frying vegetables?" },
];

Deno.test("featureCounts gives words, bigrams without stop words, character n-grams and symbols", () => {
  const f = featureCounts("What is 2 + 2 = Photosynthesis?");
  assert(f.has("w:photosynthesis"));
  assert(!f.has("w:what") && !f.has("w:is"), "stop words are dropped");
  assertEquals(f.get("w:#"), 2);
  assert(f.has("b:# #") && f.has("b:# photosynthesis"));
  assert(f.has("c: ph") && f.has("c:sis ") && f.has("c:synth"));
  assertEquals([f.get("s:+"), f.get("s:=")], [1, 1]);
});

Deno.test("fitVectorizer drops features unseen in training and L2-normalises", () => {
  const v = fitVectorizer(["integral of a polynomial", "boil an egg"]);
  const x = v.vectorize("integral unseenword");
  assert(x.indices.length > 0);
  const norm = x.values.reduce((a, b) => a + b * b, 0);
  assert(Math.abs(norm - 1) < 1e-9, `norm ${norm}`);
  assertEquals(v.vectorize("zzzz qqqq").indices.length, 0);
});

Deno.test("trainCategoryClassifier learns categories and generalises to unseen words' shared n-grams", () => {
  const c = trainCategoryClassifier(EXAMPLES);
  assertEquals(c.categories, ["math", "cooking"]);
  const math = c.classify("Find the derivative of this polynomial");
  assertEquals(math.category, "math");
  const cooking = c.classify("Can I fry an egg in olive oil?");
  assertEquals(cooking.category, "cooking");
  assert(cooking.confidence > 0.5 && cooking.confidence <= 1);
  const sum = [...cooking.probabilities.values()].reduce((a, b) => a + b, 0);
  assert(Math.abs(sum - 1) < 1e-9, `probabilities sum to ${sum}`);
});

Deno.test("trainCategoryClassifier is deterministic and unsure of text it has no features for", () => {
  const a = trainCategoryClassifier(EXAMPLES).classify("derivative of an egg");
  const b = trainCategoryClassifier(EXAMPLES).classify("derivative of an egg");
  assertEquals(a, b);
  const unknown = trainCategoryClassifier(EXAMPLES).classify("zzzz qqqq");
  assert(unknown.confidence < 0.6, `confidence ${unknown.confidence} for featureless text`);
});

Deno.test("trainCategoryClassifier refuses to train without examples", () => {
  let message = "";
  try {
    trainCategoryClassifier([]);
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(message, "Cannot train the category classifier: there are no examples");
});

Deno.test("trainCategoryClassifierAsync trains the same model while giving the event loop back", async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  const trained = await trainCategoryClassifierAsync(EXAMPLES, { epochs: 30 });
  clearInterval(timer);
  assert(ticks > 0, "other work ran during training");
  const sync = trainCategoryClassifier(EXAMPLES, { epochs: 30 });
  assertEquals(trained.classify("fry an egg"), sync.classify("fry an egg"));
});
