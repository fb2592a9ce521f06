// SemanticRouter resources → SemanticRouterConfig, with every cross-field problem reported where it is (file,
// document, resource, field path): regular expressions that do not compile, models no route serves, names of
// categories and signals that do not exist, features that need an embeddings endpoint without one. Pure.
import { durationMs } from "../control/resources/common.ts";
import { errorAt, type PathSegment, type ResourceError } from "../control/resources/errors.ts";
import type { AIGatewayRoute, SemanticRouter } from "../control/resources/resource.ts";
import { qualifiedName } from "../control/resources/resource.ts";
import { compileModels } from "../control/compile/models.ts";
import { DEFAULT_SIMILARITY_THRESHOLD } from "./cache.ts";
import { SEMANTIC_CACHE_BUCKET } from "./cache_nats_kv.ts";
import type { ModelRef, SemanticRouterConfig } from "./config.ts";
import { compileClassifier, compileCondition } from "./compile_signals.ts";
import { DEFAULT_JAILBREAK_THRESHOLD } from "./jailbreak.ts";
import { keywordPatternError } from "./keyword_signal.ts";
import { compileAllowRule, PII_TYPES, type PiiType } from "./pii.ts";

export const DEFAULT_TRIGGER_MODEL = "auto";
export const DEFAULT_CONFIDENCE_THRESHOLD = 0.3;
const DEFAULT_REMOTE_TIMEOUT_MS = 500;

export interface RouterCompileContext {
  /** Models the gateway routes; undefined skips the model checks (e.g. `tollgate eval` on a router alone). */
  readonly models?: readonly string[];
  readonly routes: readonly AIGatewayRoute[];
}

export function compileSemanticRouters(
  routers: readonly SemanticRouter[],
  ctx: RouterCompileContext,
): { configs: SemanticRouterConfig[]; errors: ResourceError[] } {
  const errors: ResourceError[] = [];
  const configs: SemanticRouterConfig[] = [];
  const claimed = new Map<string, string>();
  for (const r of routers) {
    const config = compileRouter(r, ctx, errors);
    for (const m of [...config.triggerModels, ...config.routeModels]) {
      const other = claimed.get(m);
      if (other) {
        errors.push(errorAt(r.origin, "spec", `Model "${m}" is already routed by SemanticRouter "${other}"`));
      } else claimed.set(m, config.name);
    }
    configs.push(config);
  }
  return { configs, errors };
}

