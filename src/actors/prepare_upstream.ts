// What an attempt sends upstream: the original client request translated afresh for the backend Envoy picked
// (so a retry on another provider starts from the client's own bytes), the backend's and backendRef's mutations,
// and its credential — an API key header, a SigV4 signature over the final bytes, or a rotated bearer token.
import type { BackendInfo, BackendRefInfo, BodyMutationSpec, GatewaySnapshot } from "../control/snapshot.ts";
import { continueResponse, headerMutation, immediateResponse, type ProcessingResponse } from "../protocol/ext_proc.ts";
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";
import { clientErrorReply } from "../protocol/openai/errors.ts";
import { translatorFor } from "../protocol/translators/registry.ts";
import { isClientError, type UpstreamRequest } from "../protocol/translators/translator.ts";
import { signAwsRequest } from "../protocol/auth/aws_sigv4.ts";
import { AI_GATEWAY_NAMESPACE, translateRequestFor } from "./response_translation.ts";
import { REQUEST_ID_HEADER } from "./router_stream.ts";

export interface AttemptTarget {
  readonly route: RoutedRequest;
  readonly snapshot: GatewaySnapshot;
  readonly backendName: string | undefined;
  readonly refId: string | undefined;
  /** The attempt's :path as Envoy sent it. */
  readonly path: string;
  /** W3C trace context of this attempt's span (traceparent, tracestate), when tracing is on. */
  readonly traceHeaders?: Readonly<Record<string, string>>;
}

export interface UpstreamCredentials {
  /** "Bearer <token>" from a rotated token file. */
  bearerFromFile(path: string, signal: AbortSignal): Promise<string>;
  now(): Date;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export async function prepareUpstream(
  t: AttemptTarget,
  credentials: UpstreamCredentials,
  signal: AbortSignal,
): Promise<ProcessingResponse> {
  const backend = t.backendName === undefined ? undefined : t.snapshot.backends.get(t.backendName);
  if (!backend) {
    // A plain endpoint (no backend identity): the request goes as the client sent it.
    return continueResponse("requestHeaders", {
      headerMutation: headerMutation({ ...t.traceHeaders }, [REQUEST_ID_HEADER]),
    });
  }
  const ref = t.refId === undefined ? undefined : t.snapshot.backendRefs.get(t.refId);
  const translator = translatorFor(t.route.api, t.route.endpoint, backend.schema.name);
  const request = translateRequestFor(t.route, t.snapshot, backend.name, t.refId)!;
  if (!translator) {
    return reject(t, 422, `The backend ${backend.name} (${backend.schema.name}) cannot serve ${t.route.endpoint}`);
  }
  const translated = translator.request(request);
  if (isClientError(translated)) return reject(t, translated.status, translated.message, translated.param);
  const body = mutateBody(translated.body, [backend.bodyMutation, ref?.bodyMutation]);
  const set: Record<string, string> = { ...t.traceHeaders, ...translated.headers, ":path": translated.path };
  const remove = [REQUEST_ID_HEADER];
  for (const m of [backend.headerMutation, ref?.headerMutation]) {
    for (const h of m?.set ?? []) set[h.name.toLowerCase()] = h.value;
    for (const h of m?.remove ?? []) remove.push(h.toLowerCase());
  }
  Object.assign(set, await credentialHeaders(backend, { ...translated, body }, credentials, signal));
  // The client's Authorization (and x-api-key) were for the gateway: a provider only ever sees the backend's own
  // credential, or none.
  for (const h of ["authorization", "x-api-key", "api-key"]) if (!(h in set)) remove.push(h);
  const replaced = body !== t.route.rawBody;
  const response = continueResponse("requestHeaders", {
    headerMutation: headerMutation(set, remove),
    ...(replaced ? { replace: true, body } : {}),
  });
  // Envoy drops content-length when the body is replaced; the upstream header_mutation filter puts it back from here.
  if (replaced) response.dynamicMetadata = { [AI_GATEWAY_NAMESPACE]: { content_length: body.length } };
  return response;
}

function reject(t: AttemptTarget, status: number, message: string, param?: string): ProcessingResponse {
  return immediateResponse(clientErrorReply(t.route.api, {
    status,
    type: "invalid_request_error",
    message,
    ...(param ? { param } : {}),
    details: status === 422 ? "tollgate_unprocessable_for_backend" : "tollgate_malformed_body",
  }));
}

/** Top-level body fields set/removed by the backend, then by the backendRef (which wins). */
export function mutateBody(body: Uint8Array, mutations: readonly (BodyMutationSpec | undefined)[]): Uint8Array {
  if (mutations.every((m) => !m || (m.set.length === 0 && m.remove.length === 0))) return body;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(decoder.decode(body));
  } catch {
    return body;
  }
  for (const m of mutations) {
    for (const f of m?.remove ?? []) delete json[f];
    for (const f of m?.set ?? []) json[f.path] = jsonValue(f.value);
  }
  return encoder.encode(JSON.stringify(json));
}

function jsonValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function credentialHeaders(
  backend: BackendInfo,
  upstream: UpstreamRequest,
  credentials: UpstreamCredentials,
  signal: AbortSignal,
): Promise<Record<string, string>> {
  const auth = backend.auth;
  if (!auth) return {};
  switch (auth.kind) {
    case "header":
      return { [auth.header]: auth.value };
    case "bearerFile":
      return { authorization: await credentials.bearerFromFile(auth.path, signal) };
    case "aws": {
      if (!backend.host) throw new Error(`The backend ${backend.name} has no host to sign for`);
      const signed = await signAwsRequest({
        method: "POST",
        host: backend.host,
        path: upstream.path,
        headers: { "content-type": upstream.headers["content-type"] ?? "application/json" },
        body: upstream.body,
        region: auth.region,
        service: "bedrock",
        credentials: auth.credentials,
        now: credentials.now(),
      });
      return signed;
    }
  }
}

export type { BackendRefInfo };
