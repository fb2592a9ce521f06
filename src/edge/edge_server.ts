// The edge: the part of Envoy that Tollgate relies on, as one HTTP server. Per request it runs the HCM filter
// chain in Envoy's order — router-level ext_proc (headers, then body), ratelimit (before the upstream), router
// (route selection, which clear_route_cache re-runs; upstream attempts with retries) — then the response back
// through ext_proc, and on stream done the ratelimit apply_on_stream_done call and the access log line.
import type { Clock } from "../observability/clock.ts";
import type { Logger } from "../observability/logger.ts";
import { type AccessLogSink, responseModelFromMetadata, usageFromMetadata } from "./access_log.ts";
import type { EdgeConfig, RouteConfig } from "./config.ts";
import type { EdgeMetrics } from "./edge_metrics.ts";
import type { DynamicMetadata } from "./dynamic_metadata.ts";
import { ExtProcChannel, ExtProcFilterStream, type LocalReply } from "./ext_proc_filter.ts";
import { HeaderList } from "./headers.ts";
import type { RateLimitFilter } from "./rate_limit_filter.ts";
import { concatChunks, processRequestBody, readRequestBody } from "./request_body.ts";
import { bufferResponseBody, type StreamDone, streamResponseBody } from "./response_body.ts";
import { selectRoute } from "./route_table.ts";
import { forwardUpstream } from "./upstream.ts";

export interface EdgeDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly accessLog?: AccessLogSink;
  readonly rateLimiter?: RateLimitFilter;
  readonly random?: () => number;
  readonly metrics?: EdgeMetrics;
}

/** Headers never forwarded hop to hop. */
const HOP_BY_HOP = ["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te"];

/** What one request did, for the access log. */
interface RequestRecord {
  readonly startedAt: number;
  readonly startTime: string;
  readonly method: string;
  readonly path: string;
  bytesReceived: number;
  route: RouteConfig | undefined;
  upstreamHost: string | null;
  backend: string | null;
  attempts: number;
  details: string;
}

export class EdgeServer {
  #config: EdgeConfig;
  readonly #deps: EdgeDeps;
  readonly #channels = new Map<string, ExtProcChannel>();
  #active = 0;

