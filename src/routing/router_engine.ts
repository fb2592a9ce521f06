// One SemanticRouter at run time: the request-body step of a routed request. In order: guards (jailbreak, PII),
// the semantic cache, the signals, the decision, model selection under the PII policies, then the body the chosen
// model gets (model, reasoning, trimmed tools). Everything that talks to the network honours the stream's signal.
//
// Never fails a request for a routing problem: a classifier or embeddings error falls back to the default model
// and the reason is recorded (x-tollgate-debug shows it); only guards and the PII policy refuse requests.
import type { Clock } from "../observability/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { OpenAIError } from "../protocol/openai/errors.ts";
import { type CachedResponse, type CacheQuery, createMemoryCache, type SemanticCache } from "./cache.ts";
import { renderCachedReply } from "./cached_reply.ts";
import { type CacheWriter, startCacheWriter } from "./cache_writer.ts";
import type { CacheConfig, CategoryConfig, ModelPolicyConfig, ModelRef, SemanticRouterConfig } from "./config.ts";
import { firstDecision } from "./decisions.ts";
import { createEmbeddingClient, type EmbeddingClient } from "./embedding_client.ts";
import { EmbeddingSignals } from "./embedding_signal.ts";
import { blockedError, checkGuards, type GuardConfig } from "./guards_check.ts";
import { compileKeywordRule, type KeywordSignal } from "./keyword_signal.ts";
import { applyReasoning, selectModel } from "./model_selection.ts";
import { promptText } from "./prompt_text.ts";
import { type GatheredSignals, gatherSignals, type SignalSources } from "./signals.ts";
import { selectTools, type ToolLike } from "./tool_selection.ts";

export interface RoutingServices {
  readonly fetch: typeof fetch;
  /** Timeouts of remote calls. */
  readonly clock: Clock;
  /** The cache of a router; default: in memory, one per router. */
  readonly createCache?: (config: CacheConfig, router: string) => SemanticCache;
  readonly logger?: Logger;
}

export interface RoutingRequest {
  readonly endpoint: "chatCompletions" | "completions" | "messages" | "embeddings";
  readonly model: string;
  readonly stream: boolean;
  readonly body: Readonly<Record<string, unknown>>;
  readonly headers: ReadonlyMap<string, string>;
}

export interface CacheStore {
  readonly writer: CacheWriter;
  readonly query: CacheQuery;
  readonly maxBytes: number;
}

export type RoutingOutcome =
  | {
    readonly kind: "routed";
    readonly model: string;
    /** The body to send when it changed (model, reasoning, tools); undefined when the client's stands. */
    readonly body: Readonly<Record<string, unknown>> | undefined;
    /** For the client's response. */
    readonly headers: Readonly<Record<string, string>>;
    /** Where the answer goes when it is a complete 2xx. */
    readonly cacheStore?: CacheStore;
  }
  | { readonly kind: "blocked"; readonly error: OpenAIError; readonly headers: Readonly<Record<string, string>> }
  | { readonly kind: "cached"; readonly reply: CachedResponse; readonly headers: Readonly<Record<string, string>> };

export const DEBUG_HEADER = "x-tollgate-debug";
/** Body fields that do not change the answer, so they stay out of the cache key. */
const NOT_IN_CACHE_KEY = new Set(["messages", "model", "stream", "stream_options", "user", "metadata"]);

export class SemanticRouterEngine {
  readonly config: SemanticRouterConfig;
  readonly #signals: SignalSources;
  readonly #guards: GuardConfig;
  readonly #categories: ReadonlyMap<string, CategoryConfig>;
  readonly #policies: ReadonlyMap<string, ModelPolicyConfig>;
  readonly #embeddings: EmbeddingClient | undefined;
  readonly #cache: { readonly config: CacheConfig; readonly writer: CacheWriter } | undefined;
  readonly #logger: Logger | undefined;
  readonly #lookupCache: SemanticCache | undefined;

