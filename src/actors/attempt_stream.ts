// The upstream-level ExtProc stream: Envoy opens one per upstream attempt (the first try and every retry), after
// the router filter has chosen the route. It finds the router stream of the same HTTP request through the internal
// request id header, tells it which backend this attempt goes to, and prepares the upstream request: translated
// for that backend, mutated and signed (prepare_upstream.ts), sent back with CONTINUE_AND_REPLACE.
//
//   requestHeaders → preparing → done
//                             ↘ failed (no router stream, a request the backend cannot take, a protocol error)
//
// Must be idempotent: a retry runs it again on a fresh copy of the original request headers, so everything is
// derived from the router's stored request, never from what a previous attempt did.
import { type ActorRefFrom, assign, emit, fromPromise, sendTo, setup } from "xstate";
import { immediateResponse, type ProcessingResponse, readHeaders } from "../protocol/ext_proc.ts";
import { openAIErrorReply } from "../protocol/openai/errors.ts";
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";
import { type EnvoyEvent, phaseOf, type StreamEmitted } from "./envoy_events.ts";
import { REQUEST_ID_HEADER, type routerStreamMachine } from "./router_stream.ts";
import { BACKEND_METADATA_KEY, BACKEND_METADATA_NAMESPACE, BACKEND_REF_METADATA_KEY } from "../control/snapshot.ts";
import { type AttemptTarget, prepareUpstream, type UpstreamCredentials } from "./prepare_upstream.ts";

export type RouterStreamRef = ActorRefFrom<typeof routerStreamMachine>;

export interface AttemptInput {
  readonly streamId: string;
  readonly findRouter: (requestId: string) => RouterStreamRef | undefined;
  readonly credentials: UpstreamCredentials;
  /** With tracing on: starts this attempt's span and returns the headers that carry it upstream (traceparent). */
  readonly traceAttempt?: TraceAttempt | undefined;
}

export interface AttemptTraceStart {
  readonly requestId: string;
  readonly router: RouterStreamRef;
  readonly backend: string | undefined;
  readonly backendRef: string | undefined;
}

export type TraceAttempt = (a: AttemptTraceStart) => Readonly<Record<string, string>> | undefined;

interface AttemptContext extends AttemptInput {
  requestId: string | undefined;
  router: RouterStreamRef | undefined;
  /** The backend and backendRef Envoy picked for this attempt (endpoint metadata); undefined for a plain one. */
  backendName: string | undefined;
  refId: string | undefined;
  /** Envoy's route name (xds.route_name). */
  route: string | undefined;
  path: string;
  failure: string | undefined;
}

export interface AttemptOutput {
  readonly outcome: "done" | "failed";
  readonly requestId: string | undefined;
  readonly backend: string | undefined;
  readonly failure: string | undefined;
}

interface PrepareInput {
  readonly target: AttemptTarget;
  readonly credentials: UpstreamCredentials;
  /** Set only with tracing on, so that tracing off costs nothing per attempt. */
  readonly trace: (() => Readonly<Record<string, string>> | undefined) | undefined;
}

type HeadersEvent = Extract<EnvoyEvent, { type: "envoy.requestHeaders" }>;
type Attributes = HeadersEvent["attributes"];

/** attributes["envoy.filters.http.ext_proc"]["xds.upstream_host_metadata"].filter_metadata[ns][key]. */
export function endpointMetadata(attributes: Attributes, key: string): string | undefined {
  const host = attributes["envoy.filters.http.ext_proc"]?.["xds.upstream_host_metadata"] as
    | { filter_metadata?: Record<string, Record<string, unknown>> }
    | undefined;
  const value = host?.filter_metadata?.[BACKEND_METADATA_NAMESPACE]?.[key];
  return typeof value === "string" ? value : undefined;
}

function attribute(attributes: Attributes, name: string): string | undefined {
  const v = attributes["envoy.filters.http.ext_proc"]?.[name];
  return typeof v === "string" ? v : undefined;
}

function internalError(message: string, details: string): ProcessingResponse {
  return immediateResponse(openAIErrorReply({ status: 500, type: "server_error", message, details }));
}

