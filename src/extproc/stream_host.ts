// Hosts one ExtProc gRPC stream: creates its actor, turns each ProcessingRequest into an event, writes what the
// actor emits, and tears everything down exactly once however the stream ends (done, Envoy half-close, cancel,
// transport error, protocol violation). Per-stream actors get an `id`, never a `systemId`.
import type * as grpc from "@grpc/grpc-js";
import { type Actor, type AnyActorLogic, createActor } from "xstate";
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { ProcessingRequest, ProcessingResponse } from "../protocol/ext_proc.ts";
import { type EnvoyEvent, phaseOf, type StreamEmitted, toEnvoyEvent } from "../actors/envoy_events.ts";
import type { Clock } from "../observability/clock.ts";
import type { ExtProcMetrics, StreamRole } from "../observability/extproc_metrics.ts";
import type { Logger } from "../observability/logger.ts";
import type { UsageEvent } from "../usage/usage_event.ts";

export type ExtProcCall = grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>;

export interface StreamHostDeps {
  readonly clock: Clock;
  readonly metrics: ExtProcMetrics;
  readonly logger: Logger;
  /** Called once when the stream is fully closed, after its actor has stopped. */
  readonly onClosed: () => void;
  /** Where usage events go (the publisher); dropped when absent. */
  readonly onUsage?: (event: UsageEvent) => void;
}

interface StreamSummary {
  readonly outcome?: string;
  readonly model?: string | undefined;
  readonly attempts?: number;
  readonly responseStatus?: number | undefined;
  readonly failure?: unknown;
}

export function hostStream<L extends AnyActorLogic>(
  call: ExtProcCall,
  role: StreamRole,
  streamId: string,
  logic: L,
  input: unknown,
  deps: StreamHostDeps,
): Actor<L> {
  const { clock, metrics, logger } = deps;
  const startedAt = clock.now();
  const actor = createActor(logic, { id: streamId, input } as never) as Actor<L>;
  let closed = false;
  let observability = false;
  const traceEnabled = logger.isLevelEnabled("trace");

  metrics.streamsStarted.inc({ role });
  metrics.streamsActive.inc({ role });

  const close = (outcome: string, status?: { code: number; details: string }) => {
    if (closed) return;
    closed = true;
    call.off("data", onData);
    actor.stop();
    if (status) call.emit("error", status);
    else if (!call.writableEnded && !call.cancelled) call.end();
    const seconds = (clock.now() - startedAt) / 1000;
    metrics.streamsActive.dec({ role });
    metrics.streamsFinished.inc({ role, outcome });
    metrics.streamSeconds.observe({ role, outcome }, seconds);
    const summary = outputOf(actor) ?? {};
    const line = { requestId: streamId, role, outcome, durationMs: Math.round(seconds * 1e6) / 1e3, ...summary };
    if (outcome === "protocol" || outcome === "failed") logger.warn(line, "ExtProc stream failed");
    else logger.debug(line, "ExtProc stream closed");
    deps.onClosed();
  };

  actor.on("reply", (e: StreamEmitted) => {
    if (e.type !== "reply" || observability || closed) return;
    if (e.response.response?.$case === "immediateResponse") {
      metrics.immediateResponses.inc({ status: e.response.response.value.status?.code ?? 0 });
    }
    call.write(e.response);
  });
  actor.on("usage", (e: StreamEmitted) => {
    if (e.type === "usage") deps.onUsage?.(e.event);
  });
  actor.on("violation", (e: StreamEmitted) => {
    if (e.type === "violation") close("protocol", { code: GrpcStatus.INVALID_ARGUMENT, details: e.message });
  });
  actor.subscribe({
    complete: () => {
      const out = outputOf(actor);
      // A finished stream needs nothing more from Envoy; a clean close tells it to continue without us.
      close(out?.outcome ?? "done");
    },
    error: (err: unknown) => {
      logger.error({ requestId: streamId, role, err }, "ExtProc stream actor crashed");
      close("failed", { code: GrpcStatus.INTERNAL, details: "Internal error in the external processor" });
    },
  });

  const onData = (req: ProcessingRequest) => {
    if (closed) return;
    const event = toEnvoyEvent(req);
    if (!event) {
      close("protocol", { code: GrpcStatus.INVALID_ARGUMENT, details: "Protocol violation: empty ProcessingRequest" });
      return;
    }
    observability = req.observabilityMode;
    const phase = phaseOf(event);
    const t0 = clock.now();
    metrics.messages.inc({ role, phase });
    actor.send(event as EnvoyEvent as never);
    const ms = clock.now() - t0;
    metrics.phaseSeconds.observe({ role, phase }, ms / 1000);
    if (traceEnabled) logger.trace({ requestId: streamId, role, phase, durationMs: ms }, "ExtProc message answered");
  };

  call.on("data", onData);
  call.on("end", () => {
    if (!closed) actor.send({ type: "envoy.closed" } as never);
    close("aborted");
  });
  call.on("cancelled", () => close("cancelled"));
  call.on("error", () => close("failed"));
  actor.start();
  return actor;
}

function outputOf(actor: Actor<AnyActorLogic>): StreamSummary | undefined {
  return (actor.getSnapshot() as { output?: StreamSummary }).output;
}
