// The end of a response, as accounting sees it: the costs of the route (written to dynamic metadata under each
// llmRequestCosts metadataKey, only for a 2xx), and one usage event with the rate-limit descriptors the request
// counts against. Pure: the router stream calls it and emits the results.
import type { GatewaySnapshot } from "../control/snapshot.ts";
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";
import type { TokenUsage } from "../protocol/usage.ts";
import { buildDescriptors } from "../edge/rate_limit_descriptors.ts";
import { evaluateCosts } from "../usage/costs.ts";
import { type UsageEvent, usageEventId, usageEventTime } from "../usage/usage_event.ts";
import { AI_GATEWAY_NAMESPACE, usageMetadata } from "./response_translation.ts";
import type { RateLimitEntry } from "../edge/config.ts";
import type { Reservation } from "../usage/reservation_plan.ts";

export interface ResponseFacts {
  readonly route: RoutedRequest;
  readonly snapshot: GatewaySnapshot;
  readonly backend: string | undefined;
  readonly backendRef: string | undefined;
  /** Envoy's route name for the final attempt (xds.route_name). */
  readonly edgeRoute: string | undefined;
  readonly usage: TokenUsage;
  readonly responseModel: string | undefined;
  readonly status: number;
  /** The request headers as they reached the router (with the routing headers it set). */
  readonly requestHeaders: ReadonlyMap<string, string>;
  /** Wall-clock epoch milliseconds. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly firstByteAt: number | undefined;
  /** What the router asked the rate limit service to reserve before the request (admission by reservation). */
  readonly reservation?: Reservation | undefined;
}

export interface Accounting {
  /** Dynamic metadata for the last response message. */
  readonly metadata: Record<string, Record<string, unknown>>;
  readonly event: UsageEvent;
  readonly costErrors: readonly string[];
}

export function accountResponse(f: ResponseFacts): Accounting {
  const ref = f.backendRef === undefined ? undefined : f.snapshot.backendRefs.get(f.backendRef);
  const aiRoute = ref?.route ?? "";
  const ok = f.status >= 200 && f.status < 300;
  const programs = f.snapshot.routeCosts.get(aiRoute) ?? [];
  // Costs are written only at the end of a 2xx response: an error is not billed.
  const evaluated = ok && programs.length > 0
    ? evaluateCosts(programs, {
      model: f.route.model,
      backend: backendForCel(f.backend),
      routeName: aiRoute,
      usage: f.usage,
    })
    : { values: {}, errors: [] };
  const metadata = usageMetadata(f.usage, { model: f.route.model, responseModel: f.responseModel, backend: f.backend });
  Object.assign(metadata[AI_GATEWAY_NAMESPACE]!, evaluated.values);
  const limits = f.edgeRoute === undefined ? undefined : f.snapshot.rateLimits.get(f.edgeRoute);
  const ctx = { headers: f.requestHeaders, metadata: new Map(Object.entries(metadata)) };
  const descriptors = ok && limits
    ? limits.entries.flatMap((entry) =>
      buildDescriptors([entry], ctx, true).map((d) => ({
        domain: limits.domain,
        entries: d.entries.map((e) => ({ key: e.key, value: e.value })),
        ...(d.hitsAddend !== undefined ? { hitsAddend: d.hitsAddend } : {}),
        ...reservedFor(entry, f.reservation),
      }))
    )
    : [];
  const override = ref?.modelNameOverride;
  const event: UsageEvent = {
    v: 1,
    id: usageEventId(f.endedAt),
    time: usageEventTime(f.endedAt),
    route: aiRoute,
    ...(f.backend !== undefined ? { backend: f.backend } : {}),
    models: {
      requested: f.route.model,
      ...(override && override !== f.route.model ? { overridden: override } : {}),
      ...(f.responseModel !== undefined ? { responded: f.responseModel } : {}),
    },
    tokens: f.usage,
    costs: evaluated.values,
    descriptors,
    status: f.status,
    latencyMs: Math.max(0, f.endedAt - f.startedAt),
    ...(f.route.stream && f.firstByteAt !== undefined ? { ttftMs: Math.max(0, f.firstByteAt - f.startedAt) } : {}),
    stream: f.route.stream,
    ...(f.reservation ? { reservation: f.reservation.id } : {}),
  };
  return { metadata, event, costErrors: evaluated.errors.map((e) => e.message) };
}

/** The amount reserved for the cost a stream-done entry charges, if the request reserved one. */
function reservedFor(entry: RateLimitEntry, r: Reservation | undefined): { reserved?: number } {
  const addend = entry.hitsAddend;
  if (!r || !addend || !("metadata" in addend)) return {};
  const amount = r.amounts[addend.metadata.key];
  return amount === undefined ? {} : { reserved: amount };
}

/** Envoy AI Gateway hands CEL the backend as "name.namespace"; expressions written for it compare that form. */
function backendForCel(backend: string | undefined): string {
  if (!backend) return "";
  const [ns, name] = backend.split("/");
  return name === undefined ? backend : `${name}.${ns}`;
}
