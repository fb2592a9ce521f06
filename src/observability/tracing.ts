// OpenTelemetry traces of the requests a sidecar routes: one SERVER span per request (the router stream), and one
// CLIENT span per upstream attempt, child of it, whose W3C trace context the attempt sends upstream (traceparent),
// so that a provider's or a proxy's spans join the same trace. The request span continues the client's trace when
// the request carries a traceparent. Attributes follow the GenAI semantic conventions (v1.37+).
//
// Off by default, and free when off: no tracer provider exists, the attempt stream gets no hook and allocates
// nothing for it. On, spans go to an OTLP/HTTP (JSON) endpoint through a batching processor.
//
// The sidecar never sees an attempt's answer: Envoy only tells the router stream about the response it finally
// forwards. So an attempt span ends when the next attempt of the same request starts (Envoy retried it: error.type
// "retried"), or when the request ends (the last attempt, with the request's status, tokens and error).
import {
  type Attributes,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { ExportResultCode, W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import type { RouterContext } from "../actors/router_stream.ts";
import { pathOnly } from "../protocol/openai/endpoints.ts";
import type { AttemptTraceStart, TraceAttempt } from "../actors/attempt_stream.ts";
import { VERSION } from "../version.ts";
import { operationOfPath, outcomeOf, providerOf, type RequestFacts } from "./request_facts.ts";
import type { Logger } from "./logger.ts";

export interface TracingOptions {
  /** Where spans go: the full OTLP/HTTP traces URL (…/v1/traces). */
  readonly url: string;
  /** service.name of the resource (default "tollgate", or OTEL_SERVICE_NAME). */
  readonly serviceName?: string;
  /** The role that exports (tollgate.role resource attribute). */
  readonly role: string;
  readonly logger?: Logger;
  /** Replaces the OTLP exporter (tests). */
  readonly exporter?: SpanExporter;
  /** How long spans wait in the batch before export (default 1000 ms). */
  readonly scheduledDelayMillis?: number;
}

/**
 * The OTLP traces URL from the flag or the standard environment, or undefined when tracing stays off. A flag or
 * OTEL_EXPORTER_OTLP_ENDPOINT is a base URL to which "/v1/traces" is appended (unless already there);
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is; OTEL_SDK_DISABLED=true turns tracing off.
 */
export function otlpTracesUrl(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (flag !== undefined) return withTracesPath(checkedUrl(flag, "--otlp-endpoint"));
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return undefined;
  const signal = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (signal) return checkedUrl(signal, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return withTracesPath(checkedUrl(base, "OTEL_EXPORTER_OTLP_ENDPOINT"));
  return undefined;
}

function checkedUrl(text: string, source: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${source}: "${text}" is not a URL; expected e.g. http://otel-collector:4318`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`${source}: "${text}" must be an http or https URL (OTLP over HTTP)`);
  }
  return text;
}

function withTracesPath(base: string): string {
  const trimmed = base.replace(/\/+$/, "");
  return trimmed.endsWith("/v1/traces") ? trimmed : `${trimmed}/v1/traces`;
}

const propagator = new W3CTraceContextPropagator();
const mapGetter: TextMapGetter<ReadonlyMap<string, string>> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key.toLowerCase()),
};

interface RequestTrace {
  readonly span: Span;
  /** The attempt span still open (the latest), if any. */
  open: Span | undefined;
  attempts: number;
}

/** Spans of the requests one ExtProc server routes. */
export class RequestTracing {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #logger: Logger | undefined;
  /** By router stream id (the internal request id the attempts carry). */
  readonly #requests = new Map<string, RequestTrace>();