  constructor(config: SemanticRouterConfig, services: RoutingServices) {
    this.config = config;
    this.#logger = services.logger;
    this.#embeddings = config.embeddings
      ? createEmbeddingClient(config.embeddings, { fetch: services.fetch, clock: services.clock })
      : undefined;
    const keywords: KeywordSignal[] = config.keywordRules.map(compileKeywordRule);
    this.#signals = {
      classifier: config.classifier,
      keywords,
      embeddings: this.#embeddings ? new EmbeddingSignals(config.embeddingRules, this.#embeddings) : undefined,
      embeddingClient: this.#embeddings,
      contexts: config.contextRules,
      fetch: services.fetch,
      clock: services.clock,
    };
    this.#categories = new Map(config.categories.map((c) => [c.name, c]));
    this.#policies = new Map(config.models.map((m) => [m.model, m]));
    this.#guards = {
      ...(config.jailbreak ? { jailbreak: config.jailbreak } : {}),
      ...(config.pii ? { pii: config.pii } : {}),
      piiPolicies: config.models.some((m) => !m.pii.allowByDefault || m.pii.denied.length > 0),
    };
    if (config.cache) {
      const cache = services.createCache?.(config.cache, config.name) ?? createMemoryCache({
        mode: config.cache.mode,
        threshold: config.cache.threshold,
        ttlMs: config.cache.ttlMs,
        maxEntries: config.cache.maxEntries,
      });
      this.#cache = { config: config.cache, writer: startCacheWriter(cache, services.logger) };
      this.#lookupCache = cache;
    }
  }

  /** Whether a request naming `model` is routed by this router, and whether that model is its own fallback. */
  routes(model: string): "trigger" | "route" | undefined {
    if (this.config.triggerModels.includes(model)) return "trigger";
    if (this.config.routeModels.includes(model)) return "route";
    return undefined;
  }

  async route(req: RoutingRequest, signal: AbortSignal): Promise<RoutingOutcome> {
    const text = promptText(req.endpoint, req.body);
    const debug = this.config.debugHeaders && req.headers.get(DEBUG_HEADER)?.toLowerCase() === "true";
    const notes: string[] = [];
    const guard = await checkGuards(this.#guards, text.guarded, signal);
    notes.push(...guard.notes);
    if (guard.kind === "blocked") {
      return { kind: "blocked", error: guard.error, headers: debug ? { "x-tollgate-signals": notes.join(",") } : {} };
    }

    const cacheQuery = await this.#cacheQuery(req, text.conversation, signal, notes);
    if (cacheQuery?.lookup && this.#lookupCache) {
      const hit = await this.#lookupCache.lookup(cacheQuery.query, signal).catch((err: unknown) => {
        if (signal.aborted) throw signal.reason;
        this.#logger?.warn({ err, router: this.config.name }, "Semantic cache lookup failed; treated as a miss");
        return undefined;
      });
      if (hit) {
        const reply = renderCachedReply(hit.response, req.stream);
        notes.push(`cache:${hit.similarity.toFixed(3)}`);
        return { kind: "cached", reply, headers: { "x-tollgate-cache": "hit", ...this.#debug(debug, notes) } };
      }
    }

    const gathered = await gatherSignals(this.#signals, text.query, text.estimatedTokens, signal);
    const choice = this.#decide(gathered, req.model);
    notes.push(...signalNotes(gathered));
    const selection = selectModel(choice.candidates, choice.fallback, {
      piiTypes: guard.piiTypes,
      estimatedTokens: text.estimatedTokens,
      policies: this.#policies,
    });
    const decided: Record<string, string> = {
      ...(choice.category ? { "x-tollgate-category": choice.category } : {}),
      ...(gathered.classification ? { "x-tollgate-confidence": gathered.classification.confidence.toFixed(3) } : {}),
    };
    if (selection.kind === "blocked") {
      const error = blockedError(
        "pii_policy_violation",
        `The request was blocked: no model it may be routed to may receive the personal data it contains ` +
          `(${selection.piiTypes.join(", ")})`,
      );
      return { kind: "blocked", error, headers: { ...decided, ...this.#debug(debug, notes, choice) } };
    }
    for (const s of selection.skipped) notes.push(`skipped:${s.model}(${s.why})`);

    const body = this.#body(req, selection.model, selection.reasoning, choice.effort, text.query, notes);
    const headers: Record<string, string> = {
      "x-tollgate-selected-model": selection.model,
      ...decided,
      ...(cacheQuery?.lookup ? { "x-tollgate-cache": "miss" } : {}),
      ...this.#debug(debug, notes, choice),
    };
    const store = cacheQuery?.store && this.#cache
      ? { writer: this.#cache.writer, query: cacheQuery.query, maxBytes: this.#cache.config.maxResponseBytes }
      : undefined;
    return {
      kind: "routed",
      model: selection.model,
      body: body === req.body ? undefined : body,
      headers,
      ...(store ? { cacheStore: store } : {}),
    };
  }

  #decide(s: GatheredSignals, requested: string) {
    const fallback = this.routes(requested) === "route" ? requested : this.config.defaultModel;
    const decision = firstDecision(this.config.decisions, {
      ...(s.classification ? { classification: s.classification } : {}),
      confidenceThreshold: this.config.confidenceThreshold,
      keywords: s.keywords,
      embeddings: new Set(s.embeddingScores.filter((e) => e.matched).map((e) => e.name)),
      contexts: s.contexts,
    });
    const top = s.classification;
    if (decision) {
      const category = decision.category ?? top?.category;
      const cat = category === undefined ? undefined : this.#categories.get(category);
      const candidates: readonly ModelRef[] = decision.models.length > 0 ? decision.models : cat?.models ?? [];
      return {
        candidates,
        fallback,
        category,
        effort: decision.reasoningEffort ?? cat?.reasoningEffort,
        reason: `decision:${decision.name}`,
      };
    }
    const none = { candidates: [] as readonly ModelRef[], fallback, category: undefined, effort: undefined };
    if (!top) {
      return { ...none, reason: s.classifierError ? `classifier_error: ${s.classifierError}` : "no_signal" };
    }
    if (top.confidence < this.config.confidenceThreshold) {
      return { ...none, reason: `low_confidence:${top.category}(${top.confidence.toFixed(3)})` };
    }
    const cat = this.#categories.get(top.category);
    if (!cat || cat.models.length === 0) return { ...none, category: top.category, reason: "category_without_models" };
    return {
      candidates: cat.models,
      fallback,
      category: top.category,
      effort: cat.reasoningEffort,
      reason: `category:${top.category}`,
    };
  }

  #body(
    req: RoutingRequest,
    model: string,
    reasoning: boolean,
    effort: CategoryConfig["reasoningEffort"],
    query: string,
    notes: string[],
  ): Readonly<Record<string, unknown>> {
    let body = req.body.model === model ? req.body : { ...req.body, model };
    // Reasoning families are chat-template and chat-API switches: they mean nothing to completions or Anthropic.
    if (req.endpoint === "chatCompletions") {
      const familyName = this.#policies.get(model)?.reasoningFamily;
      const family = familyName === undefined ? undefined : this.config.reasoningFamilies[familyName];
      body = applyReasoning(body, family, reasoning, effort);
    }
    const topK = this.config.toolSelection?.topK;
    const tools = body.tools;
    const auto = body.tool_choice === undefined || body.tool_choice === "auto";
    if (
      topK !== undefined && auto && Array.isArray(tools) && tools.length > topK && req.endpoint === "chatCompletions"
    ) {
      const kept = selectTools(tools as ToolLike[], query, topK);
      notes.push(`tools:${kept.length}/${tools.length}`);
      body = { ...body, tools: kept };
    }
    return body;
  }

  /** The cache entry of this request, or undefined when the cache does not apply. */
  async #cacheQuery(
    req: RoutingRequest,
    conversation: string,
    signal: AbortSignal,
    notes: string[],
  ): Promise<{ query: CacheQuery; lookup: boolean; store: boolean } | undefined> {
    const cache = this.#cache?.config;
    if (!cache || req.endpoint !== "chatCompletions" || conversation === "") return undefined;
    // no-cache: do not answer from the cache (a fresh answer is still stored); no-store: leave the cache alone.
    const control = (req.headers.get("cache-control") ?? "").toLowerCase();
    const noStore = /\bno-store\b/.test(control);
    if (noStore) return undefined;
    const lookup = !/\bno-cache\b/.test(control);
    const params = Object.entries(req.body).filter(([k]) => !NOT_IN_CACHE_KEY.has(k)).sort(([a], [b]) =>
      a < b ? -1 : 1
    );
    const query: { scope: string; model: string; text: string; embedding?: number[] } = {
      scope: this.config.name,
      model: params.length === 0 ? req.model : `${req.model} ${JSON.stringify(params)}`,
      text: conversation,
    };
    if (cache.mode === "similarity" && this.#embeddings) {
      try {
        const [v] = await this.#embeddings.embed([conversation], signal);
        query.embedding = Array.from(v!);
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        notes.push("cache_embedding_error");
        this.#logger?.warn(
          { err: e, router: this.config.name },
          "No embedding for the semantic cache; exact match only",
        );
      }
    }
    return { query, lookup, store: true };
  }

  #debug(debug: boolean, notes: readonly string[], choice?: { reason: string }): Record<string, string> {
    if (!debug) return {};
    return {
      "x-tollgate-signals": headerValue(notes.join(",") || "none"),
      ...(choice ? { "x-tollgate-routing-reason": headerValue(choice.reason) } : {}),
    };
  }
}

function signalNotes(s: GatheredSignals): string[] {
  const out: string[] = [];
  if (s.classification) out.push(`category:${s.classification.category}(${s.classification.confidence.toFixed(3)})`);
  if (s.classifierError) out.push("classifier_error");
  for (const k of s.keywords) out.push(`keyword:${k}`);
  for (const e of s.embeddingScores) if (e.matched) out.push(`embedding:${e.name}(${e.similarity.toFixed(3)})`);
  if (s.embeddingError) out.push("embedding_error");
  for (const c of s.contexts) out.push(`context:${c}`);
  return out;
}

/** Printable ASCII of bounded length: notes can carry an error message, and a header must stay a valid header. */
function headerValue(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?").trim();
  return clean.length > 512 ? `${clean.slice(0, 509)}...` : clean;
}
