// The client half of Envoy's ext_proc HTTP filter, as the edge runs it for the router-level filter (one stream per
// HTTP request) and the upstream-level filter (one stream per attempt). It follows Envoy's documented behaviour:
// messages only for the phases the processing mode sends, one outstanding message at a time with message_timeout,
// header mutations checked against the mutation rules, CONTINUE_AND_REPLACE, mode_override only in answer to a
// headers message, dynamic metadata only for the receiving namespaces, immediate responses, and on failure either
// a local reply (500, or 504 on timeout) or, with failure_mode_allow, carrying on without the processor.
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/ext_proc_filter
import * as grpc from "@grpc/grpc-js";
import {
  CommonResponse_ResponseStatus,
  ExternalProcessorClient,
  type HeaderMutation,
  type ProcessingResponse,
} from "../protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { HeaderValueOption_HeaderAppendAction as AppendAction } from "../protocol/gen/envoy/config/core/v3/base.ts";
import {
  BodyMode,
  HeaderMode,
  type Phase,
  type ProcessingMode,
  type ProcessingRequest,
  sendsBody,
  sendsHeaders,
} from "../protocol/ext_proc.ts";
import { bodyRequest, headersRequest } from "../protocol/ext_proc_request.ts";
import type { Clock } from "../observability/clock.ts";
import type { ExtProcFilterConfig } from "./config.ts";
import { type DynamicMetadata, mergeDynamicMetadata } from "./dynamic_metadata.ts";
import type { HeaderList } from "./headers.ts";
import { checkHeaderChange, checkHeaderRemoval } from "./mutation_rules.ts";

const utf8 = new TextDecoder();

/** A response the proxy produces itself instead of (or in place of) the upstream's. */
export interface LocalReply {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Uint8Array;
  /** Envoy's response code details, e.g. "ext_proc_error_message_timeout". */
  readonly details: string;
}

export type PhaseResult =
  | {
    readonly kind: "continue";
    readonly clearRouteCache: boolean;
    /** Set only when the processor replaced the body: CONTINUE_AND_REPLACE (headers) or a body mutation. */
    readonly body?: Uint8Array;
  }
  | { readonly kind: "respond"; readonly reply: LocalReply };

const CONTINUE = { kind: "continue", clearRouteCache: false } as const;

/** One gRPC channel per processor target, shared by every stream to it. */
export class ExtProcChannel {
  readonly #client: ExternalProcessorClient;

  constructor(target: string) {
    this.#client = new ExternalProcessorClient(target, grpc.credentials.createInsecure());
  }

  open(
    initialMetadata: Readonly<Record<string, string>>,
  ): grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(initialMetadata)) md.set(k, v);
    return this.#client.process(md);
  }

  close(): void {
    this.#client.close();
  }
}

export interface ExtProcStreamDeps {
  readonly clock: Clock;
  /** The request's dynamic metadata; processor-sent namespaces are merged into it. */
  readonly metadata: DynamicMetadata;
  /** Attributes sent with the request headers (xds.*), already resolved for this stream. */
  readonly attributes?: Readonly<Record<string, unknown>>;
}

/** Counters a stream keeps for the access log and tests. */
export interface ExtProcStreamStats {
  messagesSent: number;
  rejectedHeaderMutations: number;
  failure: string | undefined;
}

type Exchange =
  | { readonly kind: "response"; readonly response: ProcessingResponse }
  | { readonly kind: "skip" }
  | { readonly kind: "failed"; readonly reason: string; readonly timeout: boolean };

export class ExtProcFilterStream {
  readonly #channel: ExtProcChannel;
  readonly #config: ExtProcFilterConfig;
  readonly #deps: ExtProcStreamDeps;
  #mode: ProcessingMode;
  #call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse> | undefined;
  #waiter: ((e: Exchange) => void) | undefined;
  /** Set once the processor is out of the picture: a clean close, or a failure under failure_mode_allow. */
  #bypassed = false;
  /** A failure seen while no message was outstanding (e.g. a spurious response); reported on the next send. */
  #pendingFailure: string | undefined;
  #replacedRequestBody = false;
  #replacedResponseBody = false;
  readonly stats: ExtProcStreamStats = { messagesSent: 0, rejectedHeaderMutations: 0, failure: undefined };

