// The ExtProc gRPC server: envoy.service.ext_proc.v3.ExternalProcessor/Process plus grpc.health.v1, on a Unix
// socket (the sidecar default) or TCP. Each stream gets its own actor (router or upstream attempt); the role comes
// from gRPC metadata that only Envoy's filter config can set, never from the HTTP request.
import * as grpc from "@grpc/grpc-js";
import type { Registry } from "prom-client";
import { ExternalProcessorService } from "../protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { type ProcessingMode, ROLE_METADATA, routerProcessingMode } from "../protocol/ext_proc.ts";
import { type RouterInput, routerStreamMachine } from "../actors/router_stream.ts";
import { type AttemptInput, attemptStreamMachine, type RouterStreamRef } from "../actors/attempt_stream.ts";
import type { UpstreamCredentials } from "../actors/prepare_upstream.ts";
import { BearerTokenFile } from "../protocol/auth/bearer_token_file.ts";
import type { UsageEvent } from "../usage/usage_event.ts";
import type { GatewaySnapshot } from "../control/snapshot.ts";
import type { RoutingServices } from "../routing/router_engine.ts";
import { type Clock, systemClock } from "../observability/clock.ts";
import { ExtProcMetrics } from "../observability/extproc_metrics.ts";
import { RequestObserver } from "../observability/request_observer.ts";
import type { TenantLabelOptions } from "../observability/genai_metrics.ts";
import type { RequestTracing } from "../observability/tracing.ts";
import type { Logger } from "../observability/logger.ts";
import { type ExtProcCall, hostStream } from "./stream_host.ts";
import { HealthService, ServingStatus } from "./health.ts";
import { HealthService as HealthServiceDefinition } from "../protocol/gen/grpc/health/v1/health.ts";
import { formatListenAddress, type ListenAddress } from "./listen_address.ts";

export { ROLE_METADATA };

export interface ExtProcServerOptions {
  readonly listen: ListenAddress;
  /** The config a new stream starts with; a stream keeps it until it ends. */
  readonly snapshot: () => GatewaySnapshot;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly clock?: Clock;
  readonly routerMode?: ProcessingMode;
  readonly maxBodyBytes?: number;
  /** How attempts read rotated tokens and tell the time for signatures; the default reads files. */
  readonly credentials?: UpstreamCredentials;
  /** Receives one usage event per routed request (the usage publisher). */
  readonly onUsage?: (event: UsageEvent) => void;
  /** Semantic routing's network and cache (e.g. the NATS KV cache); the process defaults when absent. */
  readonly routing?: RoutingServices;
  /** Adds a capped `tenant` label, read from a request header, to the GenAI metrics (off by default). */
  readonly metricsTenant?: TenantLabelOptions;
  /** Spans per request and per upstream attempt, W3C trace context upstream (off by default). */
  readonly tracing?: RequestTracing;
  /** TLS (or mutual TLS) for the listener; plaintext when absent. */
  readonly serverCredentials?: grpc.ServerCredentials;
}

/** Rotated bearer token files, one cached reader per path (re-read when the file changes). */
export function fileCredentials(clock: Clock = systemClock): UpstreamCredentials {
  const files = new Map<string, BearerTokenFile>();
  return {
    bearerFromFile(path) {
      let f = files.get(path);
      if (!f) files.set(path, f = new BearerTokenFile(path, { clock }));
      return f.header();
    },
    now: () => new Date(),
  };
}

export class ExtProcServer {
  readonly #o: ExtProcServerOptions;
  readonly #clock: Clock;
  readonly #server: grpc.Server;
  readonly #health = new HealthService([ExternalProcessorService.process.path.split("/")[1]!]);
  readonly #routers = new Map<string, RouterStreamRef>();
  readonly metrics: ExtProcMetrics;
  /** GenAI metrics and request spans, recorded as each router stream closes. */
  readonly observer: RequestObserver;
  #open = 0;
  readonly #credentials: UpstreamCredentials;
  #bound: ListenAddress | undefined;
  #draining = false;
  #idle: (() => void) | undefined;