export const attemptStreamMachine = setup({
  types: {
    input: {} as AttemptInput,
    context: {} as AttemptContext,
    events: {} as EnvoyEvent,
    emitted: {} as StreamEmitted,
    output: {} as AttemptOutput,
  },
  actors: {
    prepare: fromPromise<ProcessingResponse, PrepareInput>(({ input, signal }) => {
      const traceHeaders = input.trace?.();
      return prepareUpstream(
        traceHeaders ? { ...input.target, traceHeaders } : input.target,
        input.credentials,
        signal,
      );
    }),
  },
  guards: {
    routerFound: ({ context }) => context.router !== undefined,
  },
  actions: {
    findRouter: assign(({ context, event }) => {
      const e = event as HeadersEvent;
      const headers = readHeaders(e.headers);
      const requestId = headers.get(REQUEST_ID_HEADER);
      return {
        requestId,
        router: requestId === undefined ? undefined : context.findRouter(requestId),
        backendName: endpointMetadata(e.attributes, BACKEND_METADATA_KEY),
        refId: endpointMetadata(e.attributes, BACKEND_REF_METADATA_KEY),
        route: attribute(e.attributes, "xds.route_name"),
        path: headers.get(":path") ?? "/",
      };
    }),
    notifyRouter: sendTo(({ context }) => context.router!, ({ context }) => ({
      type: "attempt.started" as const,
      backend: context.backendName,
      backendRef: context.refId,
      route: context.route,
    })),
    replyNoRouter: emit(({ context }) => ({
      type: "reply" as const,
      response: internalError(
        "Internal error: the upstream attempt has no matching request",
        context.requestId === undefined ? "tollgate_attempt_without_request_id" : "tollgate_attempt_orphaned",
      ),
    })),
    recordNoRouter: assign(({ context }) => ({
      failure: context.requestId === undefined
        ? `missing ${REQUEST_ID_HEADER}: the router-level filter did not run`
        : `no router stream for request ${context.requestId}`,
    })),
    recordViolation: assign(({ event }) => ({
      failure: `Protocol violation: received ${phaseOf(event as Exclude<EnvoyEvent, { type: "envoy.closed" }>)} ` +
        "on an upstream attempt stream, which expects only its request headers",
    })),
    emitViolation: emit(({ context }) => ({ type: "violation" as const, message: context.failure ?? "" })),
  },
}).createMachine({
  id: "attemptStream",
  context: ({ input }) => ({
    ...input,
    requestId: undefined,
    router: undefined,
    backendName: undefined,
    refId: undefined,
    route: undefined,
    path: "/",
    failure: undefined,
  }),
  initial: "requestHeaders",
  on: {
    "envoy.closed": { target: ".failed", actions: assign({ failure: "aborted" }) },
  },
  states: {
    requestHeaders: {
      on: {
        "envoy.requestHeaders": { target: "deciding", actions: "findRouter" },
        "envoy.*": { target: "failed", actions: ["recordViolation", "emitViolation"] },
      },
    },
    deciding: {
      always: [
        { guard: "routerFound", target: "preparing", actions: "notifyRouter" },
        { target: "failed", actions: ["recordNoRouter", "replyNoRouter"] },
      ],
    },
    preparing: {
      invoke: {
        src: "prepare",
        input: ({ context }) => ({
          target: {
            // The router keeps the request it routed and the snapshot it started with; a config swap mid-request
            // changes nothing for this request.
            route: context.router!.getSnapshot().context.route as RoutedRequest,
            snapshot: context.router!.getSnapshot().context.snapshot,
            backendName: context.backendName,
            refId: context.refId,
            path: context.path,
          },
          credentials: context.credentials,
          trace: context.traceAttempt && (() =>
            context.traceAttempt!({
              requestId: context.requestId!,
              router: context.router!,
              backend: context.backendName,
              backendRef: context.refId,
            })),
        }),
        onDone: {
          target: "done",
          actions: emit(({ event }) => ({ type: "reply" as const, response: event.output })),
        },
        onError: {
          target: "failed",
          actions: [
            assign(({ event }) => ({ failure: `Cannot prepare the upstream request: ${String(event.error)}` })),
            emit(() => ({
              type: "reply" as const,
              response: internalError("Internal error while preparing the upstream request", "tollgate_prepare_failed"),
            })),
          ],
        },
      },
      on: { "envoy.*": { target: "failed", actions: ["recordViolation", "emitViolation"] } },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    outcome: context.failure === undefined ? "done" : "failed",
    requestId: context.requestId,
    backend: context.backendName,
    failure: context.failure,
  }),
});
