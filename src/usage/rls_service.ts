// envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit with envoyproxy/ratelimit's semantics, answered from
// the local counter store. `decideRateLimit` is the decision (no I/O, no clock: time comes in as nowMs, and the
// store changes only when mode.applyHits); `RlsServer` serves it over gRPC.
//
// Semantics and where they come from (envoyproxy/ratelimit src/service/ratelimit.go, src/limiter/base_limiter.go,
// src/utils/utilities.go, README):
// - an empty domain or descriptor list is an error (INVALID_ARGUMENT); an unknown domain limits nothing;
// - hits per descriptor: its own hits_addend when set (0 = check only, nothing added), else the request's hits_addend,
//   where 0 (unset) means 1 (GetHitsAddends);
// - a descriptor's `limit` override replaces the configured limit (never shadow mode), as GetLimit does;
// - replaces: the names listed in `replaces` of every limit matched by the request drop the limits of that name in
//   the same request; a dropped descriptor answers OK without current_limit and its counter is left alone;
// - unlimited: OK, no current_limit, limit_remaining 2^32-1; no match: OK, no current_limit, limit_remaining 0;
// - hits are added to every matched counter, also when this or another descriptor is over the limit (as the Redis
//   INCRBY there does; envoyproxy/ratelimit#1060), so a rejected request still counts;
// - OVER_LIMIT when current + hits > requests_per_unit; limit_remaining = limit - (current + hits), or 0 when over;
// - shadow_mode: the descriptor's status is OK (still with current_limit and limit_remaining 0 when over) and it never
//   makes the overall code OVER_LIMIT; the overall code is OVER_LIMIT when any other descriptor is;
// - duration_until_reset: whole seconds to the end of the window, rounded up (envoy: divider - now % divider).
//
// Tollgate's one deliberate difference: a check-only descriptor (hits 0) is OVER_LIMIT once current >= limit, where
// envoyproxy/ratelimit needs current > limit. Token limits are checked with hits 0 before the request and charged
// after it; with the `>` rule the request that spends the budget exactly, and every request after it until one more
// token is charged, would still be let through.
//
// Tollgate's addition, admission by reservation (src/usage/reservation.ts): a request carrying the marker descriptor
// [("tollgate_reservation", <id>)] reserves, on each usage-fed counter it sends a positive hits_addend for, that many
// hits: OVER_LIMIT when current + hits > limit; when the whole request is allowed the hits are held under the id
// (mode.reserve) instead of added; when it is refused nothing is held. The marker itself matches no rule.
import * as grpc from "@grpc/grpc-js";
import { rateLimitServiceDefinition } from "../edge/rate_limit_filter.ts";
import type { RlsDescriptor, RlsRequest } from "../edge/rate_limit_descriptors.ts";
import type { HeaderValue } from "../protocol/gen/envoy/config/core/v3/base.ts";
import {
  type RateLimitResponse,
  RateLimitResponse_Code,
  type RateLimitResponse_DescriptorStatus,
  RateLimitResponse_RateLimit_Unit as Unit,
} from "../protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import type { ResourceError } from "../control/resources/errors.ts";
import type { ListenAddress } from "../extproc/listen_address.ts";
import type { Logger } from "../observability/logger.ts";
import { CounterStore } from "./counter_store.ts";
import { descriptorCounterKey, type LimitSpec, type MatchedLimit, RateLimitRules } from "./rate_limit_rules.ts";
import type { RlsConfigResult } from "./rls_config.ts";
import { isReservationId, RESERVATION_DESCRIPTOR_KEY } from "./reservation.ts";
import { type RateLimitUnitName, type WindowId, type WindowKey, windowKey, windowOf } from "./windows.ts";
import { type DescriptorMemo, MatchCache, moveToWindow } from "./match_cache.ts";
import { type GrpcListener, listenGrpc } from "./grpc_listener.ts";

const { OK, OVER_LIMIT } = RateLimitResponse_Code;
const MAX_UINT32 = 4_294_967_295;

/** RateLimitResponse.RateLimit.Unit.WEEK: added to Envoy's API (envoyproxy/envoy#37494) after the version our
 * codegen vendors, so the generated enum lacks it. The wire value is 7. */
