// What the semantic-routing guards cost per request, in process: PII detection and jailbreak scoring of a 1 KB
// prompt, tool selection among 32 tools, and a memory-cache lookup. Prompts are built from the rows of the shipped
// evaluation sets (so they contain PII, attacks, and plain text in realistic proportions) cut to ~1 KB each; every
// call is timed on its own with performance.now(), after a warm-up. Run: deno run -A bench/guards_bench.ts --help
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
const sentences = ["pii_eval.jsonl", "jailbreak_eval.jsonl"].flatMap((f) =>
  Deno.readTextFileSync(new URL(f, data)).split("\n").filter(Boolean).map((l) =>
    (JSON.parse(l) as { text: string }).text
  )
);
// A fixed shuffle, so every run times the same prompts.
let seed = 42;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const prompts: string[] = [];
for (let i = 0; i < 200; i++) {
  let p = "";
  while (p.length < bytes) p += sentences[Math.floor(rand() * sentences.length)] + " ";
  prompts.push(p.slice(0, bytes));
}

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
  { name: `detectPii (${bytes} B)`, run: (i) => detectPii(prompts[i % prompts.length]!) },
  { name: `scoreJailbreak (${bytes} B)`, run: (i) => scoreJailbreak(prompts[i % prompts.length]!) },
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
const results: Record<string, { p50: number; p90: number; p99: number; max: number; mean: number }> = {};
for (const s of subjects) {
  for (let i = 0; i < warmup; i++) await s.run(i);
  const times = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await s.run(i);
    times[i] = (performance.now() - t0) * 1000;
  }
  const mean = times.reduce((a, b) => a + b, 0) / calls;
  times.sort();
  results[s.name] = { p50: pct(times, 0.5), p90: pct(times, 0.9), p99: pct(times, 0.99), max: times.at(-1)!, mean };
}

const f = (x: number) => x < 10 ? x.toFixed(1) : x.toFixed(0);
console.log(
  `${"guard".padEnd(40)} ${"p50 µs".padStart(8)} ${"p90 µs".padStart(8)} ${"p99 µs".padStart(8)} ${
    "max µs".padStart(8)
  } ${"mean µs".padStart(8)}`,
);
for (const [name, r] of Object.entries(results)) {
  console.log(
    `${name.padEnd(40)} ${f(r.p50).padStart(8)} ${f(r.p90).padStart(8)} ${f(r.p99).padStart(8)} ${
      f(r.max).padStart(8)
    } ${f(r.mean).padStart(8)}`,
  );
}
console.log(JSON.stringify({ bench: "guards", calls, warmup, bytes, deno: Deno.version.deno, results }));
