// The built-in category classifier: multinomial logistic regression over TF-IDF features, trained at start-up from
// the labelled examples of the config. Deterministic (zero initial weights, full-batch Adam), so every sidecar
// trains the same model from the same config. The softmax probability of the top category is the confidence the
// decision compares with its threshold.
import { featureCounts, type SparseVector, type Vectorizer, vectorizerOf } from "./text_features.ts";

export interface Classification {
  readonly category: string;
  readonly confidence: number;
  /** Probability per category, in the classifier's category order. */
  readonly probabilities: ReadonlyMap<string, number>;
}

export interface CategoryClassifier {
  readonly categories: readonly string[];
  classify(text: string): Classification;
}

/** Tuned on the shipped MMLU-Pro example (see docs/semantic-routing.md); stronger L2 flattens the confidences. */
export const DEFAULT_L2 = 3e-5;
export const DEFAULT_EPOCHS = 60;

export interface TrainingOptions {
  /** L2 penalty on the weights (per example, as in the mean loss). */
  readonly l2?: number;
  readonly epochs?: number;
  readonly learningRate?: number;
}

export interface LabelledText {
  readonly category: string;
  readonly text: string;
}

export function trainCategoryClassifier(
  examples: readonly LabelledText[],
  options: TrainingOptions = {},
): CategoryClassifier {
  const steps = training(examples, options);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * The same training, giving the event loop back between steps (a few milliseconds each): a sidecar that loads a
 * new config keeps answering its open streams while the classifier trains.
 */
export async function trainCategoryClassifierAsync(
  examples: readonly LabelledText[],
  options: TrainingOptions = {},
): Promise<CategoryClassifier> {
  const steps = training(examples, options);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
}

/** Training as resumable steps: counting features in slices of texts, then one step per epoch. */
function* training(examples: readonly LabelledText[], options: TrainingOptions): Generator<void, CategoryClassifier> {
  if (examples.length === 0) throw new Error("Cannot train the category classifier: there are no examples");
  const categories = [...new Set(examples.map((e) => e.category))];
  const k = categories.length;
  const counted = [];
  for (const e of examples) {
    counted.push(featureCounts(e.text));
    if (counted.length % 200 === 0) yield;
  }
  const vectorizer = vectorizerOf(counted);
  const xs = counted.map((c) => vectorizer.vectorizeCounts(c));
  const ys = examples.map((e) => categories.indexOf(e.category));
  yield;
  const { weights, bias } = yield* fit(xs, ys, k, vectorizer.size, {
    l2: options.l2 ?? DEFAULT_L2,
    epochs: options.epochs ?? DEFAULT_EPOCHS,
    learningRate: options.learningRate ?? 0.1,
  });
  return new LinearClassifier(categories, vectorizer, weights, bias);
}

class LinearClassifier implements CategoryClassifier {
  readonly categories: readonly string[];
  readonly #vectorizer: Vectorizer;
  readonly #weights: Float32Array;
  readonly #bias: Float64Array;

  constructor(categories: readonly string[], vectorizer: Vectorizer, weights: Float32Array, bias: Float64Array) {
    this.categories = categories;
    this.#vectorizer = vectorizer;
    this.#weights = weights;
    this.#bias = bias;
  }

  classify(text: string): Classification {
    const k = this.categories.length;
    const p = softmax(logits(this.#vectorizer.vectorize(text), this.#weights, this.#bias, k));
    let best = 0;
    for (let c = 1; c < k; c++) if (p[c]! > p[best]!) best = c;
    return {
      category: this.categories[best]!,
      confidence: p[best]!,
      probabilities: new Map(this.categories.map((name, c) => [name, p[c]!])),
    };
  }
}

/** Weights are feature-major (k contiguous weights per feature), so a sparse row touches contiguous memory. */
function logits(
  x: SparseVector,
  w: Float32Array | Float64Array,
  bias: Float64Array,
  k: number,
  z = new Float64Array(k),
): Float64Array {
  z.set(bias);
  for (let n = 0; n < x.indices.length; n++) {
    const base = x.indices[n]! * k;
    const v = x.values[n]!;
    for (let c = 0; c < k; c++) z[c]! += v * w[base + c]!;
  }
  return z;
}

/** In place when `out` is `z`. */
function softmax(z: Float64Array, out = new Float64Array(z.length)): Float64Array {
  let max = -Infinity;
  for (const v of z) if (v > max) max = v;
  let sum = 0;
  for (let c = 0; c < z.length; c++) sum += out[c] = Math.exp(z[c]! - max);
  for (let c = 0; c < z.length; c++) out[c]! /= sum;
  return out;
}

interface FitOptions {
  readonly l2: number;
  readonly epochs: number;
  readonly learningRate: number;
}

/**
 * Minimises mean cross-entropy + l2/2·|W|² with full-batch Adam; the loss is convex, so zeros are a fine start. The
 * bias is fixed at the log prior of each category: a text with no known feature gets the training distribution,
 * not whatever the bias drifted to (with balanced examples, a featureless text is as unsure as it can be).
 */
function* fit(
  xs: readonly SparseVector[],
  ys: readonly number[],
  k: number,
  features: number,
  o: FitOptions,
): Generator<void, { weights: Float32Array; bias: Float64Array }> {
  const size = features * k;
  const w = new Float64Array(size);
  const b = new Float64Array(k);
  for (const y of ys) b[y]! += 1;
  for (let c = 0; c < k; c++) b[c] = Math.log(b[c]! / xs.length);
  const gw = new Float64Array(size);
  const mw = new Float64Array(size);
  const vw = new Float64Array(size);
  const beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  const m = xs.length;
  const p = new Float64Array(k);
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    for (let i = 0; i < size; i++) gw[i] = o.l2 * w[i]!;
    for (let i = 0; i < m; i++) {
      const x = xs[i]!;
      softmax(logits(x, w, b, k, p), p);
      p[ys[i]!]! -= 1;
      for (let n = 0; n < x.indices.length; n++) {
        const base = x.indices[n]! * k;
        const v = x.values[n]! / m;
        for (let c = 0; c < k; c++) gw[base + c]! += v * p[c]!;
      }
    }
    const lr = o.learningRate * Math.sqrt(1 - beta2 ** epoch) / (1 - beta1 ** epoch);
    adam(w, gw, mw, vw, lr, beta1, beta2, eps);
    yield;
  }
  return { weights: Float32Array.from(w), bias: b };
}

function adam(
  p: Float64Array,
  g: Float64Array,
  m: Float64Array,
  v: Float64Array,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
): void {
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]!;
    const mi = m[i] = beta1 * m[i]! + (1 - beta1) * gi;
    const vi = v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
    p[i]! -= lr * mi / (Math.sqrt(vi) + eps);
  }
}