export const UNIT_WEEK = 7 as Unit;

const WIRE_UNITS: Readonly<Record<RateLimitUnitName, Unit>> = {
  second: Unit.SECOND,
  minute: Unit.MINUTE,
  hour: Unit.HOUR,
  day: Unit.DAY,
  week: UNIT_WEEK,
  month: Unit.MONTH,
  year: Unit.YEAR,
};

export class RlsRequestError extends Error {
  override readonly name = "RlsRequestError";
}

/** One hit added to the store: what the aggregator publishes so the other replicas add it too. */
export interface AppliedHit {
  readonly domain: string;
  readonly counterKey: string;
  readonly windowId: WindowId;
  readonly n: number;
  readonly eventTimeMs: number;
}

/** Hits held as a reservation under an id, until the request's usage event releases them. */
export interface AppliedReservation extends AppliedHit {
  readonly reservation: string;
}

/** envoyproxy/ratelimit's custom headers (LIMIT_RESPONSE_HEADERS_ENABLED and the three header-name settings). */
export interface RateLimitHeaderNames {
  readonly limit: string;
  readonly remaining: string;
  readonly reset: string;
}

export const DEFAULT_RATE_LIMIT_HEADERS: RateLimitHeaderNames = {
  limit: "RateLimit-Limit",
  remaining: "RateLimit-Remaining",
  reset: "RateLimit-Reset",
};

export interface RlsDecisionMode {
  /** Add the hits to the store (the replica answering Envoy) or leave it untouched (a dry run). */
  readonly applyHits: boolean;
  /** Called for every hit added, in descriptor order. */
  readonly onHit?: (hit: AppliedHit) => void;
  /** Adds the headers of the descriptor closest to its limit (the last over-limit one, if any). */
  readonly rateLimitHeaders?: RateLimitHeaderNames;
  /** Limits whose counters something else feeds: their descriptors are only checked, as with a hits_addend of 0. */
  readonly checkOnly?: (limit: MatchedLimit) => boolean;
  /** Holds a reservation (only with applyHits, only when the request is allowed). Without it, reservations are
   * checked like any other hits but nothing is held. */
  readonly reserve?: (r: AppliedReservation) => void;
  /** Matches remembered across calls; it must be of the same `rules` (a server keeps one per rule set). */
  readonly matches?: MatchCache;
}

type Matched = MatchedLimit | undefined;