function compileRouter(r: SemanticRouter, ctx: RouterCompileContext, errors: ResourceError[]): SemanticRouterConfig {
  const spec = r.spec;
  const fail = (path: PathSegment[], message: string) => errors.push(errorAt(r.origin, ["spec", ...path], message));
  const served = ctx.models ? new Set(ctx.models) : undefined;
  const checkModel = (name: string, path: PathSegment[]) => {
    if (served && !served.has(name)) fail(path, `Model "${name}" is not served by any AIGatewayRoute`);
  };

  const triggerModels = spec.models ?? [DEFAULT_TRIGGER_MODEL];
  triggerModels.forEach((m, i) => {
    if (served?.has(m)) {
      fail(["models", i], `Model "${m}" is served by an AIGatewayRoute; a routing trigger must not be`);
    }
  });
  const routeModels: string[] = [];
  (spec.targetRefs ?? []).forEach((ref, i) => {
    const route = ctx.routes.find((x) => x.metadata.namespace === r.metadata.namespace && x.metadata.name === ref.name);
    if (ref.kind !== undefined && ref.kind !== "AIGatewayRoute") {
      fail(["targetRefs", i, "kind"], `Expected kind AIGatewayRoute, got ${ref.kind}`);
    } else if (!route) {
      fail(["targetRefs", i, "name"], `AIGatewayRoute "${r.metadata.namespace}/${ref.name}" is not defined`);
    } else routeModels.push(...compileModels([route]).map((m) => m.id).filter((m) => !routeModels.includes(m)));
  });
  checkModel(spec.defaultModel, ["defaultModel"]);

  const refs = (
    list: { name: string; score?: number | undefined; reasoning?: boolean | undefined }[],
    path: PathSegment[],
  ) => {
    list.forEach((m, i) => checkModel(m.name, [...path, i, "name"]));
    const out: ModelRef[] = list.map((m) => ({ model: m.name, score: m.score ?? 1, reasoning: m.reasoning ?? false }));
    return out.sort((a, b) => b.score - a.score);
  };
  const categories = (spec.categories ?? []).map((c, i) => ({
    name: c.name,
    models: refs(c.models ?? [], ["categories", i, "models"]),
    ...(c.reasoningEffort ? { reasoningEffort: c.reasoningEffort } : {}),
  }));
  unique(categories.map((c) => c.name), ["categories"], "category", fail);

  const classifier = compileClassifier(r, fail);
  const signals = spec.signals ?? {};
  const keywordRules = (signals.keywords ?? []).map((k, i) => {
    k.patterns.forEach((p, j) => {
      const error = keywordPatternError(p, k.caseSensitive ?? false);
      if (error) fail(["signals", "keywords", i, "patterns", j], error);
    });
    return {
      name: k.name,
      operator: k.operator ?? "any",
      patterns: k.patterns,
      caseSensitive: k.caseSensitive ?? false,
    };
  });
  const embeddingRules = (signals.embeddings ?? []).map((e) => ({
    name: e.name,
    examples: e.examples,
    threshold: e.threshold,
    aggregation: e.aggregation ?? "max",
  }));
  if (embeddingRules.length > 0 && !spec.embeddings) {
    fail(
      ["signals", "embeddings"],
      "Embedding signals need spec.embeddings (an OpenAI-compatible embeddings endpoint)",
    );
  }
  const contextRules = (signals.contextLength ?? []).map((c, i) => {
    if (c.minTokens === undefined && c.maxTokens === undefined) {
      fail(["signals", "contextLength", i], "Set minTokens, maxTokens or both");
    }
    return {
      name: c.name,
      ...(c.minTokens === undefined ? {} : { minTokens: c.minTokens }),
      ...(c.maxTokens === undefined ? {} : { maxTokens: c.maxTokens }),
    };
  });
  unique(keywordRules.map((k) => k.name), ["signals", "keywords"], "keyword signal", fail);
  unique(embeddingRules.map((k) => k.name), ["signals", "embeddings"], "embedding signal", fail);
  unique(contextRules.map((k) => k.name), ["signals", "contextLength"], "context signal", fail);

  const names = {
    category: new Set(categories.map((c) => c.name)),
    keyword: new Set(keywordRules.map((k) => k.name)),
    embedding: new Set(embeddingRules.map((k) => k.name)),
    context: new Set(contextRules.map((k) => k.name)),
  };
  const decisions = (spec.decisions ?? []).map((d, i) => {
    const path: PathSegment[] = ["decisions", i];
    const when = compileCondition(d.when, [...path, "when"], names, fail);
    if (d.category !== undefined && !names.category.has(d.category)) {
      fail([...path, "category"], `Category "${d.category}" is not defined in spec.categories`);
    }
    if (!d.models && d.category === undefined) fail(path, "A decision needs models, a category, or both");
    return {
      name: d.name,
      priority: d.priority ?? 0,
      when,
      ...(d.category === undefined ? {} : { category: d.category }),
      models: refs(d.models ?? [], [...path, "models"]),
      ...(d.reasoningEffort ? { reasoningEffort: d.reasoningEffort } : {}),
    };
  }).sort((a, b) => b.priority - a.priority);
  unique(decisions.map((d) => d.name), ["decisions"], "decision", fail);

  const families = spec.reasoningFamilies ?? {};
  const models = (spec.modelConfig ?? []).map((m, i) => {
    checkModel(m.name, ["modelConfig", i, "name"]);
    if (m.reasoningFamily !== undefined && !(m.reasoningFamily in families)) {
      fail(
        ["modelConfig", i, "reasoningFamily"],
        `Reasoning family "${m.reasoningFamily}" is not in spec.reasoningFamilies`,
      );
    }
    return {
      model: m.name,
      ...(m.reasoningFamily === undefined ? {} : { reasoningFamily: m.reasoningFamily }),
      ...(m.contextWindow === undefined ? {} : { contextWindow: m.contextWindow }),
      pii: {
        allowByDefault: m.pii?.allowByDefault ?? true,
        allowed: piiTypeList(m.pii?.allowedTypes, ["modelConfig", i, "pii", "allowedTypes"], fail),
        denied: piiTypeList(m.pii?.deniedTypes, ["modelConfig", i, "pii", "deniedTypes"], fail),
      },
    };
  });
  unique(models.map((m) => m.model), ["modelConfig"], "model", fail);

  const guards = spec.guards ?? {};
  const pii = guards.pii
    ? {
      action: guards.pii.action ?? "policy" as const,
      types: piiTypeList(guards.pii.types, ["guards", "pii", "types"], fail),
      allow: (guards.pii.allow ?? []).filter((a, i) => {
        try {
          compileAllowRule(a);
          return true;
        } catch (e) {
          fail(["guards", "pii", "allow", i], (e as Error).message);
          return false;
        }
      }),
    }
    : undefined;
  const jb = guards.jailbreak;
  if (jb?.threshold === 0) fail(["guards", "jailbreak", "threshold"], "Must be greater than 0");
  const jailbreak = jb
    ? {
      threshold: jb.threshold ?? DEFAULT_JAILBREAK_THRESHOLD,
      ...(jb.remote
        ? {
          remote: {
            url: jb.remote.url,
            timeoutMs: jb.remote.timeout ? durationMs(jb.remote.timeout) : DEFAULT_REMOTE_TIMEOUT_MS,
            failureMode: jb.remote.failureMode ?? "open" as const,
          },
        }
        : {}),
    }
    : undefined;

  const c = spec.cache;
  if (c?.mode === "similarity" && !spec.embeddings) {
    fail(["cache", "mode"], "The similarity cache needs spec.embeddings (an OpenAI-compatible embeddings endpoint)");
  }
  if (c?.threshold === 0) fail(["cache", "threshold"], "Must be greater than 0");
  const ttlMs = c?.ttl ? durationMs(c.ttl) : 3_600_000;
  if (ttlMs <= 0) fail(["cache", "ttl"], "Must be longer than 0");
  const cache = c
    ? {
      mode: c.mode ?? "exact" as const,
      threshold: c.threshold ?? DEFAULT_SIMILARITY_THRESHOLD,
      ttlMs,
      maxEntries: c.maxEntries ?? 10_000,
      backend: c.backend ?? "memory" as const,
      bucket: c.bucket ?? SEMANTIC_CACHE_BUCKET,
      maxResponseBytes: c.maxResponseBytes ?? 1 << 20,
    }
    : undefined;

  return {
    name: qualifiedName(r),
    triggerModels,
    routeModels,
    defaultModel: spec.defaultModel,
    confidenceThreshold: spec.confidenceThreshold ?? DEFAULT_CONFIDENCE_THRESHOLD,
    categories,
    classifier,
    ...(spec.embeddings
      ? {
        embeddings: {
          url: spec.embeddings.url,
          model: spec.embeddings.model,
          timeoutMs: spec.embeddings.timeout ? durationMs(spec.embeddings.timeout) : DEFAULT_REMOTE_TIMEOUT_MS,
          cacheEntries: spec.embeddings.cacheEntries ?? 10_000,
        },
      }
      : {}),
    keywordRules,
    embeddingRules,
    contextRules,
    decisions,
    models,
    reasoningFamilies: families,
    ...(pii ? { pii } : {}),
    ...(jailbreak ? { jailbreak } : {}),
    ...(cache ? { cache } : {}),
    ...(spec.toolSelection ? { toolSelection: { topK: spec.toolSelection.topK } } : {}),
    debugHeaders: spec.debugHeaders ?? true,
  };
}

function piiTypeList(
  list: readonly string[] | undefined,
  path: PathSegment[],
  fail: (path: PathSegment[], message: string) => void,
): PiiType[] {
  const out: PiiType[] = [];
  (list ?? []).forEach((t, i) => {
    if ((PII_TYPES as readonly string[]).includes(t)) out.push(t as PiiType);
    else fail([...path, i], `Unknown PII type "${t}"; expected one of ${PII_TYPES.join(", ")}`);
  });
  return out;
}

function unique(
  names: readonly string[],
  path: PathSegment[],
  what: string,
  fail: (path: PathSegment[], message: string) => void,
): void {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (seen.has(n)) fail([...path, i, "name"], `Duplicate ${what} name "${n}"`);
    seen.add(n);
  });
}
