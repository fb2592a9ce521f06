// The router filter's upstream half: pick an endpoint of the route's cluster, run the cluster's upstream-level
// ext_proc filter on a fresh copy of the request (one processor stream per attempt), send it, and retry by the
// route's retry policy. With previous_priorities each retry moves to the next priority level, which is how
// provider fallback works. https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter
import type { Clock } from "../observability/clock.ts";
import type { ClusterConfig, Endpoint, RetryOn, RetryPolicy, RouteConfig } from "./config.ts";
import type { DynamicMetadata } from "./dynamic_metadata.ts";
import { ExtProcChannel, ExtProcFilterStream, type LocalReply } from "./ext_proc_filter.ts";
import type { HeaderList } from "./headers.ts";

export interface UpstreamRequest {
  readonly method: string;
  readonly headers: HeaderList;
  /** The buffered request body (Envoy buffers it so that retries can resend it). */
  readonly body: Uint8Array | undefined;
}

export type UpstreamResult =
  | { readonly kind: "response"; readonly response: Response; readonly endpoint: Endpoint; readonly attempts: number }
  | { readonly kind: "local"; readonly reply: LocalReply; readonly endpoint?: Endpoint; readonly attempts: number };

export interface UpstreamDeps {
  readonly clock: Clock;
  readonly metadata: DynamicMetadata;
  readonly channels: (target: string) => ExtProcChannel;
  /** Aborted when the downstream goes away; in-flight attempts are cancelled. */
  readonly signal: AbortSignal;
  readonly random?: () => number;
  /** Told how each attempt ended (metrics). */
  readonly onAttempt?: (outcome: AttemptOutcome) => void;
}

type AttemptFailure = "connect-failure" | "reset" | "per-try-timeout";

const encoder = new TextEncoder();

function localReply(status: number, text: string, details: string): LocalReply {
  return { status, headers: [["content-type", "text/plain"]], body: encoder.encode(text), details };
}

/** Weighted random choice within one priority level. */
export function pickEndpoint(endpoints: readonly Endpoint[], random: () => number): Endpoint | undefined {
  const total = endpoints.reduce((sum, e) => sum + Math.max(0, e.weight), 0);
  if (total <= 0) return endpoints[0];
  let at = random() * total;
  for (const e of endpoints) {
    at -= Math.max(0, e.weight);
    if (at < 0) return e;
  }
  return endpoints.at(-1);
}

/** The priority level an attempt uses: 0 first; with previous_priorities, each retry moves one level on. */
export function priorityFor(cluster: ClusterConfig, attempt: number, policy: RetryPolicy | undefined): number {
  const levels = cluster.priorities.map((p, i) => (p.length > 0 ? i : -1)).filter((i) => i >= 0);
  if (levels.length === 0) return -1;
  if (!policy?.previousPriorities) return levels[0]!;
  return levels[attempt % levels.length]!;
}

export function retriableStatus(status: number, policy: RetryPolicy): boolean {
  return policy.retryOn.some((on: RetryOn) =>
    on === "5xx"
      ? status >= 500
      : on === "gateway-error"
      ? status === 502 || status === 503 || status === 504
      : on === "retriable-status-codes"
      ? policy.retriableStatusCodes.includes(status)
      : false
  );
}

export function retriableFailure(failure: AttemptFailure, policy: RetryPolicy): boolean {
  return policy.retryOn.some((on) =>
    on === "5xx" || on === "gateway-error"
      ? true
      : on === "connect-failure"
      ? failure === "connect-failure"
      : on === "reset"
      ? failure === "reset" || failure === "per-try-timeout"
      : false
  );
}

/** Envoy's fully jittered exponential back-off: random in [0, min(base * 2^n, max)). */
function backOffMs(policy: RetryPolicy, retry: number, random: () => number): number {
  const ceiling = Math.min(policy.backOff.baseMs * 2 ** retry, policy.backOff.maxMs);
  return Math.floor(random() * ceiling);
}

export async function forwardUpstream(
  route: RouteConfig,
  cluster: ClusterConfig,
  request: UpstreamRequest,
  deps: UpstreamDeps,
): Promise<UpstreamResult> {
  const random = deps.random ?? Math.random;
  const policy = route.retryPolicy;
  const maxAttempts = 1 + (policy?.numRetries ?? 0);
  let last: UpstreamResult | undefined;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    if (deps.signal.aborted) break;
    if (attempt > 0 && policy) await sleep(deps.clock, backOffMs(policy, attempt - 1, random), deps.signal);
    const priority = priorityFor(cluster, attempt, policy);
    const endpoint = priority < 0 ? undefined : pickEndpoint(cluster.priorities[priority]!, random);
    if (!endpoint) {
      return { kind: "local", reply: localReply(503, "no healthy upstream", "no_healthy_upstream"), attempts: attempt };
    }
    const outcome = await tryOnce(route, cluster, endpoint, request, deps);
    deps.onAttempt?.(outcome);
    const attempts = attempt + 1;
    if (outcome.kind === "local") return { ...outcome, endpoint, attempts };
    if (outcome.kind === "response") {
      const status = outcome.response.status;
      if (!policy || attempt + 1 >= maxAttempts || !retriableStatus(status, policy)) {
        return { kind: "response", response: outcome.response, endpoint, attempts };
      }
      await outcome.response.body?.cancel();
      last = { kind: "response", response: new Response(null, { status }), endpoint, attempts };
      continue;
    }
    last = { kind: "local", reply: failureReply(outcome.failure), endpoint, attempts };
    if (!policy || !retriableFailure(outcome.failure, policy)) return last;
  }
  return last ??
    {
      kind: "local",
      reply: localReply(503, "upstream request cancelled", "downstream_remote_disconnect"),
      attempts: 0,
    };
}