export function decideRateLimit(
  request: RlsRequest,
  rules: RateLimitRules,
  store: CounterStore,
  nowMs: number,
  mode: RlsDecisionMode,
): RateLimitResponse {
  if (request.domain === "") throw new RlsRequestError("Rate limit domain must not be empty");
  if (request.descriptors.length === 0) throw new RlsRequestError("Rate limit descriptor list must not be empty");
  const reservation = reservationOf(request.descriptors);
  const memos: (DescriptorMemo | undefined)[] = [];
  const matches = request.descriptors.map((d) => {
    const memo = mode.matches && !d.limit && !isReservationMarker(d)
      ? mode.matches.get(request.domain, d.entries)
      : undefined;
    memos.push(memo);
    if (memo) return memo.match;
    return isReservationMarker(d) ? undefined : matchRequestDescriptor(request.domain, d, rules);
  });
  const held: AppliedReservation[] = [];
  let replaced: Set<string> | undefined;
  for (const m of matches) for (const name of m?.limit.replaces ?? []) (replaced ??= new Set()).add(name);
  // Hits of this request not written to the store (dry run): later descriptors on the same counter still see them.
  const pending = new Map<WindowKey, number>();
  let overallCode = OK;
  let closest: RateLimitResponse_DescriptorStatus | undefined;
  const statuses = request.descriptors.map((descriptor, i): RateLimitResponse_DescriptorStatus => {
    const m = matches[i];
    if (!m) return { code: OK, limitRemaining: 0 };
    if (m.limit.kind === "unlimited") return { code: OK, limitRemaining: MAX_UINT32 };
    if (replaced && m.limit.name !== "" && replaced.has(m.limit.name)) return { code: OK, limitRemaining: 0 };
    const { unit, requestsPerUnit: limit, name } = m.limit;
    const fed = mode.checkOnly?.(m) ?? false;
    const reserving = fed && reservation !== undefined && (descriptor.hitsAddend ?? 0) > 0;
    const hits = fed && !reserving ? 0 : descriptor.hitsAddend ?? Math.max(1, request.hitsAddend);
    const memo = memos[i];
    let windowEnd: number, windowId: WindowId, key: WindowKey;
    if (memo) {
      moveToWindow(memo, unit, nowMs, rules.windows);
      ({ windowEnd, windowId, key } = memo);
    } else {
      const window = windowOf(unit, nowMs, rules.windows);
      [windowEnd, windowId, key] = [window.end, window.id, windowKey(m.counterKey, window.id)];
    }
    const current = store.get(key) + (pending.get(key) ?? 0);
    const after = current + hits;
    const over = hits === 0 ? current >= limit : after > limit;
    if (reserving) {
      // Held only once the whole request is allowed; until then later descriptors on the same counter see it.
      pending.set(key, (pending.get(key) ?? 0) + hits);
      const { domain } = request;
      held.push({ domain, counterKey: m.counterKey, windowId, n: hits, eventTimeMs: nowMs, reservation });
    } else if (hits > 0 && mode.applyHits) {
      store.add(key, hits, windowEnd);
      mode.onHit?.({
        domain: request.domain,
        counterKey: m.counterKey,
        windowId,
        n: hits,
        eventTimeMs: nowMs,
      });
    } else if (hits > 0) pending.set(key, (pending.get(key) ?? 0) + hits);
    const status: RateLimitResponse_DescriptorStatus = {
      code: over && !m.shadowMode ? OVER_LIMIT : OK,
      currentLimit: { name, requestsPerUnit: limit, unit: WIRE_UNITS[unit] },
      limitRemaining: over ? 0 : limit - after,
      durationUntilReset: { seconds: Math.ceil((windowEnd - nowMs) / 1000), nanos: 0 },
    };
    if (status.code === OVER_LIMIT) overallCode = OVER_LIMIT;
    if (status.code === OVER_LIMIT || status.limitRemaining < (closest?.limitRemaining ?? MAX_UINT32)) closest = status;
    return status;
  });
  if (overallCode === OK && mode.applyHits) held.forEach((r) => mode.reserve?.(r));
  const headers = mode.rateLimitHeaders && closest ? rateLimitHeaders(mode.rateLimitHeaders, closest) : [];
  return {
    overallCode,
    statuses,
    responseHeadersToAdd: headers,
    requestHeadersToAdd: [],
    rawBody: new Uint8Array(),
  };
}

function isReservationMarker(d: RlsDescriptor): boolean {
  return d.entries.length === 1 && d.entries[0]!.key === RESERVATION_DESCRIPTOR_KEY && !d.limit;
}

/** The reservation id of the request's first valid marker descriptor. */
function reservationOf(descriptors: readonly RlsDescriptor[]): string | undefined {
  for (const d of descriptors) {
    if (isReservationMarker(d) && isReservationId(d.entries[0]!.value)) return d.entries[0]!.value;
  }
  return undefined;
}

function matchRequestDescriptor(domain: string, d: RlsDescriptor, rules: RateLimitRules): Matched {
  if (!d.limit) return rules.matchDescriptor(domain, d.entries);
  if (!rules.hasDomain(domain)) return undefined;
  const unit = (Object.keys(WIRE_UNITS) as RateLimitUnitName[]).find((u) => WIRE_UNITS[u] === d.limit!.unit as number);
  if (!unit) throw new RlsRequestError(`Rate limit override has an unknown unit (${d.limit.unit})`);
  const limit: LimitSpec = { kind: "limited", unit, requestsPerUnit: d.limit.requestsPerUnit, name: "", replaces: [] };
  const statKey = [domain, ...d.entries.map((e) => `${e.key}_${e.value}`)].join(".");
  return { domain, limit, shadowMode: false, counterKey: descriptorCounterKey(domain, d.entries), statKey };
}

