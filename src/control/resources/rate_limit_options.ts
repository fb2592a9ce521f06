// RateLimitOptions of tollgate.dev/v1alpha1: the rate-limit options Envoy AI Gateway's resources have no place for.
// One per configuration; it applies to every BackendTrafficPolicy rule of it (docs/rate-limiting.md).
//
//   apiVersion: tollgate.dev/v1alpha1
//   kind: RateLimitOptions
//   metadata: { name: default }
//   spec:
//     calendar: { timeZone: Europe/Paris, weekStartsOn: Monday }   # day/week/month/year windows follow this calendar
//     reservation:                                                   # admission by reservation (token rules)
//       enabled: true
//       defaultOutputTokens: 1024      # output estimate when the request sets no max_tokens
//       maxOutputTokens: 8192          # optional cap on the output estimate
//       metadataKeys: [llm_total_token] # optional: only the rules charging these costs reserve (default: all)
import { z } from "zod";
import type { RateLimitEntry, RouteConfig } from "../../edge/config.ts";
import { type CalendarWindows, checkTimeZone } from "../../usage/windows.ts";
import {
  AI_GATEWAY_NAMESPACE,
  RESERVATION_DESCRIPTOR_KEY,
  RESERVATION_METADATA_KEY,
  reserveMetadataKey,
} from "../../usage/reservation.ts";
import { errorAt, type ResourceError, type ResourceOrigin } from "./errors.ts";

const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"] as const;

/** The most a reservation estimate may be: Envoy's limit on a hits addend. */
const MAX_HITS_ADDEND = 1_000_000_000;

const calendar = z.strictObject({
  timeZone: z.string().min(1).superRefine((zone, ctx) => {
    const problem = checkTimeZone(zone);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
  /** 0 (Sunday) to 6, or the day's English name; default Monday (ISO 8601). */
  weekStartsOn: z.union([z.number().int().min(0).max(6), z.enum(WEEKDAYS)]).optional(),
});

const tokens = z.number().int().min(0).max(MAX_HITS_ADDEND);

const reservation = z.strictObject({
  /** Default true: writing the block turns reservation on; `enabled: false` keeps the block but turns it off. */
  enabled: z.boolean().optional(),
  defaultOutputTokens: tokens.optional(),
  maxOutputTokens: tokens.optional(),
  metadataKeys: z.array(z.string().min(1)).min(1).optional(),
});

export const rateLimitOptionsSpec = z.strictObject({
  calendar: calendar.optional(),
  reservation: reservation.optional(),
});

export type RateLimitOptionsSpec = z.output<typeof rateLimitOptionsSpec>;

/** The output estimate of a request that sets no max_tokens (or equivalent). */
export const DEFAULT_OUTPUT_TOKENS = 1024;

/** What the compiler makes of the RateLimitOptions: plain data, so it travels with the compiled config. */
export interface CompiledRateLimitOptions {
  readonly calendar?: CalendarWindows;
  /** Present when reservation is enabled. */
  readonly reservation?: CompiledReservation;
}

export interface CompiledReservation {
  readonly defaultOutputTokens: number;
  readonly maxOutputTokens?: number;
  /**
   * The costs (llmRequestCosts metadataKeys) whose rules reserve; the compiler narrows the user's list (or all costs)
   * to those a response-cost rule actually charges, so the sidecar prices nothing nobody reads.
   */
  readonly metadataKeys: readonly string[];
}

/** Minimal view of the resource: the kind lives in resource.ts's union. */
interface RateLimitOptionsResource {
  readonly spec: RateLimitOptionsSpec;
  readonly origin: ResourceOrigin;
}

/**
 * The options of a configuration (at most one RateLimitOptions, whatever its name or namespace), and its routes with
 * the reservation entries added when reservation is on: for each stream-done entry charging a reserved cost, a
 * request-time entry with the same descriptor whose hits_addend is the sidecar's estimate of that cost, and one
 * marker entry per route carrying the reservation id (src/usage/reservation.ts).
 */
export function compileRateLimitOptions(
  resources: readonly RateLimitOptionsResource[],
  routes: readonly RouteConfig[],
  errors: ResourceError[],
): { readonly routes: readonly RouteConfig[]; readonly options?: CompiledRateLimitOptions } {
  const [first, ...others] = resources;
  for (const other of others) {
    const where = `${first!.origin.file}#${first!.origin.document}`;
    errors.push(errorAt(other.origin, "metadata.name", `Only one RateLimitOptions may be defined; one is in ${where}`));
  }
  if (!first) return { routes };
  const { calendar: c, reservation: r } = first.spec;
  const weekStartsOn = typeof c?.weekStartsOn === "string" ? WEEKDAYS.indexOf(c.weekStartsOn) : c?.weekStartsOn;
  const calendarWindows: CalendarWindows | undefined = c
    ? { timeZone: c.timeZone, ...(weekStartsOn === undefined ? {} : { weekStartsOn }) }
    : undefined;
  const calendarPart = calendarWindows ? { calendar: calendarWindows } : {};
  if (r === undefined || r.enabled === false) return { routes, options: calendarPart };

  const charged = new Set(routes.flatMap((route) => route.rateLimits.flatMap(chargedCost)));
  r.metadataKeys?.forEach((key, i) => {
    if (!charged.has(key)) {
      const message = `No rate-limit rule charges the cost "${key}" (cost.response from io.envoy.ai_gateway)`;
      errors.push(errorAt(first.origin, ["spec", "reservation", "metadataKeys", i], message));
    }
  });
  const keys = r.metadataKeys ? [...charged].filter((k) => r.metadataKeys!.includes(k)) : [...charged];
  const reservation: CompiledReservation = {
    defaultOutputTokens: r.defaultOutputTokens ?? DEFAULT_OUTPUT_TOKENS,
    ...(r.maxOutputTokens === undefined ? {} : { maxOutputTokens: r.maxOutputTokens }),
    metadataKeys: keys.sort(),
  };
  return {
    routes: routes.map((route) => withReservation(route, new Set(keys))),
    options: { ...calendarPart, reservation },
  };
}

/** The cost a stream-done entry charges from io.envoy.ai_gateway, if any. */
function chargedCost(e: RateLimitEntry): string[] {
  const addend = e.hitsAddend;
  if (!e.applyOnStreamDone || !addend || !("metadata" in addend)) return [];
  return addend.metadata.namespace === AI_GATEWAY_NAMESPACE ? [addend.metadata.key] : [];
}

function withReservation(route: RouteConfig, keys: ReadonlySet<string>): RouteConfig {
  const reserving: RateLimitEntry[] = [];
  for (const e of route.rateLimits) {
    const [cost] = chargedCost(e);
    if (cost === undefined || !keys.has(cost)) continue;
    reserving.push({
      actions: e.actions,
      applyOnStreamDone: false,
      hitsAddend: { metadata: { namespace: AI_GATEWAY_NAMESPACE, key: reserveMetadataKey(cost) } },
    });
  }
  if (reserving.length === 0) return route;
  const marker: RateLimitEntry = {
    actions: [{
      kind: "metadata",
      descriptorKey: RESERVATION_DESCRIPTOR_KEY,
      namespace: AI_GATEWAY_NAMESPACE,
      key: RESERVATION_METADATA_KEY,
    }],
    applyOnStreamDone: false,
  };
  // The plain request-time check entries stay: without the sidecar's estimate (an old sidecar, a request it did not
  // route) Envoy drops the reserving descriptor, and the check still happens.
  return { ...route, rateLimits: [...route.rateLimits, ...reserving, marker] };
}
