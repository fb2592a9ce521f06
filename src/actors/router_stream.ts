// The router-level ExtProc stream: one actor per HTTP request that Envoy's router filter sends us. It reads the
// request, decides the model (x-ai-eg-model) so Envoy can re-select the route, then follows the response.
//
//   requestHeaders → requestBody → routing → [selecting] → upstream → responseHeaders → responseBody → done
//                                                        failed (immediate response, protocol error or abort)
//   [selecting]: semantic routing (signals, guards, cache); a cache hit ends in answered, a guard block in failed
//
// Every ProcessingRequest is answered with exactly the matching response type (or an immediate response), emitted
// as a "reply" event; the transport writes it. Messages that arrive out of order are protocol violations.
import { assign, emit, enqueueActions, fromPromise, setup } from "xstate";
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
import { AI_GATEWAY_NAMESPACE, responseTranslatorFor } from "./response_translation.ts";
import { type Accounting, accountResponse } from "./usage_accounting.ts";
import { type Reservation, reservationMetadata, reserve } from "../usage/reservation_plan.ts";
import { usageEventId } from "../usage/usage_event.ts";
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
import {
  cacheableBody,
  type CacheCapture,
  captureChunk,
  routedRequest,
  type RoutingOutcome,
  type RoutingServices,
  type SemanticRouterEngine,
  semanticRouterFor,
} from "../routing/stream_routing.ts";
import type { RoutingRequest } from "../routing/router_engine.ts";

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
  /** How semantic routing reaches embeddings, classifiers and caches; the process defaults when absent. */
  readonly routing?: RoutingServices;
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
  /** The estimate written to dynamic metadata for the ratelimit filter (admission by reservation), if it is on. */
  reservation: Reservation | undefined;
  failure: StreamFailure | undefined;
  readonly routingServices: RoutingServices | undefined;
  /** What semantic routing decided, for the client's response headers and the cache. */
  routing: (RoutingOutcome & { kind: "routed" }) | undefined;
  routingHeaders: Readonly<Record<string, string>>;
  /** Routing rewrote the body (model, reasoning, tools): Envoy must forward the new one. */
  bodyReplaced: boolean;
  /** The answer on its way to the semantic cache. */
  cacheCapture: CacheCapture | undefined;
}

type RoutingDone = { readonly output: RoutingOutcome };

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
    reservation: context.reservation,
  });
}

/** The last message of a buffered response whose translation failed (the headers have not reached the client). */
function unreadableAnswer(
  context: { translator: ResponseTranslator | undefined; mode: ProcessingMode },
  endOfStream: boolean,
): boolean {
  return endOfStream && context.translator?.failure !== undefined &&
    context.mode.responseBodyMode === BodyMode.BUFFERED;
}