function rateLimitHeaders(names: RateLimitHeaderNames, s: RateLimitResponse_DescriptorStatus): HeaderValue[] {
  const header = (key: string, value: number): HeaderValue => ({
    key,
    value: String(value),
    rawValue: new Uint8Array(),
  });
  return [
    header(names.limit, s.currentLimit?.requestsPerUnit ?? 0),
    header(names.remaining, s.limitRemaining),
    header(names.reset, s.durationUntilReset?.seconds ?? 0),
  ];
}

/**
 * envoyproxy/ratelimit's statistics split of one descriptor's hits (base_limiter.go): the near-limit threshold is
 * floor(limit × ratio) in float32 arithmetic (NEAR_LIMIT_RATIO, default 0.8). Over the limit: all hits are over when
 * the count was already at the limit, else `after - limit` are over and `limit - max(threshold, before)` near. Within
 * it: all hits are within, and those past the threshold (`after - max(threshold, before)`) are also near.
 */
export function hitStats(
  limit: number,
  before: number,
  after: number,
  nearLimitRatio = 0.8,
): { withinLimit: number; nearLimit: number; overLimit: number } {
  const threshold = Math.floor(Math.fround(Math.fround(limit) * Math.fround(nearLimitRatio)));
  const hits = after - before;
  if (after > limit) {
    if (before >= limit) return { withinLimit: 0, nearLimit: 0, overLimit: hits };
    return { withinLimit: 0, nearLimit: limit - Math.max(threshold, before), overLimit: after - limit };
  }
  return { withinLimit: hits, nearLimit: after > threshold ? after - Math.max(threshold, before) : 0, overLimit: 0 };
}

export type HitsHook = (domain: string, counterKey: string, windowId: WindowId, n: number, eventTimeMs: number) => void;

export interface RlsServerOptions {
  readonly listen: ListenAddress;
  readonly rules: RateLimitRules;
  readonly logger: Logger;
  readonly store?: CounterStore;
  /** Wall-clock epoch milliseconds (windows are calendar facts, so a monotonic clock will not do). Default Date.now. */
  readonly now?: () => number;
  /** Every hit this replica adds, for publishing as hit events. Errors it throws are logged, never answered. */
  readonly onHits?: HitsHook;
  /** Off by default, as in envoyproxy/ratelimit. */
  readonly rateLimitHeaders?: RateLimitHeaderNames;
  /**
   * Limits whose counters usage events feed (the aggregator's token rules): hits a call carries for them are not
   * added, only checked, so a deployment that also sends Envoy's apply_on_stream_done calls never counts twice.
   */
  readonly checkOnly?: (limit: MatchedLimit) => boolean;
  /** Holds a reservation on a usage-fed counter (admission by reservation); without it nothing is ever held. */
  readonly onReserve?: (r: AppliedReservation) => void;
  /** Every answer, or the error answered instead (for metrics). Errors it throws are ignored. */
  readonly onDecision?: (result: RateLimitResponse | Error) => void;
  /** TLS (or mutual TLS) for the listener; plaintext when absent. */
  readonly serverCredentials?: grpc.ServerCredentials;
}

type RlsCall = grpc.ServerUnaryCall<RlsRequest, RateLimitResponse>;

/**
 * grpc-js server options: channelz (call counters and traces per server, read by no one here) off. The rest stays at
 * grpc-js's defaults, which already set no per-call deadline timer unless the client sends grpc-timeout.
 */
const SERVER_OPTIONS: grpc.ServerOptions = { "grpc.enable_channelz": 0 };

export class RlsServer implements AsyncDisposable {
  readonly store: CounterStore;
  readonly #o: RlsServerOptions;
  readonly #server = new grpc.Server(SERVER_OPTIONS);
  #rules: RateLimitRules;
  /** How every call is decided, built once (and again with the rules: its match cache is theirs). */
  #mode: RlsDecisionMode;
  #bound: ListenAddress | undefined;
  #listener: GrpcListener | undefined;

