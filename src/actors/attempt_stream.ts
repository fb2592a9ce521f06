// The upstream-level ExtProc stream: Envoy opens one per upstream attempt (the first try and every retry), after
// the router filter has chosen the route. It finds the router stream of the same HTTP request through the internal
// request id header, tells it an attempt started, and prepares the upstream request.
//
// Must be idempotent: a retry runs it again on a fresh copy of the original request headers, so everything is
// derived from the router's stored request, never from what a previous attempt did.
import { type ActorRefFrom, assign, emit, sendTo, setup } from "xstate";
import { continueResponse, headerMutation, immediateResponse, readHeaders } from "../protocol/ext_proc.ts";
import { openAIErrorReply } from "../protocol/openai/errors.ts";
import { type EnvoyEvent, phaseOf, type StreamEmitted } from "./envoy_events.ts";
import { REQUEST_ID_HEADER, type routerStreamMachine } from "./router_stream.ts";
import { BACKEND_METADATA_KEY, BACKEND_METADATA_NAMESPACE, type BackendInfo } from "../control/snapshot.ts";

export type RouterStreamRef = ActorRefFrom<typeof routerStreamMachine>;

export interface AttemptInput {
  readonly streamId: string;
  readonly findRouter: (requestId: string) => RouterStreamRef | undefined;
}

interface AttemptContext {
  readonly streamId: string;
  readonly findRouter: (requestId: string) => RouterStreamRef | undefined;
  requestId: string | undefined;
  router: RouterStreamRef | undefined;
  /** The backend Envoy picked for this attempt, from the endpoint metadata; undefined for a plain endpoint. */
  backendName: string | undefined;
  path: string;
  failure: string | undefined;
}

/** Reads attributes["envoy.filters.http.ext_proc"]["xds.upstream_host_metadata"].filter_metadata[ns][key]. */
export function backendFromAttributes(
  attributes: Readonly<Record<string, Readonly<Record<string, unknown>> | undefined>>,
): string | undefined {
  const host = attributes["envoy.filters.http.ext_proc"]?.["xds.upstream_host_metadata"] as
    | { filter_metadata?: Record<string, Record<string, unknown>> }
    | undefined;
  const name = host?.filter_metadata?.[BACKEND_METADATA_NAMESPACE]?.[BACKEND_METADATA_KEY];
  return typeof name === "string" ? name : undefined;
}

export interface AttemptOutput {
  readonly outcome: "done" | "failed";
  readonly requestId: string | undefined;
  readonly failure: string | undefined;
}

type HeadersEvent = Extract<EnvoyEvent, { type: "envoy.requestHeaders" }>;

/** The backend from the snapshot the router stream started with (a config swap mid-request changes nothing). */
function backendInfo(context: AttemptContext): BackendInfo | undefined {
  if (context.backendName === undefined || !context.router) return undefined;
  return context.router.getSnapshot().context.snapshot.backends.get(context.backendName);
}

export const attemptStreamMachine = setup({
  types: {
    input: {} as AttemptInput,
    context: {} as AttemptContext,
    events: {} as EnvoyEvent,
    emitted: {} as StreamEmitted,
    output: {} as AttemptOutput,
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
        backendName: backendFromAttributes(e.attributes),
        path: headers.get(":path") ?? "/",
      };
    }),
    notifyRouter: sendTo(({ context }) => context.router!, { type: "attempt.started" as const }),
    // Pass-through of the body for now: it goes upstream as the client sent it. Translation to the backend's
    // schema (and CONTINUE_AND_REPLACE with the new body) plugs in here. The backend's credential replaces
    // whatever the client sent to authenticate with the gateway.
    replyContinue: emit(({ context }) => {
      const backend = backendInfo(context);
      const set: Record<string, string> = {};
      const remove = [REQUEST_ID_HEADER];
      if (backend?.auth) {
        set[backend.auth.header] = backend.auth.value;
        if (backend.auth.header !== "authorization") remove.push("authorization");
      }
      if (backend?.apiPrefix && context.path.startsWith("/v1")) {
        set[":path"] = backend.apiPrefix + context.path.slice(3);
      }
      return {
        type: "reply" as const,
        response: continueResponse("requestHeaders", { headerMutation: headerMutation(set, remove) }),
      };
    }),
    replyNoRouter: emit(({ context }) => ({
      type: "reply" as const,
      response: immediateResponse(openAIErrorReply({
        status: 500,
        type: "server_error",
        message: "Internal error: the upstream attempt has no matching request",
        details: context.requestId === undefined ? "tollgate_attempt_without_request_id" : "tollgate_attempt_orphaned",
      })),
    })),
    recordNoRouter: assign(({ context }) => ({
      failure: context.requestId === undefined
        ? `missing ${REQUEST_ID_HEADER}: the router-level filter did not run`
        : `no router stream for request ${context.requestId}`,
    })),
    recordViolation: assign(({ event }) => ({
      failure: `Protocol violation: received ${phaseOf(event as Exclude<EnvoyEvent, { type: "envoy.closed" }>)} ` +
        "on an upstream attempt stream before its request headers",
    })),
    emitViolation: emit(({ context }) => ({ type: "violation" as const, message: context.failure ?? "" })),
  },
}).createMachine({
  id: "attemptStream",
  context: ({ input }) => ({
    streamId: input.streamId,
    findRouter: input.findRouter,
    requestId: undefined,
    router: undefined,
    backendName: undefined,
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
        { guard: "routerFound", target: "done", actions: ["notifyRouter", "replyContinue"] },
        { target: "failed", actions: ["recordNoRouter", "replyNoRouter"] },
      ],
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    outcome: context.failure === undefined ? "done" : "failed",
    requestId: context.requestId,
    failure: context.failure,
  }),
});
