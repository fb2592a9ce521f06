// The edge's Prometheus metrics (tollgate run): what Envoy's own statistics would tell about the front proxy —
// requests by route and status, time to the end of the response, upstream attempts and retries, rate-limit
// refusals and the proxy's own replies. Routes and clusters come from the configuration; status codes and
// response code details are small sets. A tenant label exists only when configured, with a cap on its values.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { BoundedLabel } from "../observability/bounded_label.ts";
import { DURATION_BUCKETS, type TenantLabelOptions } from "../observability/genai_metrics.ts";
import type { AttemptOutcome } from "./upstream.ts";

export interface EdgeMetricsOptions {
  readonly tenant?: TenantLabelOptions | undefined;
}

/** How one request ended, as the edge's access log sees it. */
export interface EdgeRequestOutcome {
  /** The route that served it, "" when none matched. */
  readonly route: string;
  readonly status: number;
  readonly seconds: number;
  /** Upstream attempts made (0 when the request never went upstream). */
  readonly attempts: number;
  /** Envoy's response code details; "" or "via_upstream" when the upstream answered. */
  readonly details: string;
  /** The value of the configured tenant header, if any. */
  readonly tenant: string | undefined;
}

type RequestLabels = "route" | "code" | "code_class" | "tenant";

export class EdgeMetrics {
  readonly requests: Counter<RequestLabels>;
  readonly requestSeconds: Histogram<"route" | "code_class">;
  readonly active: Gauge;
  readonly attempts: Counter<"route" | "result">;
  readonly retries: Counter<"route">;
  readonly rateLimited: Counter<"route">;
  readonly localReplies: Counter<"details">;
  readonly tenantHeader: string | undefined;
  readonly #tenants: BoundedLabel | undefined;
  /** Details come from Envoy's fixed set, but an ext_proc immediate response may carry its own. */
  readonly #details = new BoundedLabel(64, "_OTHER");

  constructor(registry: Registry, o: EdgeMetricsOptions = {}) {
    const registers = [registry];
    this.tenantHeader = o.tenant?.header.toLowerCase();
    this.#tenants = o.tenant ? new BoundedLabel(o.tenant.cap, "other") : undefined;
    this.requests = new Counter({
      name: "tollgate_edge_requests_total",
      help: "Requests the edge answered, by route, HTTP status and status class (2xx, 4xx, 5xx…).",
      labelNames: o.tenant ? ["route", "code", "code_class", "tenant"] : ["route", "code", "code_class"],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: "tollgate_edge_request_duration_seconds",
      help: "Time from the request to the end of the response body, as the edge served it.",
      labelNames: ["route", "code_class"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.active = new Gauge({
      name: "tollgate_edge_requests_active",
      help: "Requests whose response has not finished (open streams included).",
      registers,
    });
    this.attempts = new Counter({
      name: "tollgate_edge_upstream_attempts_total",
      help: "Upstream attempts by route and result: the upstream's status class (2xx…5xx), connect_failure, " +
        "reset, per_try_timeout, or local_reply (the upstream-level ext_proc filter answered instead).",
      labelNames: ["route", "result"],
      registers,
    });
    this.retries = new Counter({
      name: "tollgate_edge_upstream_retries_total",
      help: "Upstream attempts after the first (retries and provider fallback), by route.",
      labelNames: ["route"],
      registers,
    });
    this.rateLimited = new Counter({
      name: "tollgate_edge_rate_limited_total",
      help: "Requests refused with 429 by the ratelimit filter, by route.",
      labelNames: ["route"],
      registers,
    });
    this.localReplies = new Counter({
      name: "tollgate_edge_local_replies_total",
      help: "Responses the edge produced itself instead of forwarding the upstream's, by Envoy response code " +
        "details (route_not_found, no_healthy_upstream, request_rate_limited, ext_proc immediate responses…).",
      labelNames: ["details"],
      registers,
    });
  }

  requestStarted(): void {
    this.active.inc();
  }

  requestFinished(r: EdgeRequestOutcome): void {
    this.active.dec();
    const codeClass = `${Math.floor(r.status / 100)}xx`;
    const labels: Partial<Record<RequestLabels, string>> = {
      route: r.route,
      code: String(r.status),
      code_class: codeClass,
    };
    if (this.#tenants && r.tenant !== undefined) labels.tenant = this.#tenants.of(r.tenant);
    this.requests.inc(labels);
    this.requestSeconds.observe({ route: r.route, code_class: codeClass }, r.seconds);
    if (r.attempts > 1) this.retries.inc({ route: r.route }, r.attempts - 1);
    if (r.details === "request_rate_limited") this.rateLimited.inc({ route: r.route });
    if (r.details !== "" && r.details !== "via_upstream") {
      this.localReplies.inc({ details: this.#details.of(r.details) });
    }
  }

  attempt(route: string, outcome: AttemptOutcome): void {
    this.attempts.inc({ route, result: resultOf(outcome) });
  }
}

function resultOf(o: AttemptOutcome): string {
  switch (o.kind) {
    case "response":
      return `${Math.floor(o.response.status / 100)}xx`;
    case "failed":
      return o.failure.replaceAll("-", "_");
    case "local":
      return "local_reply";
  }
}
