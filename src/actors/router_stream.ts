// The router-level ExtProc stream: one actor per HTTP request that Envoy's router filter sends us. It reads the
// request, decides the model (x-ai-eg-model) so Envoy can re-select the route, then follows the response.
//
//   requestHeaders → requestBody → routing → upstream → responseHeaders → responseBody → done
//                                                        failed (immediate response, protocol error or abort)
//
// Every ProcessingRequest is answered with exactly the matching response type (or an immediate response), emitted
// as a "reply" event; the transport writes it. Messages that arrive out of order are protocol violations.
import { assign, emit, enqueueActions, setup } from "xstate";
import type { GatewaySnapshot } from "../control/snapshot.ts";
import {
  BodyMode,
  continueResponse,
  headerMutation,
  immediateResponse,
  type Phase,
  type ProcessingMode,
  readHeaders,
  sendsBody,
  sendsTrailers,
} from "../protocol/ext_proc.ts";
import { clientErrorReply, type OpenAIError } from "../protocol/openai/errors.ts";
import type { ResponseTranslator } from "../protocol/translators/translator.ts";
import { responseTranslatorFor } from "./response_translation.ts";
import { type Accounting, accountResponse } from "./usage_accounting.ts";
import {
  apiOfPath,
  type Endpoint,
  findEndpoint,
  isEndpoint,
  modelsListBody,
  pathOnly,
  type RoutedRequest,
  routeRequestBody,
} from "../protocol/openai/endpoints.ts";
import { type EnvoyEvent, type EnvoyMessageEvent, phaseOf, type StreamEmitted } from "./envoy_events.ts";

/** Headers the router sets; client-sent copies are overwritten, never trusted. */
export const MODEL_HEADER = "x-ai-eg-model";
export const ORIGINAL_PATH_HEADER = "x-ai-eg-original-path";
/** Joins the router stream and the attempt streams of one HTTP request (see attempt_stream.ts). */
export const REQUEST_ID_HEADER = "x-tollgate-request-id";

export interface RouterInput {
  readonly streamId: string;
  readonly snapshot: GatewaySnapshot;
  /** The processing mode the router filter is configured with. */
  readonly mode: ProcessingMode;
  /** Cap on an accumulated request body when Envoy streams it in chunks (BUFFERED is capped by Envoy itself). */
  readonly maxBodyBytes: number;
  /** Wall-clock epoch milliseconds, for usage event times and latencies. */
  readonly now?: () => number;
}

export type StreamFailure =
  | { readonly kind: "rejected"; readonly status: number; readonly details: string }
  | { readonly kind: "protocol"; readonly message: string }
  | { readonly kind: "aborted"; readonly phase: string };

export interface RouterContext {
  readonly streamId: string;
  readonly snapshot: GatewaySnapshot;
  mode: ProcessingMode;
  readonly maxBodyBytes: number;
  method: string;
  path: string;
  endpoint: Endpoint | OpenAIError | undefined;
  chunks: Uint8Array[];
  bodyBytes: number;
  route: RoutedRequest | OpenAIError | undefined;
  attempts: number;
  responseStatus: number | undefined;
  /** The backend and backendRef of the latest attempt: whoever answers is translated with their schema. */
  backend: string | undefined;
  backendRef: string | undefined;
  /** Per-stream response translator (it keeps its own parse state), made at the response headers. */
  translator: ResponseTranslator | undefined;
  /** Headers the translator sets on the client's response. */
  translatedHeaders: Readonly<Record<string, string>>;
  /** Set when the response headers reply carries a mode_override. */
  modeOverridden: boolean;
  readonly now: () => number;
  startedAt: number;
  firstByteAt: number | undefined;
  /** The request headers as routing saw them, for the descriptors a usage event counts against. */
  requestHeaders: ReadonlyMap<string, string>;
  /** Envoy's route name of the latest attempt (xds.route_name). */
  edgeRoute: string | undefined;
  /** The body to send for the response chunk being answered. */
  chunkOut: Uint8Array | undefined;
  accounting: Accounting | undefined;
  failure: StreamFailure | undefined;
}

/** Sent by an attempt stream of the same request when Envoy starts an upstream try. */
export type AttemptEvent = {
  readonly type: "attempt.started";
  readonly backend: string | undefined;
  readonly backendRef: string | undefined;
  readonly route?: string | undefined;
};

export interface RouterOutput {
  readonly outcome: "done" | "rejected" | "protocol" | "aborted";
  readonly model: string | undefined;
  readonly backend: string | undefined;
  readonly attempts: number;
  readonly responseStatus: number | undefined;
  readonly failure: StreamFailure | undefined;
}