function failureReply(failure: AttemptFailure): LocalReply {
  switch (failure) {
    case "connect-failure":
      return localReply(
        503,
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        "upstream_reset_before_response_started{connection_failure}",
      );
    case "reset":
      return localReply(
        503,
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        "upstream_reset_before_response_started{connection_termination}",
      );
    case "per-try-timeout":
      return localReply(504, "upstream request timeout", "upstream_per_try_timeout");
  }
}

export type AttemptOutcome = Attempt;

type Attempt =
  | { readonly kind: "response"; readonly response: Response }
  | { readonly kind: "failed"; readonly failure: AttemptFailure }
  | { readonly kind: "local"; readonly reply: LocalReply };

async function tryOnce(
  route: RouteConfig,
  cluster: ClusterConfig,
  endpoint: Endpoint,
  request: UpstreamRequest,
  deps: UpstreamDeps,
): Promise<Attempt> {
  // Each attempt starts from the request as the router filter left it; what one attempt's processor changed
  // never leaks into the next.
  const headers = request.headers.clone();
  let body = request.body;
  let processor: ExtProcFilterStream | undefined;
  if (cluster.upstreamExtProc) {
    const config = cluster.upstreamExtProc;
    processor = new ExtProcFilterStream(deps.channels(config.target), config, {
      clock: deps.clock,
      metadata: deps.metadata,
      attributes: attributesFor(config.requestAttributes, route, cluster, endpoint),
    });
    const h = await processor.onRequestHeaders(headers, body === undefined || body.length === 0);
    if (h.kind === "respond") return { kind: "local", reply: h.reply };
    if (h.body) body = h.body;
    else if (body && processor.sendsBody("request")) {
      const b = await processor.onRequestBody(body, true, headers);
      if (b.kind === "respond") return { kind: "local", reply: b.reply };
      if (b.body) body = b.body;
    }
    processor.close();
  }
  const controller = new AbortController();
  const onAbort = () => controller.abort(deps.signal.reason);
  deps.signal.addEventListener("abort", onAbort, { once: true });
  const perTry = route.retryPolicy?.perTryTimeoutMs ?? 0;
  const timer = perTry > 0
    ? deps.clock.setTimeout(() => controller.abort(new DOMException("per-try timeout", "TimeoutError")), perTry)
    : undefined;
  try {
    const path = headers.get(":path") ?? "/";
    const url = `${endpoint.tls ? "https" : "http"}://${hostPort(endpoint)}${path}`;
    const upstreamHeaders = headers.toHeaders();
    // fetch frames the body itself; hop-by-hop and length headers from the client must not be forwarded.
    for (const h of ["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "host"]) {
      upstreamHeaders.delete(h);
    }
    const method = headers.get(":method") ?? request.method;
    const response = await fetch(url, {
      method,
      headers: upstreamHeaders,
      body: method === "GET" || method === "HEAD" ? null : (body as Uint8Array<ArrayBuffer> | undefined) ?? null,
      redirect: "manual",
      signal: controller.signal,
    });
    return { kind: "response", response };
  } catch (e) {
    if (controller.signal.aborted && (controller.signal.reason as DOMException | undefined)?.name === "TimeoutError") {
      return { kind: "failed", failure: "per-try-timeout" };
    }
    const cause = e instanceof Error ? String(e.cause ?? e.message) : String(e);
    return { kind: "failed", failure: cause.includes("(Connect)") ? "connect-failure" : "reset" };
  } finally {
    if (timer !== undefined) deps.clock.clearTimeout(timer);
    deps.signal.removeEventListener("abort", onAbort);
  }
}

function hostPort(e: Endpoint): string {
  return `${e.host.includes(":") ? `[${e.host}]` : e.host}:${e.port}`;
}

/** Envoy's request attributes for the upstream filter; the upstream host metadata tells the processor which
 * backend this attempt goes to. */
function attributesFor(
  names: readonly string[],
  route: RouteConfig,
  cluster: ClusterConfig,
  endpoint: Endpoint,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    if (name === "xds.upstream_host_metadata") out[name] = { filter_metadata: endpoint.metadata };
    else if (name === "xds.cluster_name") out[name] = cluster.name;
    else if (name === "xds.route_name") out[name] = route.name;
  }
  return out;
}

function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = clock.setTimeout(() => {
      signal.removeEventListener("abort", done);
      resolve();
    }, ms);
    const done = () => {
      clock.clearTimeout(t);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
  });
}
