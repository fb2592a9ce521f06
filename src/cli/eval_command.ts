// `tollgate eval routing|pii|jailbreak FILE`: how well the routing classifier and the guards do on a labelled JSONL
// file, with the figures a user needs to pick thresholds (accuracy, precision and recall, confusion).
import { loadResources } from "../control/resources/load.ts";
import { formatResourceError } from "../control/resources/errors.ts";
import type { AIGatewayRoute, SemanticRouter } from "../control/resources/resource.ts";
import { systemClock } from "../observability/clock.ts";
import { compileSemanticRouters } from "../routing/compile_router.ts";
import type { SemanticRouterConfig } from "../routing/config.ts";
import {
  evaluateJailbreak,
  evaluatePii,
  formatJailbreakEvaluation,
  formatPiiEvaluation,
  parseJailbreakDataset,
  parsePiiDataset,
} from "../routing/guard_eval.ts";
import { classifyRemote } from "../routing/remote_classifier.ts";
import { evaluateRouting, formatRoutingEvaluation, parseRoutingDataset } from "../routing/routing_eval.ts";
import { builtinClassifier } from "../routing/signals.ts";
import { type Parsed, parseFlags, stringFlag, UsageError } from "./args.ts";

export const EVAL_FLAGS = {
  config: { type: "string" },
  router: { type: "string" },
  threshold: { type: "string" },
  mistakes: { type: "string" },
} as const;

export const EVAL_HELP = `Usage: tollgate eval routing DATASET.jsonl --config CONFIG [--router NS/NAME] [--threshold X]
       tollgate eval pii FILE.jsonl
       tollgate eval jailbreak FILE.jsonl [--threshold X]

Evaluates, on a labelled JSONL file:
  routing     the category classifier of a SemanticRouter (lines {"query": ..., "category": ...}): accuracy,
              share above the confidence threshold, per-category precision and recall, confusion matrix
  pii         PII detection (lines {"text": ..., "types": [...]}): precision and recall per type
  jailbreak   jailbreak and prompt-injection detection (lines {"text": ..., "jailbreak": true|false})

Flags:
  --config PATH      resources holding the SemanticRouter (file or directory; routing only)
  --router NS/NAME   which SemanticRouter, when CONFIG holds several
  --threshold X      confidence threshold (routing; default: the router's) or score threshold (jailbreak)
  --mistakes N       how many misclassified lines to print (default 20)
  -h, --help         show this help
`;

export async function evalCommand(args: readonly string[]): Promise<number> {
  const p = parseFlags("eval", args, EVAL_FLAGS, 2);
  const [what, file] = p.positionals;
  if (what === undefined || file === undefined) {
    throw new UsageError("tollgate eval: give what to evaluate (routing, pii or jailbreak) and a JSONL file");
  }
  const maxMistakes = intFlag(p, "mistakes", 20);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    console.error(`tollgate eval: cannot read ${file}: ${(e as Error).message}`);
    return 1;
  }
  try {
    switch (what) {
      case "routing":
        return await evalRouting(p, text, maxMistakes);
      case "pii":
        console.log(formatPiiEvaluation(evaluatePii(parsePiiDataset(text)), { maxMistakes }));
        return 0;
      case "jailbreak": {
        const threshold = numberFlag(p, "threshold");
        const e = evaluateJailbreak(parseJailbreakDataset(text), threshold === undefined ? {} : { threshold });
        console.log(formatJailbreakEvaluation(e, { maxMistakes }));
        return 0;
      }
      default:
        throw new UsageError(`tollgate eval: unknown evaluation "${what}"; use routing, pii or jailbreak`);
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    console.error(`tollgate eval: ${(e as Error).message}`);
    return 1;
  }
}

async function evalRouting(p: Parsed, text: string, maxMistakes: number): Promise<number> {
  const configPath = stringFlag(p, "config", "");
  if (configPath === "") throw new UsageError("tollgate eval routing: --config is required (the SemanticRouter)");
  const router = await loadRouter(configPath, stringFlag(p, "router", ""));
  if ("error" in router) {
    console.error(router.error);
    return 1;
  }
  const config = router.config;
  const c = config.classifier;
  if (c.kind === "none") {
    console.error(`tollgate eval: SemanticRouter ${config.name} has no classifier (no examples, no remote)`);
    return 1;
  }
  const rows = parseRoutingDataset(text);
  const started = performance.now();
  const trained = c.kind === "builtin" ? await builtinClassifier(c) : undefined;
  const trainingMs = performance.now() - started;
  const classifyStart = performance.now();
  const e = await evaluateRouting(
    rows,
    (query) =>
      trained
        ? Promise.resolve(trained.classify(query))
        : classifyRemote(query, { ...(c as { url: string; timeoutMs: number }), fetch, clock: systemClock }),
    {
      threshold: numberFlag(p, "threshold") ?? config.confidenceThreshold,
      categories: config.categories.map((x) => x.name),
    },
  );
  const perQueryMs = rows.length === 0 ? 0 : (performance.now() - classifyStart) / rows.length;
  console.log(`SemanticRouter ${config.name}: ${describeClassifier(config)}`);
  if (trained) console.log(`trained in ${trainingMs.toFixed(0)} ms; ${(perQueryMs * 1000).toFixed(0)} µs per query`);
  console.log(formatRoutingEvaluation(e, { maxMistakes }));
  return 0;
}

function describeClassifier(config: SemanticRouterConfig): string {
  const c = config.classifier;
  if (c.kind === "builtin") {
    const categories = new Set(c.examples.map((x) => x.category)).size;
    return `built-in classifier (TF-IDF + logistic regression), ${c.examples.length} training texts in ${categories} categories`;
  }
  return c.kind === "remote" ? `remote classifier at ${c.url}` : "no classifier";
}

async function loadRouter(path: string, name: string): Promise<{ config: SemanticRouterConfig } | { error: string }> {
  const loaded = await loadResources([path], { env: Deno.env.toObject() });
  const routers = loaded.resources.filter((r): r is SemanticRouter => r.kind === "SemanticRouter");
  const routes = loaded.resources.filter((r): r is AIGatewayRoute => r.kind === "AIGatewayRoute");
  // Only the routers' own errors matter here: the rest of the gateway need not be complete to evaluate them.
  const own = loaded.errors.filter((e) => e.kind === "SemanticRouter");
  const compiled = compileSemanticRouters(routers, { routes });
  const errors = [...own, ...compiled.errors];
  if (errors.length > 0) return { error: errors.map(formatResourceError).join("\n") };
  const chosen = name === "" ? compiled.configs : compiled.configs.filter((c) => c.name === name);
  if (chosen.length === 1) return { config: chosen[0]! };
  if (chosen.length === 0) {
    return { error: `tollgate eval: no SemanticRouter${name === "" ? "" : ` named ${name}`} in ${path}` };
  }
  return {
    error: `tollgate eval: ${path} holds several SemanticRouters (${chosen.map((c) => c.name).join(", ")}); pick one ` +
      "with --router",
  };
}

function numberFlag(p: Parsed, name: string): number | undefined {
  const v = p.values[name];
  if (typeof v !== "string") return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new UsageError(`tollgate eval: --${name} must be a number between 0 and 1, got "${v}"`);
  }
  return n;
}

function intFlag(p: Parsed, name: string, fallback: number): number {
  const v = p.values[name];
  if (typeof v !== "string") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new UsageError(`tollgate eval: --${name} must be a non-negative integer, got "${v}"`);
  }
  return n;
}
