// What the semantic-routing guards cost per request, in process: PII detection and jailbreak scoring of a 1 KB
// prompt, tool selection among 32 tools, and a memory-cache lookup. Prompts are built from the rows of the shipped
// evaluation sets (so they contain PII, attacks, and plain text in realistic proportions) cut to ~1 KB each; every
// call is timed on its own with performance.now(), after a warm-up. Run: deno run -A bench/guards_bench.ts --help
import process from "node:process";
import { parseArgs } from "node:util";
import { detectPii } from "../src/routing/pii.ts";
import { scoreJailbreak } from "../src/routing/jailbreak.ts";
import { selectTools } from "../src/routing/tool_selection.ts";
import { createMemoryCache } from "../src/routing/cache.ts";
import { intFlag } from "./support/flags.ts";

const USAGE = `Usage: deno run -A bench/guards_bench.ts [flags]

  --calls N      timed calls per figure (default 20000)
  --warmup N     untimed calls before (default 2000)
  --bytes N      prompt size in bytes (default 1024)
  -h, --help     show this help

Prints p50, p90, p99 and max µs per call for each guard, then one JSON line with every figure.`;

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "20000" },
    warmup: { type: "string", default: "2000" },
    bytes: { type: "string", default: "1024" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const calls = intFlag("calls", values.calls, 1);
const warmup = intFlag("warmup", values.warmup, 0);
const bytes = intFlag("bytes", values.bytes, 64);

// ---- prompts ----

const data = new URL("../testdata/routing/", import.meta.url);
type Row = { text: string; types?: string[]; jailbreak?: boolean };
const rows = ["pii_eval.jsonl", "jailbreak_eval.jsonl"].flatMap((f) =>
  Deno.readTextFileSync(new URL(f, data)).split("\n").filter(Boolean).map((l) => JSON.parse(l) as Row)
);
// "mixed": every row, so most prompts carry PII and an attack (the detectors' worst case: many regexes run);
// "benign": only rows without PII or attack, like most real traffic.
const corpora = {
  mixed: rows.map((r) => r.text),
  benign: rows.filter((r) => (r.types ?? []).length === 0 && r.jailbreak !== true).map((r) => r.text),
};
// A fixed shuffle, so every run times the same prompts.
let seed = 42;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
function promptsOf(sentences: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < 200; i++) {
    let p = "";
    while (p.length < bytes) p += sentences[Math.floor(rand() * sentences.length)] + " ";
    out.push(p.slice(0, bytes));
  }
  return out;
}
const prompts = promptsOf(corpora.mixed);
const benignPrompts = promptsOf(corpora.benign);
const sentences = corpora.mixed;

// ---- subjects ----

const tools = Array.from({ length: 32 }, (_, i) => ({
  type: "function" as const,
  function: {
    name: [
      "get_weather",
      "send_email",
      "search_flights",
      "create_event",
      "convert_currency",
      "query_db",
      "translate_text",
      "create_ticket",
    ][i % 8] + `_${i}`,
    description: sentences[i * 7 % sentences.length]!.slice(0, 120),
    parameters: { type: "object", properties: { query: { type: "string" }, limit: { type: "integer" } } },
  },
}));
const DIMS = 768;
const embedding = (i: number) => Array.from({ length: DIMS }, (_, d) => Math.sin(i * 31 + d * 0.7));
const exactCache = createMemoryCache({ mode: "exact", ttlMs: 3_600_000, maxEntries: 10_000 });
const similarityCache = createMemoryCache({ mode: "similarity", threshold: 0.95, ttlMs: 3_600_000, maxEntries: 1_000 });
const body = { body: new TextEncoder().encode('{"choices":[]}'), contentType: "application/json" };
for (let i = 0; i < prompts.length; i++) await exactCache.store({ scope: "r", model: "m", text: prompts[i]! }, body);
for (let i = 0; i < 1_000; i++) {
  await similarityCache.store({ scope: "r", model: "m", text: `q${i}`, embedding: embedding(i) }, body);
}
const queries = Array.from({ length: 50 }, (_, i) => embedding(10_000 + i));