  constructor(o: TracingOptions) {
    const exporter = reportingFailures(o.exporter ?? new OTLPTraceExporter({ url: o.url }), o.url, o.logger);
    this.#provider = new TracerProvider({
      resource: resourceFromAttributes({
        "service.name": o.serviceName ?? "tollgate",
        "service.version": VERSION,
        "tollgate.role": o.role,
      }),
      // A client's sampling decision (the traceparent flags) is kept; a request without one is sampled.
      sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
      spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: o.scheduledDelayMillis ?? 1000 })],
    });
    this.#tracer = this.#provider.getTracer("tollgate", VERSION);
    this.#logger = o.logger;
  }

  /** Requests with a span open. */
  get openRequests(): number {
    return this.#requests.size;
  }

  /** The attempt stream's hook: starts the attempt span and returns its trace context headers. */
  readonly traceAttempt: TraceAttempt = (a) => {
    try {
      return this.#startAttempt(a);
    } catch (err) {
      this.#logger?.warn({ err, requestId: a.requestId }, "Cannot start the span of an upstream attempt");
      return undefined;
    }
  };

  #startAttempt(a: AttemptTraceStart): Readonly<Record<string, string>> | undefined {
    const router = a.router.getSnapshot();
    // The router may have ended between the attempt finding it and this call; a span opened now would never end.
    if (router.status !== "active") return undefined;
    const ctx = router.context;
    let t = this.#requests.get(a.requestId);
    if (!t) {
      t = { span: this.#startRequestSpan(ctx), open: undefined, attempts: 0 };
      this.#requests.set(a.requestId, t);
    }
    if (t.open) endRetried(t.open, ctx.now());
    t.attempts++;
    const backend = a.backend === undefined ? undefined : ctx.snapshot.backends.get(a.backend);
    const ref = a.backendRef === undefined ? undefined : ctx.snapshot.backendRefs.get(a.backendRef);
    const model = ref?.modelNameOverride ?? routedModel(ctx);
    const attributes: Attributes = { "tollgate.attempt": t.attempts };
    const operation = operationOfPath(ctx.path);
    if (operation) attributes["gen_ai.operation.name"] = operation;
    if (backend) attributes["gen_ai.provider.name"] = providerOf(backend.schema.name);
    if (model !== undefined) attributes["gen_ai.request.model"] = model;
    if (a.backend !== undefined) attributes["tollgate.backend"] = a.backend;
    if (ref?.route) attributes["tollgate.route"] = ref.route;
    if (backend?.host) attributes["server.address"] = backend.host;
    const span = this.#tracer.startSpan(
      spanName(operation, model, ctx),
      { kind: SpanKind.CLIENT, attributes, startTime: ctx.now() },
      trace.setSpan(ROOT_CONTEXT, t.span),
    );
    t.open = span;
    const headers: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, {
      set: (carrier, key, value) => (carrier as Record<string, string>)[key] = value,
    });
    return headers;
  }

  #startRequestSpan(ctx: RouterContext): Span {
    const parent = propagator.extract(ROOT_CONTEXT, ctx.requestHeaders, mapGetter);
    const operation = operationOfPath(ctx.path);
    const attributes: Attributes = { "http.request.method": ctx.method, "url.path": pathOnly(ctx.path) };
    if (operation) attributes["gen_ai.operation.name"] = operation;
    const model = routedModel(ctx);
    if (model !== undefined) attributes["gen_ai.request.model"] = model;
    return this.#tracer.startSpan(
      spanName(operation, model, ctx),
      { kind: SpanKind.SERVER, attributes, startTime: ctx.startedAt },
      parent,
    );
  }

  /** The router stream of `requestId` has closed (`completed`: in a final state): ends its spans. */
  requestClosed(requestId: string, ctx: RouterContext, facts: RequestFacts | undefined, completed: boolean): void {
    try {
      if (ctx.startedAt === 0) return; // no request headers ever came: nothing to describe
      let t = this.#requests.get(requestId);
      this.#requests.delete(requestId);
      t ??= { span: this.#startRequestSpan(ctx), open: undefined, attempts: 0 };
      const endedAt = facts?.endedAt ?? ctx.now();
      const outcome = outcomeOf(ctx, completed);
      if (t.open) endAttempt(t.open, facts, outcome, endedAt);
      if (t.attempts > 0) t.span.setAttribute("tollgate.attempts", t.attempts);
      endRequest(t.span, facts, outcome, endedAt);
    } catch (err) {
      this.#logger?.warn({ err, requestId }, "Cannot end the span of a request");
    }
  }

  /** Exports every ended span now; rejects when the export fails. */
  async flush(): Promise<void> {
    await this.#provider.forceFlush();
  }

  /** Ends open spans, exports what is left and stops; later spans are dropped. */
  async shutdown(): Promise<void> {
    for (const t of this.#requests.values()) {
      t.open?.end();
      t.span.end();
    }
    this.#requests.clear();
    // A failed last export is already reported; shutting down goes on.
    await this.#provider.shutdown().catch(() => {});
  }
}