type Event = EnvoyEvent | AttemptEvent;
type HeadersEvent = Extract<EnvoyEvent, { type: "envoy.requestHeaders" | "envoy.responseHeaders" }>;
type BodyEvent = Extract<EnvoyEvent, { type: "envoy.requestBody" | "envoy.responseBody" }>;

function isOpenAIError(x: unknown): x is OpenAIError {
  return typeof x === "object" && x !== null && "status" in x && "message" in x;
}

function reply(response: StreamEmitted & { type: "reply" }): StreamEmitted {
  return response;
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function rejectionOf(e: OpenAIError): StreamFailure {
  return { kind: "rejected", status: e.status, details: e.details };
}

function account(context: RouterContext): Accounting {
  return accountResponse({
    route: context.route as RoutedRequest,
    snapshot: context.snapshot,
    backend: context.backend,
    backendRef: context.backendRef,
    edgeRoute: context.edgeRoute,
    usage: context.translator?.usage ?? {},
    responseModel: context.translator?.responseModel,
    status: context.responseStatus ?? 0,
    requestHeaders: context.requestHeaders,
    startedAt: context.startedAt,
    endedAt: context.now(),
    firstByteAt: context.firstByteAt,
  });
}

export const routerStreamMachine = setup({
  types: {
    input: {} as RouterInput,
    context: {} as RouterContext,
    events: {} as Event,
    emitted: {} as StreamEmitted,
    output: {} as RouterOutput,
  },
  guards: {
    requestRejected: ({ context }) => context.endpoint === undefined || !isEndpoint(context.endpoint),
    answeredLocally: ({ context }) => isEndpoint(context.endpoint!) && !context.endpoint.routedByBody,
    // With end_of_stream on the headers, or a mode that sends no body, a body-routed request cannot be routed.
    noRequestBody: ({ event }) => (event as HeadersEvent).headers.endOfStream,
    requestBodyNotSent: ({ context }) => !sendsBody(context.mode.requestBodyMode),
    bodyTooLarge: ({ context, event }) =>
      context.bodyBytes + (event as BodyEvent).body.body.length > context.maxBodyBytes,
    moreBodyComing: ({ event }) => !(event as BodyEvent).body.endOfStream,
    bodyRejected: ({ context }) => isOpenAIError(context.route),
    responseComplete: ({ context, event }) =>
      (event as HeadersEvent).headers.endOfStream ||
      (!sendsBody(context.mode.responseBodyMode) && !sendsTrailers(context.mode.responseTrailerMode)),
    lastResponseChunk: ({ context, event }) =>
      (event as BodyEvent).body.endOfStream && !sendsTrailers(context.mode.responseTrailerMode),
  },
  actions: {
    recordRequestHeaders: assign(({ context, event }) => {
      const headers = readHeaders((event as HeadersEvent).headers);
      const method = headers.get(":method") ?? "";
      const path = headers.get(":path") ?? "";
      return {
        method,
        path,
        endpoint: findEndpoint(method, path, headers.get("content-type")),
        requestHeaders: headers,
        startedAt: context.now(),
      };
    }),
    replyRequestError: emit(({ context }) =>
      reply({
        type: "reply",
        response: immediateResponse(clientErrorReply(apiOfPath(context.path), context.endpoint as OpenAIError)),
      })
    ),
    recordRequestFailure: assign(({ context }) => ({ failure: rejectionOf(context.endpoint as OpenAIError) })),
    replyModels: emit(({ context }) =>
      reply({
        type: "reply",
        response: immediateResponse({
          status: 200,
          body: modelsListBody(context.snapshot),
          details: "tollgate_models",
        }),
      })
    ),
    rejectEmptyBody: assign(({ context }) => ({
      route: {
        status: 400,
        type: "invalid_request_error",
        code: "invalid_request_body",
        message: `The request body of ${pathOnly(context.path)} is empty; send a JSON object`,
        details: "tollgate_malformed_body",
      } satisfies OpenAIError,
    })),
    rejectUnreadableBody: assign({
      route: {
        status: 500,
        type: "server_error",
        message: "The gateway is misconfigured: its processing mode does not send the request body",
        details: "tollgate_body_mode_none",
      } satisfies OpenAIError,
    }),
    rejectLargeBody: assign(({ context }) => ({
      route: {
        status: 413,
        type: "invalid_request_error",
        code: "request_too_large",
        message: `The request body exceeds ${context.maxBodyBytes} bytes`,
        details: "tollgate_body_too_large",
      } satisfies OpenAIError,
    })),
    replyRouteError: emit(({ context }) =>
      reply({
        type: "reply",
        response: immediateResponse(clientErrorReply(apiOfPath(context.path), context.route as OpenAIError)),
      })
    ),
    recordRouteFailure: assign(({ context }) => ({ failure: rejectionOf(context.route as OpenAIError) })),
    continueRequestHeaders: emit(() => reply({ type: "reply", response: continueResponse("requestHeaders") })),
    appendBody: assign(({ context, event }) => {
      const chunk = (event as BodyEvent).body.body;
      if (chunk.length === 0) return {};
      return { chunks: [...context.chunks, chunk], bodyBytes: context.bodyBytes + chunk.length };
    }),
    continueBodyChunk: emit(({ event }) =>
      reply({ type: "reply", response: continueResponse(phaseOf(event as BodyEvent)) })
    ),
    routeBody: assign(({ context }) => ({
      route: routeRequestBody(
        context.endpoint as Endpoint,
        concat(context.chunks, context.bodyBytes),
        context.snapshot,
      ),
      chunks: [],
    })),
    // A streamed answer must reach the client chunk by chunk, so the response body switches to STREAMED. Envoy
    // honours mode_override only in answer to a headers message (and only with allow_mode_override), which is
    // why this happens at the response headers; if Envoy ignores it, a single BUFFERED chunk still works.
    overrideModeForStream: assign(({ context, event }) => {
      const route = context.route as RoutedRequest;
      const contentType = readHeaders((event as HeadersEvent).headers).get("content-type") ?? "";
      const streaming = route.stream || contentType.startsWith("text/event-stream") ||
        contentType.startsWith("application/vnd.amazon.eventstream");
      if (!streaming || context.mode.responseBodyMode !== BodyMode.BUFFERED) return {};
      return { mode: { ...context.mode, responseBodyMode: BodyMode.STREAMED }, modeOverridden: true };
    }),
    replyRoute: emit(({ context }) => {
      const route = context.route as RoutedRequest;
      const response = continueResponse("requestBody", {
        headerMutation: headerMutation({
          [MODEL_HEADER]: route.model,
          [ORIGINAL_PATH_HEADER]: context.path,
          [REQUEST_ID_HEADER]: context.streamId,
        }),
        clearRouteCache: true,
      });
      return reply({ type: "reply", response });
    }),
    countAttempt: assign(({ context, event }) => {
      const e = event as AttemptEvent;
      return { attempts: context.attempts + 1, backend: e.backend, backendRef: e.backendRef, edgeRoute: e.route };
    }),
    rememberRoutingHeaders: assign(({ context }) => {
      const headers = new Map(context.requestHeaders);
      headers.set(MODEL_HEADER, (context.route as RoutedRequest).model);
      return { requestHeaders: headers };
    }),
    translateResponseChunk: assign(({ context, event }) => {
      const { body, endOfStream } = (event as BodyEvent).body;
      const t = context.translator;
      const chunkOut = t ? t.body(body, endOfStream) : body;
      const firstByteAt = context.firstByteAt ?? (body.length > 0 ? context.now() : undefined);
      const last = endOfStream && !sendsTrailers(context.mode.responseTrailerMode);
      return { chunkOut, firstByteAt, ...(last ? { accounting: account(context) } : {}) };
    }),
    accountIfNeeded: assign(({ context }) => {
      if (context.accounting || !context.route || isOpenAIError(context.route)) return {};
      return { accounting: account(context) };
    }),
    emitUsage: enqueueActions(({ context, enqueue }) => {
      if (context.accounting) enqueue.emit({ type: "usage" as const, event: context.accounting.event });
    }),
    recordResponseHeaders: assign(({ context, event }) => {
      const headers = readHeaders((event as HeadersEvent).headers);
      const status = Number(headers.get(":status"));
      const responseStatus = Number.isInteger(status) ? status : undefined;
      const translator = responseTranslatorFor(
        context.route as RoutedRequest,
        context.snapshot,
        context.backend,
        context.backendRef,
      );
      const translatedHeaders = translator?.headers(responseStatus ?? 200, headers) ?? {};
      return { responseStatus, translator, translatedHeaders };
    }),
    continueResponseHeaders: emit(({ context }) => {
      // The body may change size chunk by chunk: the length is Envoy's to recompute, not the upstream's.
      const response = continueResponse("responseHeaders", {
        headerMutation: headerMutation(context.translatedHeaders, context.translator ? ["content-length"] : []),
      });
      if (context.modeOverridden) response.modeOverride = context.mode;
      return reply({ type: "reply", response });
    }),
    replyResponseChunk: emit(({ context, event }) => {
      const { body, endOfStream } = (event as BodyEvent).body;
      const out = context.chunkOut ?? body;
      const response = continueResponse("responseBody", out === body ? {} : { body: out });
      if (endOfStream && context.accounting) response.dynamicMetadata = context.accounting.metadata;
      return reply({ type: "reply", response });
    }),
    continueResponseTrailers: emit(() => reply({ type: "reply", response: continueResponse("responseTrailers") })),
    recordViolation: assign(({ event, self }) => {
      const state = String(self.getSnapshot().value);
      return {
        failure: {
          kind: "protocol",
          message: `Protocol violation: received ${phaseOf(event as EnvoyMessageEvent)} while in ${state}`,
        } satisfies StreamFailure,
      };
    }),
    recordAbort: assign(({ self }) => ({
      failure: { kind: "aborted", phase: String(self.getSnapshot().value) } satisfies StreamFailure,
    })),
    emitViolation: emit(({ context }) => ({
      type: "violation" as const,
      message: context.failure?.kind === "protocol" ? context.failure.message : "Protocol violation",
    })),
  },
}).createMachine({
  id: "routerStream",
  context: ({ input }) => ({
    streamId: input.streamId,
    snapshot: input.snapshot,
    mode: input.mode,
    maxBodyBytes: input.maxBodyBytes,
    method: "",
    path: "",
    endpoint: undefined,
    chunks: [],
    bodyBytes: 0,
    route: undefined,
    attempts: 0,
    responseStatus: undefined,
    backend: undefined,
    backendRef: undefined,
    translator: undefined,
    translatedHeaders: {},
    modeOverridden: false,
    now: input.now ?? Date.now,
    startedAt: 0,
    firstByteAt: undefined,
    requestHeaders: new Map(),
    edgeRoute: undefined,
    chunkOut: undefined,
    accounting: undefined,
    failure: undefined,
  }),
  initial: "requestHeaders",
  // Anything a state does not handle is out of order. "envoy.closed" before the end means Envoy gave up.
  on: {
    "envoy.closed": { target: ".failed", actions: "recordAbort" },
    "envoy.*": { target: ".failed", actions: ["recordViolation", "emitViolation"] },
  },
  states: {
    requestHeaders: {
      on: { "envoy.requestHeaders": { target: "classifying", actions: "recordRequestHeaders" } },
    },
    classifying: {
      always: [
        { guard: "requestRejected", target: "failed", actions: ["replyRequestError", "recordRequestFailure"] },
        { guard: "answeredLocally", target: "done", actions: "replyModels" },
        { guard: "noRequestBody", target: "routing", actions: "rejectEmptyBody" },
        { guard: "requestBodyNotSent", target: "routing", actions: "rejectUnreadableBody" },
        { target: "requestBody", actions: "continueRequestHeaders" },
      ],
    },
    requestBody: {
      on: {
        "envoy.requestBody": [
          { guard: "bodyTooLarge", target: "routing", actions: "rejectLargeBody" },
          { guard: "moreBodyComing", actions: ["appendBody", "continueBodyChunk"] },
          { target: "routing", actions: ["appendBody", "routeBody"] },
        ],
      },
    },
    routing: {
      always: [
        { guard: "bodyRejected", target: "failed", actions: ["replyRouteError", "recordRouteFailure"] },
        { target: "upstream", actions: ["rememberRoutingHeaders", "replyRoute"] },
      ],
    },
    upstream: {
      on: {
        "attempt.started": { actions: "countAttempt" },
        "envoy.responseHeaders": {
          target: "responseHeaders",
          actions: ["recordResponseHeaders", "overrideModeForStream"],
        },
        // With response headers in SKIP mode the body is the first thing we see of the response.
        "envoy.responseBody": [
          { guard: "lastResponseChunk", target: "done", actions: ["translateResponseChunk", "replyResponseChunk"] },
          { target: "responseBody", actions: ["translateResponseChunk", "replyResponseChunk"] },
        ],
      },
    },
    responseHeaders: {
      always: [
        { guard: "responseComplete", target: "done", actions: "continueResponseHeaders" },
        { target: "responseBody", actions: "continueResponseHeaders" },
      ],
    },
    responseBody: {
      on: {
        "attempt.started": { actions: "countAttempt" },
        "envoy.responseBody": [
          { guard: "lastResponseChunk", target: "done", actions: ["translateResponseChunk", "replyResponseChunk"] },
          { actions: ["translateResponseChunk", "replyResponseChunk"] },
        ],
        "envoy.responseTrailers": { target: "done", actions: "continueResponseTrailers" },
      },
    },
    done: {
      type: "final",
      entry: [
        "accountIfNeeded",
        "emitUsage",
      ],
    },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    outcome: context.failure?.kind ?? "done",
    model: context.route && !isOpenAIError(context.route) ? context.route.model : undefined,
    backend: context.backend,
    attempts: context.attempts,
    responseStatus: context.responseStatus,
    failure: context.failure,
  }),
});

export type RouterStreamMachine = typeof routerStreamMachine;
export type { Phase };