type Subject = { name: string; run: (i: number) => unknown };
const subjects: Subject[] = [
  { name: `detectPii, mixed (${bytes} B)`, run: (i) => detectPii(prompts[i % prompts.length]!) },
  { name: `detectPii, benign (${bytes} B)`, run: (i) => detectPii(benignPrompts[i % benignPrompts.length]!) },
  { name: `scoreJailbreak, mixed (${bytes} B)`, run: (i) => scoreJailbreak(prompts[i % prompts.length]!) },
  {
    name: `scoreJailbreak, benign (${bytes} B)`,
    run: (i) => scoreJailbreak(benignPrompts[i % benignPrompts.length]!),
  },
  { name: `selectTools (32 tools, k=5)`, run: (i) => selectTools(tools, prompts[i % prompts.length]!, 5) },
  {
    name: "memory cache, exact lookup",
    run: (i) => exactCache.lookup({ scope: "r", model: "m", text: prompts[i % prompts.length]! }),
  },
  {
    name: `memory cache, similarity over 1000×${DIMS}`,
    run: (i) => similarityCache.lookup({ scope: "r", model: "m", text: "x", embedding: queries[i % queries.length]! }),
  },
];

// ---- timing ----

const pct = (sorted: Float64Array, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
const results: Record<string, { p50: number; p90: number; p99: number; max: number; mean: number; cpu: number }> = {};
for (const s of subjects) {
  for (let i = 0; i < warmup; i++) await s.run(i);
  const times = new Float64Array(calls);
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await s.run(i);
    times[i] = (performance.now() - t0) * 1000;
  }
  const used = process.cpuUsage(cpu0);
  const cpu = (used.user + used.system) / calls;
  const mean = times.reduce((a, b) => a + b, 0) / calls;
  times.sort();
  results[s.name] = {
    p50: pct(times, 0.5),
    p90: pct(times, 0.9),
    p99: pct(times, 0.99),
    max: times.at(-1)!,
    mean,
    cpu,
  };
}

// ---- adversarial inputs: 100 KB built to make regexes backtrack; one call each, in milliseconds ----

const K = 100_000;
const adversarial: Record<string, string> = {
  "'#' × 100k": "#".repeat(K),
  "'[' × 100k": "[".repeat(K),
  "'12-' × 33k": "12-".repeat(K / 3),
  "'a.' × 50k + '@'": "a.".repeat(K / 2) + "@",
  "'a:' × 50k": "a:".repeat(K / 2),
  "'1' × 100k": "1".repeat(K),
  "'i g n o r e ' × 8k": "i g n o r e ".repeat(K / 12),
  "'ignore ' × 14k": "ignore ".repeat(K / 7),
  "base64 words × 2.8k": "QUJDRUZHSElKS0xNTk9QUVJTVFVWV1hZWg ".repeat(K / 35),
};
const adversarialMs: Record<string, { pii: number; jailbreak: number }> = {};
for (const [name, text] of Object.entries(adversarial)) {
  let t0 = performance.now();
  detectPii(text);
  const pii = performance.now() - t0;
  t0 = performance.now();
  scoreJailbreak(text);
  adversarialMs[name] = { pii, jailbreak: performance.now() - t0 };
}

const f = (x: number) => x < 10 ? x.toFixed(1) : x.toFixed(0);
const columns = ["p50 µs", "p90 µs", "p99 µs", "max µs", "mean µs", "CPU µs"];
console.log(`${"guard (wall time per call; CPU per call)".padEnd(44)} ${columns.map((c) => c.padStart(8)).join(" ")}`);
for (const [name, r] of Object.entries(results)) {
  const cells = [r.p50, r.p90, r.p99, r.max, r.mean, r.cpu].map((x) => f(x).padStart(8));
  console.log(`${name.padEnd(44)} ${cells.join(" ")}`);
}
console.log(`\n${"adversarial input (one call)".padEnd(40)} ${"PII ms".padStart(8)} ${"jailbreak ms".padStart(13)}`);
for (const [name, r] of Object.entries(adversarialMs)) {
  console.log(`${name.padEnd(40)} ${r.pii.toFixed(1).padStart(8)} ${r.jailbreak.toFixed(1).padStart(13)}`);
}
console.log(JSON.stringify({ bench: "guards", calls, warmup, bytes, deno: Deno.version.deno, results, adversarialMs }));