  constructor(channel: ExtProcChannel, config: ExtProcFilterConfig, deps: ExtProcStreamDeps) {
    this.#channel = channel;
    this.#config = config;
    this.#deps = deps;
    this.#mode = config.processingMode;
  }

  /** The processing mode in force, after any accepted mode_override. */
  get mode(): ProcessingMode {
    return this.#mode;
  }

  /** Whether the body of `direction` will be sent to the processor. */
  sendsBody(direction: "request" | "response"): boolean {
    if (this.#bypassed) return false;
    if (direction === "request") return !this.#replacedRequestBody && sendsBody(this.#mode.requestBodyMode);
    return !this.#replacedResponseBody && sendsBody(this.#mode.responseBodyMode);
  }

  /** Whether body chunks go one by one (STREAMED) rather than as one buffered message. */
  streamsBody(direction: "request" | "response"): boolean {
    const mode = direction === "request" ? this.#mode.requestBodyMode : this.#mode.responseBodyMode;
    return mode === BodyMode.STREAMED;
  }

  onRequestHeaders(headers: HeaderList, endOfStream: boolean): Promise<PhaseResult> {
    return this.#headers("requestHeaders", headers, endOfStream);
  }

  onResponseHeaders(headers: HeaderList, endOfStream: boolean): Promise<PhaseResult> {
    return this.#headers("responseHeaders", headers, endOfStream);
  }

  onRequestBody(body: Uint8Array, endOfStream: boolean, headers: HeaderList): Promise<PhaseResult> {
    return this.#body("requestBody", body, endOfStream, headers);
  }

  onResponseBody(body: Uint8Array, endOfStream: boolean, headers: HeaderList): Promise<PhaseResult> {
    return this.#body("responseBody", body, endOfStream, headers);
  }

  /** Half-closes the gRPC stream, as Envoy does when the HTTP stream is over. */
  close(): void {
    this.#bypassed = true;
    const call = this.#call;
    if (call && !call.writableEnded) call.end();
  }

  /** Cancels the gRPC stream (downstream reset, or a local reply cut the request short). */
  cancel(): void {
    this.#bypassed = true;
    this.#call?.cancel();
  }

  async #headers(phase: "requestHeaders" | "responseHeaders", headers: HeaderList, eos: boolean): Promise<PhaseResult> {
    const mode = phase === "requestHeaders" ? this.#mode.requestHeaderMode : this.#mode.responseHeaderMode;
    if (this.#bypassed || !sendsHeaders(mode)) return CONTINUE;
    const req = headersRequest(phase, headers.entries(), eos);
    if (phase === "requestHeaders" && this.#deps.attributes) {
      req.attributes = { "envoy.filters.http.ext_proc": { ...this.#deps.attributes } };
    }
    const ex = await this.#exchange(req, phase);
    if (ex.kind !== "response") return this.#outcome(ex);
    const r = ex.response;
    if (r.response?.$case === "immediateResponse") return this.#immediate(r);
    // Envoy applies mode_override only in answer to a headers message, and only when allowed.
    if (r.modeOverride && this.#config.allowModeOverride) this.#mode = overrideMode(this.#mode, r.modeOverride, phase);
    const common = (r.response?.value as { response?: CommonFields } | undefined)?.response;
    return this.#applyCommon(phase, common, headers);
  }

  async #body(
    phase: "requestBody" | "responseBody",
    body: Uint8Array,
    eos: boolean,
    headers: HeaderList,
  ): Promise<PhaseResult> {
    if (!this.sendsBody(phase === "requestBody" ? "request" : "response")) return CONTINUE;
    const ex = await this.#exchange(bodyRequest(phase, body, eos), phase);
    if (ex.kind !== "response") return this.#outcome(ex);
    const r = ex.response;
    if (r.response?.$case === "immediateResponse") return this.#immediate(r);
    const common = (r.response?.value as { response?: CommonFields } | undefined)?.response;
    return this.#applyCommon(phase, common, headers);
  }

  /** `body` in the result is set only when the processor replaced or cleared it. */
  #applyCommon(phase: Phase, common: CommonFields | undefined, headers: HeaderList): PhaseResult {
    if (!common) return CONTINUE;
    const mutationError = this.#applyHeaderMutation(common.headerMutation, headers);
    if (mutationError) return this.#fail(mutationError, false);
    let newBody: Uint8Array | undefined;
    const m = common.bodyMutation?.mutation;
    if (m?.$case === "body") newBody = m.value;
    else if (m?.$case === "clearBody" && m.value) newBody = new Uint8Array(0);
    if (common.status === CommonResponse_ResponseStatus.CONTINUE_AND_REPLACE) {
      if (phase !== "requestHeaders" && phase !== "responseHeaders") {
        return this.#fail(`CONTINUE_AND_REPLACE is only valid in answer to headers, got it for ${phase}`, false);
      }
      // The body is replaced and no body of this direction goes to the processor any more.
      if (phase === "requestHeaders") this.#replacedRequestBody = true;
      else this.#replacedResponseBody = true;
      newBody ??= new Uint8Array(0);
    }
    // clear_route_cache matters only while the route is still to be chosen (request phases).
    const clearRouteCache = common.clearRouteCache && (phase === "requestHeaders" || phase === "requestBody");
    return newBody === undefined
      ? { kind: "continue", clearRouteCache }
      : { kind: "continue", clearRouteCache, body: newBody };
  }

  /** Applies a header mutation under the rules; returns an error message when a disallowed change must fail. */
  #applyHeaderMutation(mutation: HeaderMutation | undefined, headers: HeaderList): string | undefined {
    if (!mutation) return undefined;
    const rules = this.#config.mutationRules;
    for (const option of mutation.setHeaders) {
      const h = option.header;
      if (!h) continue;
      const name = h.key.toLowerCase();
      const value = h.rawValue.length > 0 ? utf8.decode(h.rawValue) : h.value;
      if (!validHeader(name, value)) return `Invalid header in mutation: ${JSON.stringify(name)}`;
      const verdict = checkHeaderChange(name, rules);
      if (verdict === "error") return `Header mutation of ${name} is not allowed`;
      if (verdict === "ignore") {
        this.stats.rejectedHeaderMutations++;
        continue;
      }
      const action = option.append === undefined
        ? option.appendAction
        : option.append
        ? AppendAction.APPEND_IF_EXISTS_OR_ADD
        : AppendAction.OVERWRITE_IF_EXISTS_OR_ADD;
      switch (action) {
        case AppendAction.ADD_IF_ABSENT:
          if (!headers.has(name)) headers.append(name, value);
          break;
        case AppendAction.OVERWRITE_IF_EXISTS:
          if (headers.has(name)) headers.set(name, value);
          break;
        case AppendAction.OVERWRITE_IF_EXISTS_OR_ADD:
          headers.set(name, value);
          break;
        default:
          headers.append(name, value);
      }
    }
    for (const name of mutation.removeHeaders) {
      const verdict = checkHeaderRemoval(name, rules);
      if (verdict === "error") return `Removing ${name} is not allowed`;
      if (verdict === "ignore") this.stats.rejectedHeaderMutations++;
      else headers.remove(name);
    }
    return undefined;
  }

  #immediate(r: ProcessingResponse): PhaseResult {
    const ir = r.response?.$case === "immediateResponse" ? r.response.value : undefined;
    const headers: [string, string][] = [];
    for (const option of ir?.headers?.setHeaders ?? []) {
      const h = option.header;
      if (!h) continue;
      const value = h.rawValue.length > 0 ? utf8.decode(h.rawValue) : h.value;
      if (validHeader(h.key, value) && checkHeaderChange(h.key, this.#config.mutationRules) === "allow") {
        headers.push([h.key.toLowerCase(), value]);
      }
    }
    const code = ir?.status?.code ?? 0;
    // Envoy treats an unset or out-of-range status as 200.
    const status = code >= 200 && code <= 599 ? code : 200;
    this.close();
    return {
      kind: "respond",
      reply: { status, headers, body: ir?.body ?? new Uint8Array(0), details: ir?.details ?? "" },
    };
  }

  #outcome(ex: Exchange): PhaseResult {
    if (ex.kind === "skip") return CONTINUE;
    if (ex.kind === "failed") return this.#fail(ex.reason, ex.timeout);
    return CONTINUE;
  }