  constructor(config: EdgeConfig, deps: EdgeDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  get config(): EdgeConfig {
    return this.#config;
  }

  /** Swaps the topology; requests in flight keep the one they started with. */
  setConfig(config: EdgeConfig): void {
    this.#config = config;
  }

  /** Requests whose response has not finished (streams included). */
  get activeRequests(): number {
    return this.#active;
  }

  channel(target: string): ExtProcChannel {
    let c = this.#channels.get(target);
    if (!c) this.#channels.set(target, c = new ExtProcChannel(target));
    return c;
  }

  close(): void {
    for (const c of this.#channels.values()) c.close();
    this.#channels.clear();
  }

  async handle(req: Request): Promise<Response> {
    const config = this.#config;
    const url = new URL(req.url);
    const record: RequestRecord = {
      startedAt: this.#deps.clock.now(),
      startTime: new Date().toISOString(),
      method: req.method,
      path: url.pathname + url.search,
      bytesReceived: 0,
      route: undefined,
      upstreamHost: null,
      backend: null,
      attempts: 0,
      details: "",
    };
    const headers = HeaderList.fromHeaders(req.headers, {
      ":method": req.method,
      ":path": record.path,
      ":authority": req.headers.get("host") ?? url.host,
      ":scheme": url.protocol.replace(":", ""),
    });
    for (const h of HOP_BY_HOP) headers.remove(h);
    if (!headers.has("x-request-id")) headers.set("x-request-id", crypto.randomUUID());
    const metadata: DynamicMetadata = new Map();
    const processor = config.routerExtProc
      ? new ExtProcFilterStream(this.channel(config.routerExtProc.target), config.routerExtProc, {
        clock: this.#deps.clock,
        metadata,
      })
      : undefined;
    let status = 0;
    let rateLimitRoute: RouteConfig | undefined;
    let finished = false;
    this.#active++;
    this.#deps.metrics?.requestStarted();
    const done: StreamDone = ({ bytesSent }) => {
      if (finished) return;
      finished = true;
      this.#active--;
      processor?.close();
      this.#finish(record, headers, metadata, status, bytesSent, rateLimitRoute);
    };
    const local = (reply: LocalReply, extra: Record<string, string> = {}): Response => {
      status = reply.status;
      record.details ||= reply.details;
      const h = new Headers(reply.headers as [string, string][]);
      for (const [k, v] of Object.entries(extra)) h.set(k, v);
      done({ bytesSent: reply.body.length, aborted: false });
      return new Response(reply.body.length > 0 ? reply.body as Uint8Array<ArrayBuffer> : null, {
        status: reply.status,
        headers: h,
      });
    };

    try {
      const hasBody = req.body !== null && req.method !== "GET" && req.method !== "HEAD";
      let route = selectRoute(config.routes, headers);
      let body: Uint8Array | undefined;

      // Router-level ext_proc: request headers.
      if (processor) {
        const r = await processor.onRequestHeaders(headers, !hasBody);
        if (r.kind === "respond") return local(r.reply);
        if (r.clearRouteCache) route = undefined;
        if (r.body) body = r.body;
      }
      // Request body: buffered up to the limit (also what makes retries possible).
      if (hasBody) {
        const read = await readRequestBody(req.body, config.maxRequestBodyBytes, req.headers.get("content-length"));
        if (read.kind === "respond") return local(read.reply);
        record.bytesReceived = read.bytes;
        if (body === undefined && processor?.sendsBody("request")) {
          const r = await processRequestBody(processor, read, headers);
          if (r.kind === "respond") return local(r.reply);
          if (r.clearRouteCache) route = undefined;
          body = r.body;
        } else {
          body ??= concatChunks(read.chunks, read.bytes);
        }
      }
      route ??= selectRoute(config.routes, headers);
      record.route = route;

      // Ratelimit filter: the request-time check, with the headers and metadata ext_proc left.
      const limiter = this.#deps.rateLimiter;
      let rateLimitHeaders: Record<string, string> = {};
      if (limiter && route) {
        rateLimitRoute = route;
        const decision = await limiter.check(route, { headers: headers.toMap(), metadata });
        if (decision.kind === "limited") {
          return local({
            status: 429,
            headers: [],
            body: decision.body ?? new Uint8Array(0),
            details: "request_rate_limited",
          }, decision.responseHeaders);
        }
        if (decision.kind === "error") {
          return local({ status: 500, headers: [], body: new Uint8Array(0), details: "rate_limiter_error" });
        }
        rateLimitHeaders = decision.responseHeaders;
        for (const [k, v] of Object.entries(decision.requestHeaders)) headers.set(k, v);
      }

      // Router filter.
      if (!route) return local({ status: 404, headers: [], body: new Uint8Array(0), details: "route_not_found" });
      const cluster = config.clusters.find((c) => c.name === route!.cluster);
      if (!cluster) {
        return local({
          status: 503,
          headers: [],
          body: new TextEncoder().encode("no healthy upstream"),
          details: "cluster_not_found",
        });
      }
      const abort = new AbortController();
      req.signal.addEventListener("abort", () => abort.abort(req.signal.reason), { once: true });
      const timer = route.timeoutMs > 0
        ? this.#deps.clock.setTimeout(
          () => abort.abort(new DOMException("route timeout", "TimeoutError")),
          route.timeoutMs,
        )
        : undefined;
      const result = await forwardUpstream(route, cluster, { method: req.method, headers, body }, {
        clock: this.#deps.clock,
        metadata,
        channels: (t) => this.channel(t),
        signal: abort.signal,
        ...(this.#deps.random ? { random: this.#deps.random } : {}),
        ...(this.#deps.metrics ? { onAttempt: this.#deps.metrics.attempt.bind(this.#deps.metrics, route.name) } : {}),
      });
      if (timer !== undefined) this.#deps.clock.clearTimeout(timer);
      record.attempts = result.attempts;
      if (result.endpoint) {
        record.upstreamHost = `${result.endpoint.host}:${result.endpoint.port}`;
        record.backend = Object.values(result.endpoint.metadata).map((m) => m.backend).find(Boolean) ?? null;
      }
      if (result.kind === "local") {
        const timedOut = (abort.signal.reason as DOMException | undefined)?.name === "TimeoutError";
        if (timedOut) {
          return local({
            status: 504,
            headers: [],
            body: new TextEncoder().encode("upstream request timeout"),
            details: "upstream_response_timeout",
          });
        }
        return local(result.reply);
      }

      // Response path: headers, then body, through the router-level processor.
      const upstream = result.response;
      const responseHeaders = HeaderList.fromHeaders(upstream.headers, { ":status": String(upstream.status) });
      for (const h of HOP_BY_HOP) responseHeaders.remove(h);
      let replacedBody: Uint8Array | undefined;
      if (processor) {
        const r = await processor.onResponseHeaders(responseHeaders, upstream.body === null);
        if (r.kind === "respond") {
          await upstream.body?.cancel();
          return local(r.reply, rateLimitHeaders);
        }
        replacedBody = r.body;
      }
      status = Number(responseHeaders.get(":status")) || upstream.status;
      const out = responseHeaders.toHeaders();
      for (const [k, v] of Object.entries(rateLimitHeaders)) out.set(k, v);
      if (replacedBody !== undefined) {
        await upstream.body?.cancel();
        out.delete("content-length");
        done({ bytesSent: replacedBody.length, aborted: false });
        return new Response(replacedBody as Uint8Array<ArrayBuffer>, { status, headers: out });
      }
      if (processor?.sendsBody("response") && !processor.streamsBody("response")) {
        const b = await bufferResponseBody(upstream.body, processor, responseHeaders, config.maxRequestBodyBytes);
        if (b.kind === "respond") return local(b.reply, rateLimitHeaders);
        out.delete("content-length");
        done({ bytesSent: b.body.length, aborted: false });
        return new Response(b.body as Uint8Array<ArrayBuffer>, { status, headers: out });
      }
      if (processor?.sendsBody("response")) out.delete("content-length");
      const stream = streamResponseBody(upstream.body, processor, responseHeaders, done);
      return new Response(stream, { status, headers: out });
    } catch (e) {
      this.#deps.logger.error({ err: e, path: record.path }, "Edge request failed");
      return local({ status: 500, headers: [], body: new Uint8Array(0), details: "edge_internal_error" });
    }
  }

  #finish(
    record: RequestRecord,
    headers: HeaderList,
    metadata: DynamicMetadata,
    status: number,
    bytesSent: number,
    rateLimitRoute: RouteConfig | undefined,
  ): void {
    if (rateLimitRoute && this.#deps.rateLimiter) {
      void this.#deps.rateLimiter.applyOnStreamDone(rateLimitRoute, { headers: headers.toMap(), metadata });
    }
    const metrics = this.#deps.metrics;
    metrics?.requestFinished({
      route: record.route?.name ?? "",
      status,
      seconds: (this.#deps.clock.now() - record.startedAt) / 1000,
      attempts: record.attempts,
      details: record.details,
      tenant: metrics.tenantHeader === undefined ? undefined : headers.get(metrics.tenantHeader),
    });
    this.#deps.accessLog?.({
      start_time: record.startTime,
      method: record.method,
      path: record.path,
      status,
      duration_ms: Math.round((this.#deps.clock.now() - record.startedAt) * 1000) / 1000,
      bytes_received: record.bytesReceived,
      bytes_sent: bytesSent,
      request_id: headers.get("x-request-id") ?? null,
      route: record.route?.name ?? null,
      model: headers.get("x-ai-eg-model") ?? null,
      response_model: responseModelFromMetadata(metadata),
      backend: record.backend,
      upstream_host: record.upstreamHost,
      attempts: record.attempts,
      response_code_details: record.details || (status ? "via_upstream" : ""),
      usage: usageFromMetadata(metadata),
    });
  }
}
