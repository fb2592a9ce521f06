// What one finished request looks like to metrics and traces, read from its router stream once the stream has
// closed: the operation, the provider of the backend that answered last, the models, the tokens, and the error
// class. A routed request that completed carries its usage event (src/usage/usage_event.ts), which is read as is;
// a request that failed before (rejected by the gateway, cut short by Envoy) has no event and is described from the
// stream's own state, so failures are counted too.
import type { RouterContext } from "../actors/router_stream.ts";
import type { BackendSchemaName } from "../protocol/translators/translator.ts";
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";
import { pathOnly } from "../protocol/openai/endpoints.ts";
import type { TokenUsage } from "../protocol/usage.ts";

/** gen_ai.operation.name, by the client's path. Other paths (/v1/models, unknown ones) are not GenAI operations. */
const OPERATIONS: ReadonlyMap<string, string> = new Map([
  ["/v1/chat/completions", "chat"],
  ["/v1/completions", "text_completion"],
  ["/v1/embeddings", "embeddings"],
  ["/anthropic/v1/messages", "chat"],
]);

/**
 * gen_ai.provider.name by backend schema, with the semantic conventions' well-known values. An OpenAI-compatible
 * server (vLLM, Ollama, Groq…) speaks OpenAI's API and is reported as "openai"; Anthropic models reached through AWS
 * or Google are reported by the platform that serves them, as the conventions ask.
 */
const PROVIDERS: Readonly<Record<BackendSchemaName, string>> = {
  OpenAI: "openai",
  AzureOpenAI: "azure.ai.openai",
  AWSBedrock: "aws.bedrock",
  AWSAnthropic: "aws.bedrock",
  Anthropic: "anthropic",
  GCPVertexAI: "gcp.vertex_ai",
  GCPAnthropic: "gcp.vertex_ai",
  Cohere: "cohere",
};

export function providerOf(schema: BackendSchemaName): string {
  return PROVIDERS[schema];
}

export function operationOfPath(path: string): string | undefined {
  const p = pathOnly(path);
  return OPERATIONS.get(p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p);
}

export interface RequestFacts {
  readonly operation: string;
  /** gen_ai.provider.name of the backend that answered the last attempt; undefined when no attempt reached one. */
  readonly provider: string | undefined;
  /** "namespace/name" of the AIGatewayRoute and of the AIServiceBackend. */
  readonly route: string | undefined;
  readonly backend: string | undefined;
  /** The model the client asked for. */
  readonly originalModel: string | undefined;
  /** The model sent upstream: a backendRef's modelNameOverride, or the client's. */
  readonly requestModel: string | undefined;
  readonly responseModel: string | undefined;
  /** As the provider reported them (unset counts stay unset). */
  readonly usage: TokenUsage;
  readonly stream: boolean;
  /** HTTP status the client got, when the sidecar knows it. */
  readonly status: number | undefined;
  /** error.type: the status as text for an HTTP error, "aborted" or "protocol" (see docs/observability.md). */
  readonly errorType: string | undefined;
  /** Wall-clock epoch milliseconds. */
  readonly startedAt: number;
  readonly endedAt: number;
  /** From the request headers to the first response byte, streamed responses only. */
  readonly ttftMs: number | undefined;
  readonly attempts: number;
  readonly tenant: string | undefined;
}

/**
 * The status the client got (when the sidecar knows it) and the error class of a closed router stream. `completed`:
 * the stream reached a final state; one stopped before (Envoy cancelled the gRPC stream) counts as aborted.
 */
export function outcomeOf(
  ctx: RouterContext,
  completed: boolean,
): { status: number | undefined; errorType: string | undefined } {
  const event = ctx.accounting?.event;
  const failure = ctx.failure;
  if (event) return { status: event.status, errorType: event.status >= 400 ? String(event.status) : undefined };
  if (failure?.kind === "rejected") return { status: failure.status, errorType: String(failure.status) };
  // Envoy ended the stream before a response completed: the client went away, or Envoy answered by itself after
  // routing (a rate-limit refusal, an unreachable upstream) without passing the answer through this filter.
  if (failure) return { status: undefined, errorType: failure.kind };
  if (!completed) return { status: undefined, errorType: "aborted" };
  const status = ctx.responseStatus;
  return { status, errorType: status !== undefined && status >= 400 ? String(status) : undefined };
}

function routedRequest(ctx: RouterContext): RoutedRequest | undefined {
  const r = ctx.route;
  return r !== undefined && "rawBody" in r ? r : undefined;
}

/** The facts of a closed router stream; undefined for what is not a GenAI operation or never started. */
export function requestFacts(
  ctx: RouterContext,
  completed: boolean,
  tenantHeader?: string,
): RequestFacts | undefined {
  const operation = operationOfPath(ctx.path);
  if (operation === undefined || ctx.startedAt === 0) return undefined;
  const route = routedRequest(ctx);
  const event = ctx.accounting?.event;
  const backend = ctx.backend === undefined ? undefined : ctx.snapshot.backends.get(ctx.backend);
  const ref = ctx.backendRef === undefined ? undefined : ctx.snapshot.backendRefs.get(ctx.backendRef);
  const { status, errorType } = outcomeOf(ctx, completed);
  const requestModel = ref?.modelNameOverride ?? route?.model;
  return {
    operation,
    provider: backend ? providerOf(backend.schema.name) : undefined,
    route: event?.route || ref?.route || undefined,
    backend: ctx.backend,
    originalModel: route?.model,
    requestModel,
    responseModel: event?.models.responded ?? ctx.translator?.responseModel,
    usage: event?.tokens ?? {},
    stream: route?.stream ?? false,
    status,
    errorType,
    startedAt: ctx.startedAt,
    endedAt: event ? ctx.startedAt + event.latencyMs : ctx.now(),
    ttftMs: event?.ttftMs,
    attempts: ctx.attempts,
    tenant: tenantHeader === undefined ? undefined : ctx.requestHeaders.get(tenantHeader),
  };
}