  /** A processor failure: carry on without it (failure_mode_allow) or answer 500, or 504 for a timeout. */
  #fail(reason: string, timeout: boolean): PhaseResult {
    this.stats.failure = reason;
    this.cancel();
    if (this.#config.failureModeAllow) return CONTINUE;
    const status = timeout ? 504 : 500;
    const details = timeout ? "ext_proc_error_message_timeout" : "ext_proc_error_gRPC_error";
    return {
      kind: "respond",
      reply: { status, headers: [["content-type", "text/plain"]], body: new Uint8Array(0), details },
    };
  }

  #exchange(req: ProcessingRequest, phase: Phase): Promise<Exchange> {
    if (this.#bypassed) return Promise.resolve({ kind: "skip" });
    if (this.#pendingFailure) return Promise.resolve({ kind: "failed", reason: this.#pendingFailure, timeout: false });
    const call = this.#call ?? this.#open();
    return new Promise<Exchange>((resolve) => {
      const timer = this.#deps.clock.setTimeout(
        () =>
          settle({
            kind: "failed",
            reason: `No response to ${phase} within ${this.#config.messageTimeoutMs} ms`,
            timeout: true,
          }),
        this.#config.messageTimeoutMs,
      );
      const settle = (e: Exchange) => {
        if (this.#waiter !== waiter) return;
        this.#waiter = undefined;
        this.#deps.clock.clearTimeout(timer);
        if (e.kind === "response" && !matches(phase, e.response)) {
          resolve({
            kind: "failed",
            reason: `Out-of-order response ${e.response.response?.$case} to ${phase}`,
            timeout: false,
          });
          return;
        }
        if (e.kind === "response") {
          mergeDynamicMetadata(this.#deps.metadata, e.response.dynamicMetadata, this.#config.receivingNamespaces);
        }
        resolve(e);
      };
      const waiter = settle;
      this.#waiter = waiter;
      this.stats.messagesSent++;
      call.write(req);
    });
  }

  #open(): grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse> {
    const call = this.#channel.open(this.#config.initialMetadata);
    this.#call = call;
    call.on("data", (r: ProcessingResponse) => {
      if (this.#waiter) this.#waiter({ kind: "response", response: r });
      // A message nobody asked for: Envoy drops the stream and the next phase sees the failure.
      else if (!this.#bypassed) {
        this.#pendingFailure = "Spurious response from the external processor";
        this.stats.failure = this.#pendingFailure;
        call.cancel();
      }
    });
    call.on("status", (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) {
        // A clean close by the server means "continue without further processing".
        this.#bypassed = true;
        this.#waiter?.({ kind: "skip" });
        return;
      }
      if (this.#bypassed && !this.#waiter) return;
      const reason = `External processor stream failed: ${grpc.status[s.code] ?? s.code} ${s.details}`;
      if (this.#waiter) this.#waiter({ kind: "failed", reason, timeout: false });
      else this.#pendingFailure ??= reason;
    });
    call.on("error", () => {/* reported through "status" */});
    return call;
  }
}

interface CommonFields {
  status: CommonResponse_ResponseStatus;
  headerMutation?: HeaderMutation | undefined;
  bodyMutation?:
    | { mutation?: { $case: "body"; value: Uint8Array } | { $case: "clearBody"; value: boolean } }
    | undefined;
  clearRouteCache: boolean;
}

function matches(phase: Phase, r: ProcessingResponse): boolean {
  const c = r.response?.$case;
  return c === phase || c === "immediateResponse";
}

/** A mode_override received while handling request headers may change every later phase; one received on the
 * response headers can only change the response body and trailers. */
function overrideMode(
  current: ProcessingMode,
  o: ProcessingMode,
  phase: "requestHeaders" | "responseHeaders",
): ProcessingMode {
  const header = (v: HeaderMode, fallback: HeaderMode) => (v === HeaderMode.DEFAULT ? fallback : v);
  if (phase === "requestHeaders") {
    return {
      requestHeaderMode: current.requestHeaderMode,
      responseHeaderMode: header(o.responseHeaderMode, current.responseHeaderMode),
      requestBodyMode: o.requestBodyMode,
      responseBodyMode: o.responseBodyMode,
      requestTrailerMode: header(o.requestTrailerMode, current.requestTrailerMode),
      responseTrailerMode: header(o.responseTrailerMode, current.responseTrailerMode),
    };
  }
  return {
    ...current,
    responseBodyMode: o.responseBodyMode,
    responseTrailerMode: header(o.responseTrailerMode, current.responseTrailerMode),
  };
}

const HEADER_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;
function validHeader(name: string, value: string): boolean {
  // deno-lint-ignore no-control-regex
  return HEADER_NAME.test(name.toLowerCase()) && !/[\x00\r\n]/.test(value);
}