  constructor(o: RlsServerOptions) {
    this.#o = o;
    this.#rules = o.rules;
    this.store = o.store ?? new CounterStore();
    this.#mode = this.#decisionMode(o.rules);
    this.#server.addService(rateLimitServiceDefinition, {
      shouldRateLimit: (call: RlsCall, cb: grpc.sendUnaryData<RateLimitResponse>) => this.#answer(call, cb),
    });
  }

  static async start(o: RlsServerOptions): Promise<RlsServer> {
    const server = new RlsServer(o);
    await server.start();
    return server;
  }

  get rules(): RateLimitRules {
    return this.#rules;
  }

  get address(): ListenAddress | undefined {
    return this.#bound;
  }

  /** Swaps the rules at once for calls that arrive from now on. A failed config changes nothing: its errors are
   * returned and the rules in force stay. */
  setRules(next: RateLimitRules | RlsConfigResult): readonly ResourceError[] {
    if (next instanceof RateLimitRules) this.#rules = next;
    else if (next.ok) this.#rules = next.rules;
    else {
      this.#o.logger.warn({ errors: next.errors.length }, "Rate limit config rejected; keeping the previous one");
      return next.errors;
    }
    this.#mode = this.#decisionMode(this.#rules);
    return [];
  }

  #decisionMode(rules: RateLimitRules): RlsDecisionMode {
    const { logger, onHits, rateLimitHeaders, checkOnly, onReserve } = this.#o;
    return {
      applyHits: true,
      onHit: (h: AppliedHit) => {
        try {
          onHits?.(h.domain, h.counterKey, h.windowId, h.n, h.eventTimeMs);
        } catch (err) {
          logger.error({ err, domain: h.domain }, "Publishing a rate limit hit failed");
        }
      },
      matches: new MatchCache(rules),
      ...(rateLimitHeaders ? { rateLimitHeaders } : {}),
      ...(checkOnly ? { checkOnly } : {}),
      ...(onReserve ? { reserve: onReserve } : {}),
    };
  }

  async start(): Promise<ListenAddress> {
    const listen = this.#o.listen;
    if (listen.kind === "unix") {
      // As the ExtProc socket: a directory only its owner and group can enter, a socket only they can connect to.
      await Deno.mkdir(listen.path.replace(/\/[^/]*$/, "") || "/", { recursive: true, mode: 0o750 });
      await removeStaleSocket(listen.path);
    }
    const credentials = this.#o.serverCredentials ?? grpc.ServerCredentials.createInsecure();
    this.#listener = await listenGrpc(this.#server, listen, credentials, this.#o.logger);
    if (listen.kind === "unix") await Deno.chmod(listen.path, 0o660);
    return this.#bound = this.#listener.address;
  }

  async close(): Promise<void> {
    await this.#listener?.close();
    this.#server.forceShutdown();
    if (this.#o.listen.kind === "unix") await Deno.remove(this.#o.listen.path).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #answer(call: RlsCall, cb: grpc.sendUnaryData<RateLimitResponse>): void {
    try {
      const response = decideRateLimit(call.request, this.#rules, this.store, (this.#o.now ?? Date.now)(), this.#mode);
      this.#decided(response);
      cb(null, response);
    } catch (err) {
      this.#decided(err instanceof Error ? err : new Error(String(err)));
      if (err instanceof RlsRequestError) return cb({ code: grpc.status.INVALID_ARGUMENT, details: err.message });
      this.#o.logger.error({ err, domain: call.request.domain }, "Rate limit decision failed");
      cb({ code: grpc.status.INTERNAL, details: "Rate limit decision failed" });
    }
  }

  #decided(result: RateLimitResponse | Error): void {
    try {
      this.#o.onDecision?.(result);
    } catch { /* metrics must not change the answer */ }
  }
}

/** A socket file left by a crash is removed; one another process still serves is not taken over. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    await Deno.lstat(path);
  } catch {
    return;
  }
  const served = await Deno.connect({ transport: "unix", path }).then((c) => (c.close(), true), () => false);
  if (served) throw new Error(`Cannot listen on unix://${path}: another process is serving it`);
  await Deno.remove(path);
}