  constructor(o: ExtProcServerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.metrics = new ExtProcMetrics(o.registry);
    this.observer = new RequestObserver({
      registry: o.registry,
      extproc: this.metrics,
      tenant: o.metricsTenant,
      tracing: o.tracing,
      logger: o.logger,
    });
    this.#credentials = o.credentials ?? fileCredentials(this.#clock);
    // Envoy keeps one HTTP/2 connection open per sidecar and multiplexes every stream on it.
    this.#server = new grpc.Server({
      "grpc.max_concurrent_streams": 100_000,
      "grpc.max_receive_message_length": 64 << 20,
    });
    this.#server.addService(ExternalProcessorService, { process: (call: ExtProcCall) => this.#process(call) });
    this.#server.addService(HealthServiceDefinition, this.#health.implementation);
  }

  /** Streams currently open (router and attempt). */
  get openStreams(): number {
    return this.#open;
  }

  /** Router streams an attempt could still join. */
  get registeredRouters(): number {
    return this.#routers.size;
  }

  get address(): ListenAddress | undefined {
    return this.#bound;
  }

  get ready(): boolean {
    return this.#bound !== undefined && !this.#draining;
  }

  async start(): Promise<ListenAddress> {
    const listen = this.#o.listen;
    if (listen.kind === "unix") await prepareSocketPath(listen.path);
    const port = await new Promise<number>((resolve, reject) =>
      this.#server.bindAsync(
        formatListenAddress(listen),
        this.#o.serverCredentials ?? grpc.ServerCredentials.createInsecure(),
        (err, p) =>
          err ? reject(new Error(`Cannot listen on ${formatListenAddress(listen)}: ${err.message}`)) : resolve(p),
      )
    );
    if (listen.kind === "unix") await Deno.chmod(listen.path, 0o660);
    this.#bound = listen.kind === "tcp" ? { ...listen, port } : listen;
    return this.#bound;
  }

  /**
   * Stops accepting streams, lets open ones finish for up to `graceMs`, then cancels what is left. Resolves once
   * the server is closed.
   */
  async drain(graceMs: number): Promise<{ forced: number }> {
    this.#draining = true;
    this.#health.setAll(ServingStatus.NOT_SERVING);
    this.#health.closeWatchers();
    let forced = 0;
    const closed = new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    if (this.#open > 0) {
      const idle = new Promise<boolean>((resolve) => (this.#idle = () => resolve(true)));
      let timer: unknown;
      const expired = new Promise<boolean>((
        resolve,
      ) => (timer = this.#clock.setTimeout(() => resolve(false), graceMs)));
      const finished = await Promise.race([idle, expired]);
      this.#clock.clearTimeout(timer);
      if (!finished) {
        forced = this.#open;
        this.#o.logger.warn({ open: forced, graceMs }, "Grace period over; cancelling open ExtProc streams");
        this.#server.forceShutdown();
      }
    }
    await closed;
    if (this.#o.listen.kind === "unix") await Deno.remove(this.#o.listen.path).catch(() => {});
    return { forced };
  }

  /** Closes at once, cancelling open streams. */
  async close(): Promise<void> {
    this.#draining = true;
    this.#health.closeWatchers();
    this.#server.forceShutdown();
    if (this.#o.listen.kind === "unix") await Deno.remove(this.#o.listen.path).catch(() => {});
  }

  #process(call: ExtProcCall): void {
    const role = call.metadata.get(ROLE_METADATA)[0] === "upstream" ? "attempt" : "router";
    const streamId = crypto.randomUUID();
    let router: RouterStreamRef | undefined;
    const deps = {
      clock: this.#clock,
      metrics: this.metrics,
      logger: this.#o.logger,
      ...(this.#o.onUsage ? { onUsage: this.#o.onUsage } : {}),
      onClosed: () => {
        this.#routers.delete(streamId);
        if (router) this.observer.routerClosed(streamId, router);
        this.#open--;
        if (this.#open === 0) this.#idle?.();
      },
    };
    this.#open++;
    if (role === "router") {
      const input: RouterInput = {
        streamId,
        snapshot: this.#o.snapshot(),
        mode: this.#o.routerMode ?? routerProcessingMode(),
        maxBodyBytes: this.#o.maxBodyBytes ?? 32 << 20,
        ...(this.#o.routing ? { routing: this.#o.routing } : {}),
      };
      const actor = hostStream(call, role, streamId, routerStreamMachine, input, deps);
      router = actor;
      if (!call.cancelled && actor.getSnapshot().status === "active") this.#routers.set(streamId, actor);
    } else {
      const input: AttemptInput = {
        streamId,
        findRouter: (id) => this.#routers.get(id),
        credentials: this.#credentials,
        traceAttempt: this.observer.traceAttempt,
      };
      hostStream(call, role, streamId, attemptStreamMachine, input, deps);
    }
  }
}

/** Refuses to take over a socket another live process is serving; removes a stale one left by a crash. */
async function prepareSocketPath(path: string): Promise<void> {
  try {
    await Deno.lstat(path);
  } catch {
    return;
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    throw new Error(`Cannot listen on unix://${path}: another process is serving it`);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith("Cannot listen")) throw e;
    await Deno.remove(path);
  }
}
