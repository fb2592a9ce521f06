// The sidecar's half of a reservation: what each reserved cost would be if the request used its whole estimate, and
// the dynamic metadata that carries it to Envoy's ratelimit filter.
//
// At request-body time the sidecar does not yet know which AIGatewayRoute (nor which backend) Envoy will pick, and a
// metadataKey may be priced differently by different routes. The reservation of a cost is therefore the largest price
// any route defining it gives the estimate: a CEL cost that reads route_name or backend is priced for every
// (route, backend) pair of the configuration, any other cost once. The model is known (the request names it).
import type { CompiledReservation } from "../control/resources/rate_limit_options.ts";
import type { RoutedRequest } from "../protocol/openai/endpoints.ts";
import type { TokenUsage } from "../protocol/usage.ts";
import { type CostProgram, evaluateCosts } from "./costs.ts";
import { RESERVATION_METADATA_KEY, reserveMetadataKey } from "./reservation.ts";
import { type EstimateOptions, estimateTokens, type TokenEstimate } from "./reservation_estimate.ts";

/** Envoy's limit on a hits addend: an estimate beyond it is written as the limit (Envoy would drop the descriptor,
 * and with it the check, if it were larger). */
const MAX_HITS_ADDEND = 1_000_000_000;

interface PricedCost {
  readonly program: CostProgram;
  readonly routeName: string;
  readonly backend: string;
}

export interface ReservationPlan {
  readonly estimate: EstimateOptions;
  /** metadataKey → the ways to price it; the reservation is the largest. */
  readonly costs: ReadonlyMap<string, readonly PricedCost[]>;
}

export interface Reservation {
  readonly id: string;
  readonly tokens: TokenEstimate;
  /** metadataKey → the amount asked for; a cost no route could price is absent (nothing is reserved for it). */
  readonly amounts: Readonly<Record<string, number>>;
}

/**
 * @param programs every route's compiled costs
 * @param backendRefs which backends each route sends to ("namespace/name" both), for costs that read `backend`
 */
export function buildReservationPlan(
  settings: CompiledReservation,
  programs: readonly CostProgram[],
  backendRefs: readonly { readonly route?: string | undefined; readonly backend: string }[],
): ReservationPlan {
  const wanted = new Set(settings.metadataKeys);
  const backendsOf = new Map<string, Set<string>>();
  for (const ref of backendRefs) {
    if (ref.route === undefined) continue;
    const set = backendsOf.get(ref.route) ?? new Set();
    set.add(backendForCel(ref.backend));
    backendsOf.set(ref.route, set);
  }
  const costs = new Map<string, PricedCost[]>();
  const seen = new Set<string>();
  const add = (p: CostProgram, routeName: string, backend: string, identity: string) => {
    if (seen.has(identity)) return;
    seen.add(identity);
    const list = costs.get(p.metadataKey) ?? [];
    list.push({ program: p, routeName, backend });
    costs.set(p.metadataKey, list);
  };
  for (const p of programs) {
    if (!wanted.has(p.metadataKey)) continue;
    if (p.type !== "CEL") add(p, p.route, "", JSON.stringify([p.metadataKey, p.type]));
    else if (!/\b(?:route_name|backend)\b/.test(p.cel)) add(p, p.route, "", JSON.stringify([p.metadataKey, p.cel]));
    else {
      for (const backend of backendsOf.get(p.route) ?? [""]) {
        add(p, p.route, backend, JSON.stringify([p.metadataKey, p.cel, p.route, backend]));
      }
    }
  }
  const estimate: EstimateOptions = {
    defaultOutputTokens: settings.defaultOutputTokens,
    ...(settings.maxOutputTokens === undefined ? {} : { maxOutputTokens: settings.maxOutputTokens }),
  };
  return { estimate, costs };
}

/** The backend as CEL sees it, "name.namespace" (as usage_accounting.ts gives it at the end of a response). */
function backendForCel(backend: string): string {
  const [ns, name] = backend.split("/");
  return name === undefined ? backend : `${name}.${ns}`;
}

/** Prices the request's estimate under every reserved cost. Pure but for the id the caller provides. */
export function reserve(plan: ReservationPlan, request: RoutedRequest, id: string): Reservation {
  const tokens = estimateTokens(request, plan.estimate);
  const usage: TokenUsage = {
    inputTokens: tokens.inputTokens,
    outputTokens: tokens.outputTokens,
    totalTokens: tokens.inputTokens + tokens.outputTokens,
    // Unknown before the answer; 0 makes a price that discounts cache reads or adds cache writes price the estimate
    // as uncached input, which is the dearer case for every provider's price list.
    cachedInputTokens: 0,
    cacheCreationInputTokens: 0,
    reasoningTokens: 0,
  };
  const amounts: Record<string, number> = {};
  for (const [key, priced] of plan.costs) {
    let most: number | undefined;
    for (const { program, routeName, backend } of priced) {
      const value = evaluateCosts([program], { model: request.model, backend, routeName, usage }).values[key];
      if (value !== undefined && (most === undefined || value > most)) most = value;
    }
    if (most !== undefined) amounts[key] = Math.min(most, MAX_HITS_ADDEND);
  }
  return { id, tokens, amounts };
}

/** The io.envoy.ai_gateway entries that carry a reservation to the ratelimit filter. */
export function reservationMetadata(r: Reservation): Record<string, string | number> {
  const out: Record<string, string | number> = { [RESERVATION_METADATA_KEY]: r.id };
  for (const [key, amount] of Object.entries(r.amounts)) out[reserveMetadataKey(key)] = amount;
  return out;
}
