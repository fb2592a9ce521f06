// Evaluation of category classification on a labelled JSONL file (`tollgate eval routing DATASET.jsonl`): accuracy
// of the top category, how many queries clear the confidence threshold (the rest go to the default model) and how
// accurate those are, per-category precision and recall, and the confusion matrix. Precision of a category that was
// never predicted is reported as 0 with no predictions, not as perfect.

export interface RoutingEvalRow {
  readonly query: string;
  readonly category: string;
}

export interface CategoryScores {
  readonly category: string;
  readonly support: number;
  readonly predicted: number;
  readonly tp: number;
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
}

export interface RoutingEvaluation {
  readonly rows: number;
  readonly correct: number;
  readonly accuracy: number;
  readonly threshold: number;
  /** Queries whose confidence is at or above the threshold (routed by category). */
  readonly confident: number;
  readonly confidentCorrect: number;
  /** Labels first (config order), then any category only the classifier predicted. */
  readonly categories: readonly string[];
  readonly perCategory: readonly CategoryScores[];
  readonly macroF1: number;
  /** confusion[expected][predicted], indices into `categories`. */
  readonly confusion: readonly (readonly number[])[];
  readonly mistakes: readonly {
    readonly query: string;
    readonly expected: string;
    readonly predicted: string;
    readonly confidence: number;
  }[];
}

/** {"query": string, "category": string} per line; blank lines and lines starting with // are skipped. */
export function parseRoutingDataset(text: string): RoutingEvalRow[] {
  const rows: RoutingEvalRow[] = [];
  text.split("\n").forEach((line, i) => {
    const t = line.trim();
    if (t === "" || t.startsWith("//")) return;
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new Error(`Invalid routing dataset line ${i + 1}: ${(e as Error).message}`);
    }
    const { query, category } = (v ?? {}) as Record<string, unknown>;
    if (typeof query !== "string" || typeof category !== "string") {
      throw new Error(`Invalid routing dataset line ${i + 1}: "query" and "category" must be strings`);
    }
    rows.push({ query, category });
  });
  return rows;
}

export async function evaluateRouting(
  rows: readonly RoutingEvalRow[],
  classify: (query: string) => Promise<{ category: string; confidence: number }>,
  o: { readonly threshold: number; readonly categories?: readonly string[] },
): Promise<RoutingEvaluation> {
  const predictions = [];
  for (const row of rows) predictions.push({ row, ...(await classify(row.query)) });
  const categories = [...new Set([...(o.categories ?? []), ...rows.map((r) => r.category)])];
  for (const p of predictions) if (!categories.includes(p.category)) categories.push(p.category);
  const index = new Map(categories.map((c, i) => [c, i]));
  const confusion = categories.map(() => categories.map(() => 0));
  let correct = 0, confident = 0, confidentCorrect = 0;
  const mistakes = [];
  for (const p of predictions) {
    confusion[index.get(p.row.category)!]![index.get(p.category)!]!++;
    const ok = p.category === p.row.category;
    if (ok) correct++;
    else {mistakes.push({
        query: p.row.query,
        expected: p.row.category,
        predicted: p.category,
        confidence: p.confidence,
      });}
    if (p.confidence >= o.threshold) {
      confident++;
      if (ok) confidentCorrect++;
    }
  }
  const perCategory = categories.map((category, i) => {
    const tp = confusion[i]![i]!;
    const support = confusion[i]!.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[i]!, 0);
    const precision = predicted === 0 ? 0 : tp / predicted;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : 2 * precision * recall / (precision + recall);
    return { category, support, predicted, tp, precision, recall, f1 };
  });
  const labelled = perCategory.filter((c) => c.support > 0);
  return {
    rows: rows.length,
    correct,
    accuracy: rows.length === 0 ? 0 : correct / rows.length,
    threshold: o.threshold,
    confident,
    confidentCorrect,
    categories,
    perCategory,
    macroF1: labelled.length === 0 ? 0 : labelled.reduce((a, c) => a + c.f1, 0) / labelled.length,
    confusion,
    mistakes,
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export function formatRoutingEvaluation(e: RoutingEvaluation, o: { readonly maxMistakes?: number } = {}): string {
  const lines = [
    `Category routing: ${e.rows} queries, ${e.categories.length} categories`,
    `accuracy ${pct(e.accuracy)} (${e.correct}/${e.rows}), macro F1 ${pct(e.macroF1)}`,
    `at confidence threshold ${e.threshold}: ${pct(e.rows === 0 ? 0 : e.confident / e.rows)} routed by category ` +
    `(${e.confident}/${e.rows}), ${pct(e.confident === 0 ? 0 : e.confidentCorrect / e.confident)} of them correct; ` +
    `the rest go to the default model`,
    "",
  ];
  const width = Math.max(8, ...e.categories.map((c) => c.length));
  lines.push(`${"category".padEnd(width)}  support  predicted  precision  recall      f1`);
  for (const c of e.perCategory) {
    lines.push(
      `${c.category.padEnd(width)}  ${String(c.support).padStart(7)}  ${String(c.predicted).padStart(9)}  ` +
        `${pct(c.precision).padStart(9)}  ${pct(c.recall).padStart(6)}  ${pct(c.f1).padStart(6)}`,
    );
  }
  // Columns are abbreviated to their first four letters; rows carry the full names.
  lines.push("", "confusion matrix (rows: expected, columns: predicted)");
  const abbrev = e.categories.map((c) => c.replace(/\s+/g, "").slice(0, 4));
  lines.push(`${"".padEnd(width)} ${abbrev.map((a) => a.padStart(5)).join("")}`);
  e.confusion.forEach((row, i) => {
    lines.push(`${e.categories[i]!.padEnd(width)} ${row.map((n) => (n === 0 ? "." : String(n)).padStart(5)).join("")}`);
  });
  const max = o.maxMistakes ?? 20;
  if (e.mistakes.length > 0 && max > 0) {
    lines.push("", `mistakes (${Math.min(max, e.mistakes.length)} of ${e.mistakes.length}):`);
    for (const m of e.mistakes.slice(0, max)) {
      lines.push(`  ${m.expected} -> ${m.predicted} (${m.confidence.toFixed(2)}): ${m.query}`);
    }
  }
  return lines.join("\n");
}
