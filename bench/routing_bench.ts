// What a semantic routing decision costs per request, without remote calls: the shipped example router
// (testdata/routing/example: built-in TF-IDF + logistic-regression classifier over 14 categories, keyword and
// context signals, decisions, jailbreak and PII guards, per-model PII policy, reasoning, exact cache lookup, tool
// selection) deciding for the 308 queries of testdata/routing/mmlu_pro_categories.jsonl in turn. Each call of
// SemanticRouterEngine.route() is timed on its own; the figures are percentiles over all timed calls. The target
// (issue 7) is < 1 ms per decision. Run: deno run -A bench/routing_bench.ts --help
import process from "node:process";
import { parseArgs } from "node:util";
import { loadGatewayConfig } from "../src/control/gateway_config.ts";
import { systemClock } from "../src/observability/clock.ts";
import type { SemanticRouterConfig } from "../src/routing/config.ts";
import { type RoutingRequest, SemanticRouterEngine } from "../src/routing/router_engine.ts";
import { builtinClassifier } from "../src/routing/signals.ts";
import { trainCategoryClassifier } from "../src/routing/category_classifier.ts";
import { parseRoutingDataset } from "../src/routing/routing_eval.ts";
import { intFlag } from "./support/flags.ts";

const USAGE = `Usage: deno run -A bench/routing_bench.ts [flags]

  --requests N    timed decisions per variant (default 20000)
  --warmup N      untimed decisions first (default 3000)
  --record        append the figures to bench/RESULTS.md (date, commit, machine)
  -h, --help      show this help

Variants: "full" is everything the example router does for a request; "no cache" drops the cache lookup (SHA-256
of the conversation, async); "classifier" is the built-in classifier alone. Remote calls are impossible: the
bench's fetch throws, and a decision that tried one would fail the run.`;

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "20000" },
    warmup: { type: "string", default: "3000" },
    record: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const requests = intFlag("requests", values.requests!, 1);
const warmup = intFlag("warmup", values.warmup!, 0);

const loaded = await loadGatewayConfig(
  ["testdata/routing/example/gateway.yaml", "testdata/routing/example/semantic_router.yaml"],
  { extProcTarget: "unix:///tmp/unused.sock", env: {} },
);
if (!loaded.ok) throw new Error(`The example config does not load: ${JSON.stringify(loaded.errors)}`);
const router = loaded.snapshot.semanticRouters![0]!;
const queries = parseRoutingDataset(await Deno.readTextFile("testdata/routing/mmlu_pro_categories.jsonl"))
  .map((r) => r.query);

// Training time: the synchronous trainer, so the figure is CPU work, not the yields of the one sidecars use.
const builtin = router.classifier as SemanticRouterConfig["classifier"] & { kind: "builtin" };
const trainStart = performance.now();
trainCategoryClassifier(builtin.examples, { l2: builtin.l2, epochs: builtin.epochs });
const trainingMs = performance.now() - trainStart;

const services = {
  clock: systemClock,
  fetch: () => Promise.reject(new Error("The routing bench makes no remote calls")),
};
const TOOLS = [
  "get_weather",
  "send_email",
  "search_docs",
  "create_ticket",
  "convert_currency",
  "book_meeting",
  "solve_equation",
  "translate_text",
  "get_stock_price",
  "run_sql",
]
  .map((name) => ({
    type: "function",
    function: { name, description: name.replace(/_/g, " "), parameters: { type: "object" } },
  }));

function request(i: number): RoutingRequest {
  const query = queries[i % queries.length]!;
  // Every tenth request carries ten tools (top-8 kept); the rest are plain questions.
  const tools = i % 10 === 0 ? { tools: TOOLS } : {};
  return {
    endpoint: "chatCompletions",
    model: "auto",
    stream: false,
    body: {
      model: "auto",
      messages: [{ role: "system", content: "Answer briefly." }, { role: "user", content: query }],
      ...tools,
    },
    headers: new Map([["content-type", "application/json"]]),
  };
}

interface Figures {
  readonly variant: string;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
  /** Process CPU time per decision over the timed run: what load on the machine cannot inflate. */
  readonly cpu: number;
}

async function measure(variant: string, decide: (i: number) => Promise<unknown> | unknown): Promise<Figures> {
  for (let i = 0; i < warmup; i++) await decide(i);
  const times = new Float64Array(requests);
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    const t0 = performance.now();
    await decide(i);
    times[i] = (performance.now() - t0) * 1000;
  }
  const used = process.cpuUsage(cpu0);
  times.sort();
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const cpu = (used.user + used.system) / requests;
  return { variant, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: times[times.length - 1]!, mean, cpu };
}

const signal = new AbortController().signal;
const check = (o: Awaited<ReturnType<SemanticRouterEngine["route"]>>) => {
  if (o.kind !== "routed") throw new Error(`Unexpected ${o.kind} outcome in the bench`);
  return o;
};
const full = new SemanticRouterEngine(router, services);
const { cache: _cache, ...withoutCache } = router;
const noCache = new SemanticRouterEngine(withoutCache, services);
const classifier = await builtinClassifier(builtin);

const results = [
  await measure("full", async (i) => check(await full.route(request(i), signal))),
  await measure("no cache", async (i) => check(await noCache.route(request(i), signal))),
  await measure("classifier", (i) => classifier.classify(queries[i % queries.length]!)),
];

const fmt = (us: number) => us >= 100 ? us.toFixed(0) : us.toFixed(1);
const table = [
  "| variant    | p50 µs | p90 µs | p99 µs | max µs | mean µs | CPU µs |",
  "| ---------- | -----: | -----: | -----: | -----: | ------: | -----: |",
  ...results.map((r) =>
    `| ${r.variant.padEnd(10)} | ${fmt(r.p50)} | ${fmt(r.p90)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${fmt(r.mean)} | ${
      fmt(r.cpu)
    } |`
  ),
].join("\n");
console.log(table);
console.log(
  `training: ${trainingMs.toFixed(0)} ms for ${
    router.classifier.kind === "builtin" ? router.classifier.examples.length : 0
  } texts`,
);

const commit = await output(["git", "rev-parse", "--short", "HEAD"]);
const machine =
  `${navigator.hardwareConcurrency} vCPUs, ${(await output(["uname", "-sr"]))}, Deno ${Deno.version.deno}`;
console.log(
  JSON.stringify({ bench: "routing", commit, requests, warmup, trainingMs: Math.round(trainingMs), results }),
);

if (values.record) {
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "?")).split(" ")[0];
  const section = `
## Semantic routing decision (issue 7)

- **Date**: ${date}. **Commit**: ${commit} (\`git rev-parse --short HEAD\`; the working tree had uncommitted changes).
- **Machine**: ${machine}; 1-minute load average ${load} at the end of the run.
- **Command**: \`deno run -A bench/routing_bench.ts\` (${requests} timed decisions per variant after ${warmup} untimed).
- **What**: \`SemanticRouterEngine.route()\` of the shipped example router for the 308 evaluation queries in turn (a
  system prompt and the query; every tenth request with ten tools), without remote calls. Target: < 1 ms.

${table}

Training the built-in classifier at start-up (${
    router.classifier.kind === "builtin" ? router.classifier.examples.length : 0
  } texts, 14 categories): ${trainingMs.toFixed(0)} ms.
`;
  await Deno.writeTextFile("bench/RESULTS.md", section, { append: true });
  console.log("Appended to bench/RESULTS.md");
}

async function output(cmd: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), stdout: "piped", stderr: "null" }).output();
    return new TextDecoder().decode(out.stdout).trim() || "unknown";
  } catch {
    return "unknown";
  }
}
