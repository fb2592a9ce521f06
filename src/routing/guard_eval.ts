// Evaluation of the PII and jailbreak guards on labelled JSONL files (`tollgate eval pii FILE`, `tollgate eval
// jailbreak FILE`). PII is scored per row and type: a row labelled {email, phone} and detected as {email} is one true
// positive for email and one false negative for phone; spans are not compared. Jailbreak detection is a binary
// decision per row.
//
// Where a ratio has a zero denominator it is 1: no positive predictions means no false claims (precision 1), no
// labelled positives means nothing was missed (recall 1).
import { detectPii, PII_TYPES, type PiiOptions, type PiiType, piiTypes } from "./pii.ts";
import { DEFAULT_JAILBREAK_THRESHOLD, type JailbreakOptions, scoreJailbreak } from "./jailbreak.ts";

export interface PiiEvalRow {
  readonly text: string;
  readonly types: readonly PiiType[];
}

export interface JailbreakEvalRow {
  readonly text: string;
  readonly jailbreak: boolean;
  /** Optional attack family or negative kind, for per-family figures. */
  readonly family?: string;
}

export interface Scores {
  readonly tp: number;
  readonly fp: number;
  readonly fn: number;
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
}

export interface PiiEvaluation {
  readonly rows: number;
  /** Per type: support is the number of rows labelled with the type. */
  readonly perType: Readonly<Record<PiiType, Scores & { readonly support: number }>>;
  /** Micro-averaged over all types. */
  readonly overall: Scores;
  /** Row level: "has any PII" against "has any labelled PII". */
  readonly rowLevel: Scores & { readonly tn: number; readonly accuracy: number };
  /** Rows whose detected type set equals the labelled one. */
  readonly exactRows: number;
  readonly mistakes: readonly { readonly text: string; readonly expected: PiiType[]; readonly detected: PiiType[] }[];
}

export interface JailbreakEvaluation extends Scores {
  readonly rows: number;
  readonly tn: number;
  readonly accuracy: number;
  readonly threshold: number;
  /** Per family: rows, how many were flagged, and how many were right. */
  readonly perFamily: Readonly<
    Record<
      string,
      { readonly rows: number; readonly flagged: number; readonly correct: number; readonly jailbreak: boolean }
    >
  >;
  readonly mistakes: readonly {
    readonly text: string;
    readonly expected: boolean;
    readonly score: number;
    readonly matched: string[];
    readonly family?: string;
  }[];
}

function scores(tp: number, fp: number, fn: number): Scores {
  const precision = tp + fp === 0 ? 1 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 1 : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { tp, fp, fn, precision, recall, f1 };
}

export function evaluatePii(rows: readonly PiiEvalRow[], options: PiiOptions = {}): PiiEvaluation {
  const counts = new Map<PiiType, { tp: number; fp: number; fn: number; support: number }>(
    PII_TYPES.map((t) => [t, { tp: 0, fp: 0, fn: 0, support: 0 }]),
  );
  let rowTp = 0, rowFp = 0, rowFn = 0, rowTn = 0, exactRows = 0;
  const mistakes: { text: string; expected: PiiType[]; detected: PiiType[] }[] = [];
  for (const row of rows) {
    const expected = new Set(row.types);
    const detected = new Set(piiTypes(detectPii(row.text, options)));
    for (const t of PII_TYPES) {
      const c = counts.get(t)!;
      if (expected.has(t)) c.support++;
      if (expected.has(t) && detected.has(t)) c.tp++;
      else if (detected.has(t)) c.fp++;
      else if (expected.has(t)) c.fn++;
    }
    if (expected.size > 0 && detected.size > 0) rowTp++;
    else if (detected.size > 0) rowFp++;
    else if (expected.size > 0) rowFn++;
    else rowTn++;
    const same = expected.size === detected.size && [...expected].every((t) => detected.has(t));
    if (same) exactRows++;
    else {
      mistakes.push({
        text: row.text,
        expected: PII_TYPES.filter((t) => expected.has(t)),
        detected: PII_TYPES.filter((t) => detected.has(t)),
      });
    }
  }
  const perType = Object.fromEntries(
    PII_TYPES.map((t) => {
      const c = counts.get(t)!;
      return [t, { ...scores(c.tp, c.fp, c.fn), support: c.support }];
    }),
  ) as Record<PiiType, Scores & { support: number }>;
  const sum = (k: "tp" | "fp" | "fn") => [...counts.values()].reduce((n, c) => n + c[k], 0);
  return {
    rows: rows.length,
    perType,
    overall: scores(sum("tp"), sum("fp"), sum("fn")),
    rowLevel: { ...scores(rowTp, rowFp, rowFn), tn: rowTn, accuracy: rows.length ? (rowTp + rowTn) / rows.length : 1 },
    exactRows,
    mistakes,
  };
}

