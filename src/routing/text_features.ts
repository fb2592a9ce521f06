// TF-IDF features for the built-in category classifier: word unigrams and bigrams (stop words dropped), character
// n-grams inside word boundaries (so "photosynthetic" shares features with "photosynthesis" without a stemmer), and
// a few symbols that carry meaning in questions (=, %, $…). Fitted once on the training texts; features unseen in
// training are dropped at prediction, which keeps the vector space fixed and prediction allocation-light.

/** A sparse vector: feature indices and their weights, L2-normalised. */
export interface SparseVector {
  readonly indices: Int32Array;
  readonly values: Float64Array;
}

const STOP_WORDS = new Set(
  ("a an the and or but if of to in on at by for with from as is are was were be been being do does did doing " +
    "have has had having i me my we our you your he she it its they them their this that these those what which " +
    "who whom whose when where why how can could would should will shall may might must there here than then so " +
    "not no yes just about into over under again further once also very too any all some each both few more most " +
    "other such own same only up down out off please tell explain describe give me us i'm it's what's").split(" "),
);

const SYMBOLS = /[=+^*/%$€£¥∫√∑π<>±×÷≈∞°]/g;
const WORD = /[\p{L}\p{N}]+/gu;
const MIN_GRAM = 3;
const MAX_GRAM = 5;

function normalize(text: string): string {
  return text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase();
}

/** Every feature of a text with its raw count. */
export function featureCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (f: string) => counts.set(f, (counts.get(f) ?? 0) + 1);
  const norm = normalize(text);
  const words: string[] = [];
  for (const m of norm.matchAll(WORD)) {
    const w = m[0];
    if (STOP_WORDS.has(w)) continue;
    words.push(/^\p{N}+$/u.test(w) ? "#" : w);
  }
  let previous: string | undefined;
  for (const w of words) {
    add(`w:${w}`);
    if (previous !== undefined) add(`b:${previous} ${w}`);
    previous = w;
    if (w === "#" || w.length < MIN_GRAM - 1) continue;
    const padded = ` ${w} `;
    for (let n = MIN_GRAM; n <= MAX_GRAM; n++) {
      for (let i = 0; i + n <= padded.length; i++) add(`c:${padded.slice(i, i + n)}`);
    }
  }
  for (const m of norm.matchAll(SYMBOLS)) add(`s:${m[0]}`);
  return counts;
}

export interface Vectorizer {
  readonly size: number;
  vectorize(text: string): SparseVector;
}

/** Learns the vocabulary and inverse document frequencies of the training texts (smooth idf, sublinear tf). */
export function fitVectorizer(texts: readonly string[]): Vectorizer {
  return vectorizerOf(texts.map(featureCounts));
}

/** The vectorizer of texts whose features are already counted (training counts each text once). */
export function vectorizerOf(counted: readonly ReadonlyMap<string, number>[]): Vectorizer & {
  /** A counted text as a vector. */
  vectorizeCounts(counts: ReadonlyMap<string, number>): SparseVector;
} {
  const df = new Map<string, number>();
  for (const c of counted) for (const f of c.keys()) df.set(f, (df.get(f) ?? 0) + 1);
  const index = new Map<string, number>();
  const idf: number[] = [];
  const n = counted.length;
  for (const [f, d] of [...df].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    index.set(f, idf.length);
    idf.push(Math.log((1 + n) / (1 + d)) + 1);
  }
  const vectorizeCounts = (counts: ReadonlyMap<string, number>): SparseVector => {
    const entries: [number, number][] = [];
    let norm = 0;
    for (const [f, count] of counts) {
      const i = index.get(f);
      if (i === undefined) continue;
      const v = (1 + Math.log(count)) * idf[i]!;
      entries.push([i, v]);
      norm += v * v;
    }
    entries.sort((a, b) => a[0] - b[0]);
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    const indices = new Int32Array(entries.length);
    const values = new Float64Array(entries.length);
    entries.forEach(([i, v], k) => {
      indices[k] = i;
      values[k] = v * scale;
    });
    return { indices, values };
  };
  return { size: idf.length, vectorize: (text) => vectorizeCounts(featureCounts(text)), vectorizeCounts };
}
