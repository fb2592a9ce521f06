// Tool selection: when a request carries many tools, keep the k most relevant to the prompt. Fewer tools means a
// shorter prompt and fewer wrong calls; the model still sees every tool it is likely to need.
//
// By default relevance is TF-IDF cosine between the prompt and each tool's text: its name (split at snake_case and
// camelCase, counted twice: names are dense), description, and the names and descriptions of its parameters. IDF
// comes from the tools themselves, so words every tool shares ("get", "data") weigh little. With embeddings (one for
// the prompt, one per tool, e.g. from the routing embeddings endpoint) relevance is their cosine instead.
//
// Pure: same input, same output. Ties keep the earlier tool; the kept tools keep their original order, so the
// request changes only by what was dropped.

export interface ToolLike {
  readonly type?: string;
  readonly function?: { readonly name: string; readonly description?: string; readonly parameters?: unknown };
}

export interface ToolSelectionOptions {
  readonly embeddings?: { readonly prompt: readonly number[]; readonly tools: readonly (readonly number[])[] };
}

const STOP_WORDS = new Set(
  ("a an the and or but if of to in on at by for with from as is are was were be been do does did have has had i me " +
    "my we our you your it its they them this that these those what which who when where why how can could would " +
    "should will shall may might must not no please tell give want need like just also some any all into about " +
    "use using used tool function returns return").split(" "),
);

/** Words of a text: camelCase and snake_case split, lower case, accents off, stop words out, crudely stemmed. */
export function toolTokens(text: string): string[] {
  const spaced = text
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "")
    .toLowerCase();
  const out: string[] = [];
  for (const m of spaced.matchAll(/[\p{L}\p{N}]+/gu)) {
    const w = m[0];
    if (STOP_WORDS.has(w) || (w.length < 2 && !/\d/.test(w))) continue;
    out.push(stem(w));
  }
  return out;
}

/** Strips common English inflections so that "files" meets "file" and "sending" meets "send". */
function stem(w: string): string {
  if (w.length <= 3) return w;
  if (w.endsWith("ies") && w.length > 4) return w.slice(0, -3) + "y";
  if (/(ss|sh|ch|x|z)es$/.test(w)) return w.slice(0, -2);
  if (w.endsWith("s") && !w.endsWith("ss") && !w.endsWith("us") && !w.endsWith("is")) return w.slice(0, -1);
  if (w.endsWith("ing") && w.length > 5) return w.slice(0, -3);
  if (w.endsWith("ed") && w.length > 4) return w.slice(0, -2);
  return w;
}

/** Names and descriptions of the parameters in a JSON Schema, nested objects and array items included. */
function parameterText(schema: unknown, depth = 0): string[] {
  if (depth > 4 || typeof schema !== "object" || schema === null) return [];
  const s = schema as { properties?: unknown; items?: unknown; description?: unknown };
  const out: string[] = [];
  if (depth > 0 && typeof s.description === "string") out.push(s.description);
  if (typeof s.properties === "object" && s.properties !== null) {
    for (const [name, sub] of Object.entries(s.properties)) {
      out.push(name, ...parameterText(sub, depth + 1));
    }
  }
  if (s.items !== undefined) out.push(...parameterText(s.items, depth + 1));
  return out;
}

/** The text TF-IDF sees for a tool. Tools without a function (built-in tool types) are known by their type. */
export function toolText(tool: ToolLike): string {
  const f = tool.function;
  if (!f) return `${tool.type ?? ""} ${tool.type ?? ""}`;
  return [f.name, f.name, f.description ?? "", ...parameterText(f.parameters)].join(" ");
}

// Requests of one application carry the same tool definitions again and again: their term counts are memoised by
// text (a pure function of it, so results do not change), and the memo is dropped whole when it grows too big.
const TOOL_MEMO_LIMIT = 4096;
const toolMemo = new Map<string, ReadonlyMap<string, number>>();

function toolCounts(tool: ToolLike): ReadonlyMap<string, number> {
  const text = toolText(tool);
  let c = toolMemo.get(text);
  if (!c) {
    if (toolMemo.size >= TOOL_MEMO_LIMIT) toolMemo.clear();
    c = counts(toolTokens(text));
    toolMemo.set(text, c);
  }
  return c;
}

function counts(tokens: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of tokens) m.set(t, (m.get(t) ?? 0) + 1);
  return m;
}

/** Sublinear TF × IDF, L2-normalised; terms without an IDF (in no tool) are dropped. */
function weigh(tf: ReadonlyMap<string, number>, idf: ReadonlyMap<string, number>): Map<string, number> {
  const v = new Map<string, number>();
  let norm = 0;
  for (const [t, n] of tf) {
    const w = idf.get(t);
    if (w === undefined) continue;
    const x = (1 + Math.log(n)) * w;
    v.set(t, x);
    norm += x * x;
  }
  norm = Math.sqrt(norm);
  if (norm > 0) { for (const [t, x] of v) v.set(t, x / norm); }
  return v;
}

function sparseDot(a: Map<string, number>, b: Map<string, number>): number {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let dot = 0;
  for (const [t, x] of small) dot += x * (large.get(t) ?? 0);
  return dot;
}

function denseCosine(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) {
    throw new RangeError(`Cannot compare embeddings of ${a.length} and ${b.length} dimensions`);
  }
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** Relevance of each tool to the prompt, in the tools' order. */
export function scoreTools(tools: readonly ToolLike[], prompt: string, options: ToolSelectionOptions = {}): number[] {
  const e = options.embeddings;
  if (e) {
    if (e.tools.length !== tools.length) {
      throw new RangeError(`Cannot select tools: ${e.tools.length} tool embeddings for ${tools.length} tools`);
    }
    return e.tools.map((t) => denseCosine(e.prompt, t));
  }
  const docs = tools.map(toolCounts);
  const df = new Map<string, number>();
  for (const d of docs) for (const t of d.keys()) df.set(t, (df.get(t) ?? 0) + 1);
  const idf = new Map<string, number>();
  for (const [t, n] of df) idf.set(t, Math.log((1 + docs.length) / (1 + n)) + 1);
  const query = weigh(counts(toolTokens(prompt)), idf);
  return docs.map((d) => sparseDot(query, weigh(d, idf)));
}

/**
 * The `k` tools most relevant to `prompt`, in their original order. All of them when k ≥ tools.length. Throws a
 * RangeError when k is not a non-negative integer or the embeddings do not fit the tools.
 */
export function selectTools<T extends ToolLike>(
  tools: readonly T[],
  prompt: string,
  k: number,
  options: ToolSelectionOptions = {},
): T[] {
  if (!(Number.isSafeInteger(k) && k >= 0)) throw new RangeError(`Invalid tool count k=${k}: expected an integer ≥ 0`);
  if (k >= tools.length) {
    if (options.embeddings) scoreTools(tools, prompt, options); // Still rejects mismatched embeddings.
    return [...tools];
  }
  const scores = scoreTools(tools, prompt, options);
  const ranked = scores.map((score, i) => ({ score, i })).sort((a, b) => b.score - a.score || a.i - b.i);
  const keep = new Set(ranked.slice(0, k).map((r) => r.i));
  return tools.filter((_, i) => keep.has(i));
}
