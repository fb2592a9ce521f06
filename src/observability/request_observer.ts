// What an ExtProc server records when a router stream closes: the GenAI metrics of the request, its attempt count,
// and (with tracing on) the end of its spans. One per server; it reads the closed stream's final state, so the
// stream actors stay free of metrics and tracing code.
import type { Registry } from "prom-client";
import type { RouterStreamRef, TraceAttempt } from "../actors/attempt_stream.ts";
import type { ExtProcMetrics } from "./extproc_metrics.ts";
import { GenAiMetrics, type TenantLabelOptions } from "./genai_metrics.ts";
import { requestFacts } from "./request_facts.ts";
import type { RequestTracing } from "./tracing.ts";
import type { Logger } from "./logger.ts";

export interface RequestObserverOptions {
  readonly registry: Registry;
  readonly extproc: ExtProcMetrics;
  /** Adds a `tenant` label (from this request header, capped) to the GenAI metrics. */
  readonly tenant?: TenantLabelOptions | undefined;
  readonly tracing?: RequestTracing | undefined;
  readonly logger: Logger;
}

export class RequestObserver {
  readonly genai: GenAiMetrics;
  readonly #extproc: ExtProcMetrics;
  readonly #tracing: RequestTracing | undefined;
  readonly #logger: Logger;
  /** The attempt streams' tracing hook; undefined when tracing is off. */
  readonly traceAttempt: TraceAttempt | undefined;

  constructor(o: RequestObserverOptions) {
    this.genai = new GenAiMetrics(o.registry, { tenant: o.tenant });
    this.#extproc = o.extproc;
    this.#tracing = o.tracing;
    this.#logger = o.logger;
    this.traceAttempt = o.tracing?.traceAttempt;
  }

  /** A router stream closed (its actor has stopped). */
  routerClosed(requestId: string, router: RouterStreamRef): void {
    try {
      const snapshot = router.getSnapshot();
      const ctx = snapshot.context;
      // "done" once the machine reached a final state; "stopped" when the transport ended it first (a cancel).
      const completed = snapshot.status === "done";
      const facts = requestFacts(ctx, completed, this.genai.tenantHeader);
      if (facts) {
        this.genai.record(facts);
        if (facts.originalModel !== undefined) this.#extproc.requestAttempts.observe(facts.attempts);
      }
      this.#tracing?.requestClosed(requestId, ctx, facts, completed);
    } catch (err) {
      // Observability must never break the stream's teardown.
      this.#logger.warn({ err, requestId }, "Cannot record the metrics of a request");
    }
  }
}
