// SemanticRouter of tollgate.dev/v1alpha1: choose the model from the prompt (signals, decisions, per-category model
// scores, reasoning), guard it (PII, jailbreak), answer repeats from a cache and trim tool lists. Names follow vLLM
// Semantic Router's config where it has one (categories with model scores, reasoning families, decisions with
// priorities, keyword/embedding signals), in camelCase as Kubernetes resources spell fields. Cross-field checks
// (regular expressions, references to models, categories and signals) happen when the resource is compiled.
import { z } from "zod";
import { duration, localObjectReference } from "./common.ts";

const name = z.string().min(1).max(253);
const probability = z.number().min(0).max(1);
const reasoningEffort = z.enum(["low", "medium", "high"]);

const modelRef = z.strictObject({
  name,
  /** Higher is better; the best-scoring model that policy allows is chosen. Default 1. */
  score: z.number().min(0).optional(),
  /** Turn the model's reasoning on for this choice (through its reasoning family). */
  reasoning: z.boolean().optional(),
});

export interface ConditionSpec {
  category?: string | undefined;
  minConfidence?: number | undefined;
  keyword?: string | undefined;
  embedding?: string | undefined;
  context?: string | undefined;
  all?: ConditionSpec[] | undefined;
  any?: ConditionSpec[] | undefined;
  not?: ConditionSpec | undefined;
}

const CONDITION_KEYS = ["category", "keyword", "embedding", "context", "all", "any", "not"] as const;

/** Exactly one of the keys; `minConfidence` only beside `category`. */
const condition: z.ZodType<ConditionSpec> = z.lazy(() =>
  z.strictObject({
    category: name.optional(),
    minConfidence: probability.optional(),
    keyword: name.optional(),
    embedding: name.optional(),
    context: name.optional(),
    all: z.array(condition).min(1).optional(),
    any: z.array(condition).min(1).optional(),
    not: condition.optional(),
  }).superRefine((c, ctx) => {
    const present = CONDITION_KEYS.filter((k) => c[k] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: `A condition needs exactly one of ${CONDITION_KEYS.join(", ")}; got ${
          present.length === 0 ? "none" : present.join(", ")
        }`,
      });
    }
    if (c.minConfidence !== undefined && c.category === undefined) {
      ctx.addIssue({ code: "custom", path: ["minConfidence"], message: "minConfidence needs category" });
    }
  })
);

const category = z.strictObject({
  name,
  /** Also training text for the built-in classifier: each comma-separated phrase counts as an example. */
  description: z.string().optional(),
  /** Labelled queries for the built-in classifier. */
  examples: z.array(z.string().min(1)).optional(),
  models: z.array(modelRef).min(1).optional(),
  reasoningEffort: reasoningEffort.optional(),
});

const remoteEndpoint = z.strictObject({ url: z.url({ protocol: /^https?$/ }), timeout: duration.optional() });

const classifier = z.strictObject({
  /** builtin: TF-IDF + logistic regression trained at start-up; remote: a classifier server you run. */
  type: z.enum(["builtin", "remote", "none"]).optional(),
  l2: z.number().min(0).optional(),
  epochs: z.number().int().min(1).max(10_000).optional(),
  remote: remoteEndpoint.optional(),
});

const keywordSignal = z.strictObject({
  name,
  operator: z.enum(["any", "all", "none"]).optional(),
  /** Regular expressions (JavaScript syntax). */
  patterns: z.array(z.string().min(1)).min(1),
  caseSensitive: z.boolean().optional(),
});

const embeddingSignal = z.strictObject({
  name,
  examples: z.array(z.string().min(1)).min(1),
  threshold: probability,
  aggregation: z.enum(["max", "mean"]).optional(),
});

const contextSignal = z.strictObject({
  name,
  minTokens: z.number().int().min(0).optional(),
  maxTokens: z.number().int().min(0).optional(),
});

const decision = z.strictObject({
  name,
  /** Higher first; the first decision whose condition holds wins. */
  priority: z.number().int().optional(),
  when: condition,
  category: name.optional(),
  models: z.array(modelRef).min(1).optional(),
  reasoningEffort: reasoningEffort.optional(),
});

const piiTypes = z.array(z.string().min(1));

const modelConfig = z.strictObject({
  name,
  reasoningFamily: name.optional(),
  /** Largest prompt the model takes, in tokens; a longer prompt skips it. */
  contextWindow: z.number().int().min(1).optional(),
  pii: z.strictObject({
    /** Default true: every PII type may go to this model unless denied. */
    allowByDefault: z.boolean().optional(),
    allowedTypes: piiTypes.optional(),
    deniedTypes: piiTypes.optional(),
  }).optional(),
});

export const semanticRouterSpec = z.strictObject({
  /** Model names that ask for routing. Default ["auto"]. */
  models: z.array(name).min(1).optional(),
  /** AIGatewayRoutes whose every model is routed: the model the client named is the fallback. */
  targetRefs: z.array(localObjectReference).optional(),
  defaultModel: name,
  /** Below this classifier confidence the default model is used. Default 0.3. */
  confidenceThreshold: probability.optional(),
  classifier: classifier.optional(),
  categories: z.array(category).optional(),
  /** An OpenAI-compatible /v1/embeddings endpoint for embedding signals and the similarity cache. */
  embeddings: z.strictObject({
    url: z.url({ protocol: /^https?$/ }),
    model: z.string().min(1),
    timeout: duration.optional(),
    cacheEntries: z.number().int().min(0).optional(),
  }).optional(),
  signals: z.strictObject({
    keywords: z.array(keywordSignal).optional(),
    embeddings: z.array(embeddingSignal).optional(),
    contextLength: z.array(contextSignal).optional(),
  }).optional(),
  decisions: z.array(decision).optional(),
  reasoningFamilies: z.record(
    name,
    z.strictObject({ type: z.enum(["chat_template_kwargs", "reasoning_effort"]), parameter: z.string().min(1) }),
  ).optional(),
  modelConfig: z.array(modelConfig).optional(),
  guards: z.strictObject({
    pii: z.strictObject({
      /** block: any detected PII is refused (403); policy (default): only per-model PII policies apply. */
      action: z.enum(["block", "policy"]).optional(),
      types: piiTypes.optional(),
      /** Values that are never PII here: literals, or regular expressions written /like this/. */
      allow: z.array(z.string().min(1)).optional(),
    }).optional(),
    jailbreak: z.strictObject({
      threshold: probability.optional(),
      remote: z.strictObject({
        url: z.url({ protocol: /^https?$/ }),
        timeout: duration.optional(),
        failureMode: z.enum(["open", "closed"]).optional(),
      }).optional(),
    }).optional(),
  }).optional(),
  cache: z.strictObject({
    mode: z.enum(["exact", "similarity"]).optional(),
    threshold: probability.optional(),
    ttl: duration.optional(),
    maxEntries: z.number().int().min(1).optional(),
    backend: z.enum(["memory", "nats"]).optional(),
    bucket: z.string().regex(/^[a-zA-Z0-9_-]+$/, "Is not a NATS KV bucket name").optional(),
    maxResponseBytes: z.number().int().min(1).optional(),
  }).optional(),
  toolSelection: z.strictObject({ topK: z.number().int().min(1) }).optional(),
  /** Whether `x-tollgate-debug: true` adds the matched signals to the response. Default true. */
  debugHeaders: z.boolean().optional(),
});

export type SemanticRouterSpec = z.output<typeof semanticRouterSpec>;