export function evaluateJailbreak(
  rows: readonly JailbreakEvalRow[],
  options: JailbreakOptions = {},
): JailbreakEvaluation {
  let tp = 0, fp = 0, fn = 0, tn = 0;
  const perFamily: Record<string, { rows: number; flagged: number; correct: number; jailbreak: boolean }> = {};
  const mistakes: JailbreakEvaluation["mistakes"][number][] = [];
  for (const row of rows) {
    const r = scoreJailbreak(row.text, options);
    if (row.jailbreak && r.jailbreak) tp++;
    else if (r.jailbreak) fp++;
    else if (row.jailbreak) fn++;
    else tn++;
    const family = row.family ?? (row.jailbreak ? "(attacks)" : "(benign)");
    const f = perFamily[family] ??= { rows: 0, flagged: 0, correct: 0, jailbreak: row.jailbreak };
    f.rows++;
    if (r.jailbreak) f.flagged++;
    if (r.jailbreak === row.jailbreak) f.correct++;
    else {
      mistakes.push({
        text: row.text,
        expected: row.jailbreak,
        score: r.score,
        matched: r.matched,
        ...(row.family === undefined ? {} : { family: row.family }),
      });
    }
  }
  return {
    rows: rows.length,
    ...scores(tp, fp, fn),
    tn,
    accuracy: rows.length ? (tp + tn) / rows.length : 1,
    threshold: options.threshold ?? DEFAULT_JAILBREAK_THRESHOLD,
    perFamily,
    mistakes,
  };
}

// ---- datasets ----

function parseJsonl<T>(text: string, what: string, check: (v: Record<string, unknown>, line: number) => T): T[] {
  const rows: T[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("//")) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(`Invalid ${what} dataset line ${i + 1}: ${(err as Error).message}`, { cause: err });
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new Error(`Invalid ${what} dataset line ${i + 1}: expected a JSON object`);
    }
    const v = value as Record<string, unknown>;
    if (typeof v.text !== "string") throw new Error(`Invalid ${what} dataset line ${i + 1}: "text" must be a string`);
    rows.push(check(v, i + 1));
  });
  return rows;
}

/** Rows of {"text": string, "types": PiiType[]}, one JSON object per line; blank lines and // comments skipped. */
export function parsePiiDataset(text: string): PiiEvalRow[] {
  return parseJsonl(text, "PII", (v, line) => {
    const types = v.types;
    if (!Array.isArray(types) || !types.every((t) => PII_TYPES.includes(t as PiiType))) {
      throw new Error(`Invalid PII dataset line ${line}: "types" must be an array of ${PII_TYPES.join(", ")}`);
    }
    return { text: v.text as string, types: types as PiiType[] };
  });
}

/** Rows of {"text": string, "jailbreak": boolean, "family"?: string}, one JSON object per line. */
export function parseJailbreakDataset(text: string): JailbreakEvalRow[] {
  return parseJsonl(text, "jailbreak", (v, line) => {
    if (typeof v.jailbreak !== "boolean") {
      throw new Error(`Invalid jailbreak dataset line ${line}: "jailbreak" must be a boolean`);
    }
    if (v.family !== undefined && typeof v.family !== "string") {
      throw new Error(`Invalid jailbreak dataset line ${line}: "family" must be a string`);
    }
    return { text: v.text as string, jailbreak: v.jailbreak, ...(v.family === undefined ? {} : { family: v.family }) };
  });
}