export const routerStreamMachine = setup({
  types: {
    input: {} as RouterInput,
    context: {} as RouterContext,
    events: {} as Event,
    emitted: {} as StreamEmitted,
    output: {} as RouterOutput,
  },
  actors: {
    // Semantic routing may call embeddings and classifier servers: cancelled with the stream.
    semanticRoute: fromPromise<RoutingOutcome, { engine: SemanticRouterEngine; request: RoutingRequest }>(
      ({ input, signal }) => input.engine.route(input.request, signal),
    ),
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
    semanticallyRouted: ({ context }) =>
      semanticRouterFor(context.snapshot, context.route as RoutedRequest, context.routingServices) !== undefined,
    routingBlocked: ({ event }) => (event as unknown as RoutingDone).output.kind === "blocked",
    routingAnsweredFromCache: ({ event }) => (event as unknown as RoutingDone).output.kind === "cached",
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
    // Admission by reservation: the ratelimit filter, next in Envoy's chain, reads the estimate from metadata.
    reserveEstimate: assign(({ context }) => {
      const plan = context.snapshot.reservation;
      if (!plan) return {};
      return { reservation: reserve(plan, context.route as RoutedRequest, usageEventId(context.now())) };
    }),
    replyRoute: emit(({ context }) => {
      const route = context.route as RoutedRequest;
      const response = continueResponse("requestBody", {
        headerMutation: headerMutation({
          [MODEL_HEADER]: route.model,
          [ORIGINAL_PATH_HEADER]: context.path,
          [REQUEST_ID_HEADER]: context.streamId,
          ...(context.bodyReplaced ? { "content-length": String(route.rawBody.length) } : {}),
        }),
        clearRouteCache: true,
        ...(context.bodyReplaced ? { body: route.rawBody } : {}),
      });
      if (context.reservation) {
        response.dynamicMetadata = { [AI_GATEWAY_NAMESPACE]: reservationMetadata(context.reservation) };
      }
      return reply({ type: "reply", response });
    }),
    applyRouting: assign(({ context, event }) => {
      const outcome = (event as unknown as RoutingDone).output as RoutingOutcome & { kind: "routed" };
      return {
        route: routedRequest(context.route as RoutedRequest, outcome),
        routing: outcome,
        routingHeaders: outcome.headers,
        bodyReplaced: outcome.body !== undefined,
      };
    }),
    replyRoutingBlock: emit(({ context, event }) => {
      const outcome = (event as unknown as RoutingDone).output as RoutingOutcome & { kind: "blocked" };
      const error = { ...outcome.error, headers: { ...outcome.error.headers, ...outcome.headers } };
      return reply({ type: "reply", response: immediateResponse(clientErrorReply(apiOfPath(context.path), error)) });
    }),
    recordRoutingBlock: assign(({ event }) => {
      const outcome = (event as unknown as RoutingDone).output as RoutingOutcome & { kind: "blocked" };
      return { failure: rejectionOf(outcome.error) };
    }),
    replyFromCache: emit(({ event }) => {
      const outcome = (event as unknown as RoutingDone).output as RoutingOutcome & { kind: "cached" };
      return reply({
        type: "reply",
        response: immediateResponse({
          status: 200,
          body: outcome.reply.body,
          contentType: outcome.reply.contentType,
          headers: outcome.headers,
          details: "tollgate_semantic_cache_hit",
        }),
      });
    }),
    replyRoutingError: emit(({ context }) =>
      reply({
        type: "reply",
        response: immediateResponse(clientErrorReply(apiOfPath(context.path), {
          status: 500,
          type: "server_error",
          message: "Internal error while routing the request",
          details: "tollgate_routing_failed",
        })),
      })
    ),
    recordRoutingError: assign(({ event }) => ({
      failure: {
        kind: "rejected",
        status: 500,
        details: `tollgate_routing_failed: ${String((event as unknown as { error: unknown }).error)}`,
      } satisfies StreamFailure,
    })),
    // Only a complete 2xx answer is cached; what the client receives is what the cache keeps.
    startCacheCapture: assign(({ context }) => {
      const store = context.routing?.cacheStore;
      const ok = context.responseStatus !== undefined && context.responseStatus >= 200 && context.responseStatus < 300;
      return { cacheCapture: store && ok ? { store, chunks: [], bytes: 0 } : undefined };
    }),
    captureForCache: enqueueActions(({ context, event, enqueue }) => {
      if (!context.cacheCapture) return;
      const { body, endOfStream } = (event as BodyEvent).body;
      const kept = captureChunk(context.cacheCapture, context.chunkOut ?? body);
      const ok = (context.responseStatus ?? 0) >= 200 && (context.responseStatus ?? 0) < 300;
      enqueue.assign({ cacheCapture: endOfStream || !ok ? undefined : kept });
      if (!endOfStream || !kept || !ok) return;
      const cached = cacheableBody(kept, (context.route as RoutedRequest).stream);
      if (!cached) return;
      enqueue.sendTo(kept.store.writer, {
        type: "store",
        query: kept.store.query,
        response: { body: cached, contentType: "application/json" },
      });
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
      // A whole (buffered) answer the translator could not read: Envoy still holds its headers, so the client gets
      // a 502 with the translator's error body instead of a 200 carrying an error.
      const invalid = unreadableAnswer(context, endOfStream) && (context.responseStatus ?? 200) < 300
        ? { responseStatus: 502 }
        : {};
      return {
        chunkOut,
        firstByteAt,
        ...invalid,
        ...(last ? { accounting: account({ ...context, ...invalid }) } : {}),
      };
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
        headerMutation: headerMutation(
          { ...context.translatedHeaders, ...context.routingHeaders },
          context.translator ? ["content-length"] : [],
        ),
      });
      if (context.modeOverridden) response.modeOverride = context.mode;
      return reply({ type: "reply", response });
    }),
    replyResponseChunk: emit(({ context, event }) => {
      const { body, endOfStream } = (event as BodyEvent).body;
      const out = context.chunkOut ?? body;
      if (context.responseStatus === 502 && unreadableAnswer(context, endOfStream)) {
        return reply({
          type: "reply",
          response: immediateResponse({
            status: 502,
            body: out,
            contentType: "application/json",
            details: "tollgate_upstream_response_unreadable",
          }),
        });
      }
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
    reservation: undefined,
    failure: undefined,
    routingServices: input.routing,
    routing: undefined,
    routingHeaders: {},
    bodyReplaced: false,
    cacheCapture: undefined,
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
        { guard: "semanticallyRouted", target: "selecting" },
        { target: "upstream", actions: ["rememberRoutingHeaders", "reserveEstimate", "replyRoute"] },
      ],
    },
    // Semantic routing (model "auto", or a route that enables it): guards, cache, signals, model selection.
    selecting: {
      invoke: {
        src: "semanticRoute",
        input: ({ context }) => {
          const route = context.route as RoutedRequest;
          return {
            engine: semanticRouterFor(context.snapshot, route, context.routingServices)!,
            request: {
              endpoint: route.endpoint,
              model: route.model,
              stream: route.stream,
              body: route.body,
              headers: context.requestHeaders,
            },
          };
        },
        onDone: [
          { guard: "routingBlocked", target: "failed", actions: ["replyRoutingBlock", "recordRoutingBlock"] },
          { guard: "routingAnsweredFromCache", target: "answered", actions: "replyFromCache" },
          {
            target: "upstream",
            actions: ["applyRouting", "rememberRoutingHeaders", "reserveEstimate", "replyRoute"],
          },
        ],
        onError: { target: "failed", actions: ["replyRoutingError", "recordRoutingError"] },
      },
    },
    upstream: {
      on: {
        "attempt.started": { actions: "countAttempt" },
        "envoy.responseHeaders": {
          target: "responseHeaders",
          actions: ["recordResponseHeaders", "overrideModeForStream", "startCacheCapture"],
        },
        // With response headers in SKIP mode the body is the first thing we see of the response.
        "envoy.responseBody": [
          {
            guard: "lastResponseChunk",
            target: "done",
            actions: ["translateResponseChunk", "captureForCache", "replyResponseChunk"],
          },
          { target: "responseBody", actions: ["translateResponseChunk", "captureForCache", "replyResponseChunk"] },
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
          {
            guard: "lastResponseChunk",
            target: "done",
            actions: ["translateResponseChunk", "captureForCache", "replyResponseChunk"],
          },
          { actions: ["translateResponseChunk", "captureForCache", "replyResponseChunk"] },
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
    /** Answered by the gateway itself (a semantic cache hit): nothing went upstream, nothing to account. */
    answered: { type: "final" },
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