/** Export failures are otherwise silent (the SDK's diagnostics are off): one warning a minute says spans are lost. */
function reportingFailures(exporter: SpanExporter, url: string, logger: Logger | undefined): SpanExporter {
  let lastWarning = -Infinity;
  let lost = 0;
  return {
    export(spans, done) {
      exporter.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) {
          lost += spans.length;
          const now = Date.now();
          if (now - lastWarning >= 60_000) {
            lastWarning = now;
            logger?.warn(
              { url, lostSpans: lost, err: result.error },
              "Cannot export spans over OTLP; they are dropped",
            );
          }
        }
        done(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

function routedModel(ctx: RouterContext): string | undefined {
  return ctx.route !== undefined && "rawBody" in ctx.route ? ctx.route.model : undefined;
}

/** "{gen_ai.operation.name} {gen_ai.request.model}" as the conventions name GenAI spans; "{method}" otherwise. */
function spanName(operation: string | undefined, model: string | undefined, ctx: RouterContext): string {
  if (operation === undefined) return ctx.method || "request";
  return model === undefined ? operation : `${operation} ${model}`;
}

function endRetried(span: Span, at: number): void {
  span.setAttribute("error.type", "retried");
  span.setStatus({ code: SpanStatusCode.ERROR, message: "Envoy retried the request on another attempt" });
  span.end(at);
}

type Outcome = ReturnType<typeof outcomeOf>;

function setResponse(span: Span, facts: RequestFacts | undefined, outcome: Outcome): void {
  if (outcome.status !== undefined) span.setAttribute("http.response.status_code", outcome.status);
  if (outcome.errorType !== undefined) span.setAttribute("error.type", outcome.errorType);
  if (!facts) return;
  if (facts.provider !== undefined) span.setAttribute("gen_ai.provider.name", facts.provider);
  if (facts.responseModel !== undefined) span.setAttribute("gen_ai.response.model", facts.responseModel);
  const u = facts.usage;
  if (u.inputTokens !== undefined) span.setAttribute("gen_ai.usage.input_tokens", u.inputTokens);
  if (u.outputTokens !== undefined) span.setAttribute("gen_ai.usage.output_tokens", u.outputTokens);
  if (u.cachedInputTokens !== undefined) span.setAttribute("gen_ai.usage.cache_read.input_tokens", u.cachedInputTokens);
  if (u.cacheCreationInputTokens !== undefined) {
    span.setAttribute("gen_ai.usage.cache_creation.input_tokens", u.cacheCreationInputTokens);
  }
}

/** The last attempt: the answer the client got came from it. A client span's 4xx is an error too. */
function endAttempt(span: Span, facts: RequestFacts | undefined, outcome: Outcome, endedAt: number): void {
  setResponse(span, facts, outcome);
  if (outcome.errorType !== undefined) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end(endedAt);
}

/** The request (SERVER) span: as for HTTP servers, a 4xx is the client's error and leaves the status unset. */
function endRequest(span: Span, facts: RequestFacts | undefined, outcome: Outcome, endedAt: number): void {
  setResponse(span, facts, outcome);
  if (facts) {
    if (facts.route !== undefined) span.setAttribute("tollgate.route", facts.route);
    if (facts.backend !== undefined) span.setAttribute("tollgate.backend", facts.backend);
    if (facts.ttftMs !== undefined) span.setAttribute("tollgate.time_to_first_token_ms", facts.ttftMs);
    if (facts.tenant !== undefined) span.setAttribute("tollgate.tenant", facts.tenant);
  }
  const serverError = outcome.status === undefined ? outcome.errorType !== undefined : outcome.status >= 500;
  if (serverError) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end(endedAt);
}