// ---- printing ----

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const pad = (s: string | number, n: number) => String(s).padStart(n);
const clip = (s: string, n = 100) => (s.length > n ? s.slice(0, n - 1) + "…" : s).replace(/\s+/g, " ");

/** A table per type, the overall and row-level figures, then up to `maxMistakes` mistakes (default 20). */
export function formatPiiEvaluation(e: PiiEvaluation, o: { maxMistakes?: number } = {}): string {
  const lines = [`PII detection: ${e.rows} rows, ${e.exactRows} with exactly the labelled types`, ""];
  lines.push(
    `${"type".padEnd(12)} ${pad("support", 7)} ${pad("tp", 4)} ${pad("fp", 4)} ${pad("fn", 4)} ` +
      `${pad("precision", 9)} ${pad("recall", 7)} ${pad("f1", 7)}`,
  );
  const row = (name: string, s: Scores, support: number | string) =>
    `${name.padEnd(12)} ${pad(support, 7)} ${pad(s.tp, 4)} ${pad(s.fp, 4)} ${pad(s.fn, 4)} ` +
    `${pad(pct(s.precision), 9)} ${pad(pct(s.recall), 7)} ${pad(pct(s.f1), 7)}`;
  for (const t of PII_TYPES) lines.push(row(t, e.perType[t], e.perType[t].support));
  lines.push(row("overall", e.overall, ""));
  const r = e.rowLevel;
  lines.push(
    "",
    `Rows with any PII: precision ${pct(r.precision)}, recall ${pct(r.recall)}, F1 ${pct(r.f1)}, ` +
      `accuracy ${pct(r.accuracy)} (tp ${r.tp}, fp ${r.fp}, fn ${r.fn}, tn ${r.tn})`,
  );
  appendMistakes(
    lines,
    e.mistakes.map((m) => `expected [${m.expected.join(", ")}] detected [${m.detected.join(", ")}]: ${clip(m.text)}`),
    o.maxMistakes,
  );
  return lines.join("\n");
}

/** The confusion counts and ratios, per-family detection rates, then up to `maxMistakes` mistakes (default 20). */
export function formatJailbreakEvaluation(e: JailbreakEvaluation, o: { maxMistakes?: number } = {}): string {
  const lines = [
    `Jailbreak detection: ${e.rows} rows, threshold ${e.threshold}`,
    "",
    `                 flagged  not flagged`,
    `jailbreak     ${pad(e.tp, 10)} ${pad(e.fn, 12)}`,
    `benign        ${pad(e.fp, 10)} ${pad(e.tn, 12)}`,
    "",
    `precision ${pct(e.precision)}, recall ${pct(e.recall)}, F1 ${pct(e.f1)}, accuracy ${pct(e.accuracy)}`,
    "",
    `${"family".padEnd(28)} ${pad("rows", 5)} ${pad("flagged", 8)} ${pad("correct", 8)}`,
  ];
  const families = Object.entries(e.perFamily).sort((a, b) =>
    Number(b[1].jailbreak) - Number(a[1].jailbreak) || a[0].localeCompare(b[0])
  );
  for (const [name, f] of families) {
    const label = `${name} (${f.jailbreak ? "attack" : "benign"})`;
    lines.push(`${label.padEnd(28)} ${pad(f.rows, 5)} ${pad(f.flagged, 8)} ${pad(pct(f.correct / f.rows), 8)}`);
  }
  appendMistakes(
    lines,
    e.mistakes.map((m) =>
      `${m.expected ? "missed" : "false alarm"} (score ${m.score.toFixed(2)}${
        m.matched.length ? `: ${m.matched.join(", ")}` : ""
      }): ${clip(m.text)}`
    ),
    o.maxMistakes,
  );
  return lines.join("\n");
}

function appendMistakes(lines: string[], mistakes: readonly string[], max = 20): void {
  if (mistakes.length === 0 || max <= 0) return;
  lines.push("", `Mistakes (${Math.min(max, mistakes.length)} of ${mistakes.length}):`);
  for (const m of mistakes.slice(0, max)) lines.push(`  ${m}`);
}
