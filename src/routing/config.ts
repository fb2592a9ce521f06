// The compiled form of a SemanticRouter resource: plain, JSON-shaped data that a snapshot carries to every sidecar.
// Nothing here is trained or connected; the sidecar builds its engine (classifier, clients, caches) from it.
import type { PiiType } from "./pii.ts";

export type ReasoningEffort = "low" | "medium" | "high";

/** How a model family is told to think: a chat-template switch (Qwen3, DeepSeek) or OpenAI's reasoning_effort. */
export interface ReasoningFamilyConfig {
  readonly type: "chat_template_kwargs" | "reasoning_effort";
  /** The kwarg (e.g. "enable_thinking", "thinking") or the body field (e.g. "reasoning_effort"). */
  readonly parameter: string;
}

export interface ModelRef {
  readonly model: string;
  readonly score: number;
  readonly reasoning: boolean;
}

export interface CategoryConfig {
  readonly name: string;
  /** Candidate models, best first (sorted by score at compile time). */
  readonly models: readonly ModelRef[];
  readonly reasoningEffort?: ReasoningEffort;
}

export interface ModelPolicyConfig {
  readonly model: string;
  readonly reasoningFamily?: string;
  /** Largest prompt, in estimated tokens, the model takes; longer prompts skip it. */
  readonly contextWindow?: number;
  /** PII this model may receive: every type, or only the listed ones. */
  readonly pii: {
    readonly allowByDefault: boolean;
    readonly allowed: readonly PiiType[];
    readonly denied: readonly PiiType[];
  };
}

export type ClassifierConfig =
  | {
    readonly kind: "builtin";
    readonly examples: readonly { readonly category: string; readonly text: string }[];
    /** L2 strength and epochs of the logistic regression. */
    readonly l2: number;
    readonly epochs: number;
  }
  /** A classifier the user runs (e.g. a fine-tuned BERT): POST {"text"} → {"category","confidence"}. */
  | { readonly kind: "remote"; readonly url: string; readonly timeoutMs: number }
  | { readonly kind: "none" };

export interface EmbeddingEndpointConfig {
  /** An OpenAI-compatible /v1/embeddings URL. */
  readonly url: string;
  readonly model: string;
  readonly timeoutMs: number;
  /** Entries of the in-memory embedding cache. */
  readonly cacheEntries: number;
}

export interface KeywordRuleConfig {
  readonly name: string;
  /** any: one pattern matches; all: every pattern matches; none: no pattern matches. */
  readonly operator: "any" | "all" | "none";
  readonly patterns: readonly string[];
  readonly caseSensitive: boolean;
}

export interface EmbeddingRuleConfig {
  readonly name: string;
  readonly examples: readonly string[];
  readonly threshold: number;
  readonly aggregation: "max" | "mean";
}

export interface ContextRuleConfig {
  readonly name: string;
  readonly minTokens?: number;
  readonly maxTokens?: number;
}

export type Condition =
  | { readonly category: string; readonly minConfidence?: number }
  | { readonly keyword: string }
  | { readonly embedding: string }
  | { readonly context: string }
  | { readonly all: readonly Condition[] }
  | { readonly any: readonly Condition[] }
  | { readonly not: Condition };

export interface DecisionConfig {
  readonly name: string;
  readonly priority: number;
  readonly when: Condition;
  /** The category the decision reports and, without models, whose model scores it uses. */
  readonly category?: string;
  readonly models: readonly ModelRef[];
  readonly reasoningEffort?: ReasoningEffort;
}

export interface PiiGuardConfig {
  /** block: any detected PII is refused; policy: only the per-model PII policies apply. */
  readonly action: "block" | "policy";
  /** Types to look for; empty means every type the detector knows. */
  readonly types: readonly PiiType[];
  /** Literal values or regular expressions (/.../) that are never PII here. */
  readonly allow: readonly string[];
}

export interface JailbreakGuardConfig {
  readonly threshold: number;
  readonly remote?: {
    readonly url: string;
    readonly timeoutMs: number;
    /** open: a classifier that is down lets requests through; closed: it refuses them. */
    readonly failureMode: "open" | "closed";
  };
}

export interface CacheConfig {
  readonly mode: "exact" | "similarity";
  readonly threshold: number;
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly backend: "memory" | "nats";
  /** NATS KV bucket when backend is nats. */
  readonly bucket: string;
  /** Responses larger than this are not stored. */
  readonly maxResponseBytes: number;
}

export interface SemanticRouterConfig {
  /** "namespace/name" of the resource. */
  readonly name: string;
  /** Requests naming one of these models are routed (e.g. "auto"). */
  readonly triggerModels: readonly string[];
  /** Models served by the routes that enable routing: requests naming them are routed too, and the named model
   * is their fallback instead of defaultModel. */
  readonly routeModels: readonly string[];
  readonly defaultModel: string;
  readonly confidenceThreshold: number;
  readonly categories: readonly CategoryConfig[];
  readonly classifier: ClassifierConfig;
  readonly embeddings?: EmbeddingEndpointConfig;
  readonly keywordRules: readonly KeywordRuleConfig[];
  readonly embeddingRules: readonly EmbeddingRuleConfig[];
  readonly contextRules: readonly ContextRuleConfig[];
  /** Highest priority first. */
  readonly decisions: readonly DecisionConfig[];
  readonly models: readonly ModelPolicyConfig[];
  readonly reasoningFamilies: Readonly<Record<string, ReasoningFamilyConfig>>;
  readonly pii?: PiiGuardConfig;
  readonly jailbreak?: JailbreakGuardConfig;
  readonly cache?: CacheConfig;
  readonly toolSelection?: { readonly topK: number };
  /** Whether `x-tollgate-debug: true` from a client adds the matched signals to the response. */
  readonly debugHeaders: boolean;
}
