// Resources → the edge topology (the same one `tollgate render envoy` writes for real Envoy) plus what the ExtProc
// and the rate limit service need. Mirrors Envoy AI Gateway + Envoy Gateway: a router-level ext_proc filter, the
// ratelimit filter when any route has global limits, routes in Gateway API precedence, a cluster per route rule
// with an upstream-level ext_proc filter. Pure: no I/O, no clock; the same resources give the same output.
import type { EdgeConfig, RouteConfig } from "../../edge/config.ts";
import { routerExtProcFilter, upstreamExtProcFilter } from "../../edge/filter_defaults.ts";
import type { AIGatewayRoute, Resource } from "../resources/resource.ts";
import { qualifiedName } from "../resources/resource.ts";
import { type CheckedResources, checkResources } from "../resources/references.ts";
import { formatResourceError, type ResourceError, sortErrors } from "../resources/errors.ts";
import { compileBackend } from "./backends.ts";
import { listenerPort } from "./attachments.ts";
import { compileModels, routeModels } from "./models.ts";
import type { CompileMemo } from "./compile_memo.ts";
import { compileRoute } from "./routes.ts";
import { compileSemanticRouters } from "../../routing/compile_router.ts";
import { modelInfo } from "../snapshot.ts";
import { compileRateLimitOptions } from "../resources/rate_limit_options.ts";
import {
  type CompiledBackendRef,
  type CompiledCost,
  type CompileOptions,
  type CompileResult,
  type RateLimitRule,
} from "./compiled.ts";

const DEFAULT_MAX_REQUEST_BODY_BYTES = 50 * 1024 * 1024;
const DEFAULT_RATE_LIMIT_TIMEOUT_MS = 20;

/** What the caller may already have, so the compile does less. */
export interface CompilePreparation {
  /** checkResources(resources): the controller checks references once, across its sources. */
  readonly checked?: CheckedResources;
  /** Results of the previous compile to reuse where their inputs are the same objects (the controller's). */
  readonly memo?: CompileMemo;
}

export function compileGateway(
  resources: readonly Resource[],
  options: CompileOptions,
  prepared: CompilePreparation = {},
): CompileResult {
  const checked = prepared.checked ?? checkResources(resources);
  const { memo } = prepared;
  const errors: ResourceError[] = [...checked.errors];
  const { index } = checked;
  const routes = index.list("AIGatewayRoute").sort(olderFirst);

  const filterOptions = { messageTimeoutMs: options.messageTimeoutMs, failureModeAllow: options.failureModeAllow };
  let routerExtProc = routerExtProcFilter(options.extProcTarget, filterOptions);
  let upstreamExtProc = upstreamExtProcFilter(options.extProcTarget, filterOptions);
  if (memo) {
    routerExtProc = memo.stable("routerExtProc", routerExtProc);
    upstreamExtProc = memo.stable("upstreamExtProc", upstreamExtProc);
  }

  const rateLimitDomain = options.rateLimit?.domain;
  const compileOne = (route: AIGatewayRoute) =>
    memo
      ? memo.reuse(
        "route",
        route,
        index,
        [upstreamExtProc, rateLimitDomain],
        errors,
        (lookup, own) => compileRoute(route, { index: lookup, upstreamExtProc, rateLimitDomain, errors: own }),
      )
      : compileRoute(route, { index, upstreamExtProc, rateLimitDomain, errors });
  const routeConfigs: RouteConfig[] = [];
  const clusters = [];
  const rateLimitRules: RateLimitRule[] = [];
  const refs = new Map<string, CompiledBackendRef[]>();
  for (const route of routes) {
    const compiled = compileOne(route);
    routeConfigs.push(...compiled.routes);
    clusters.push(...compiled.clusters);
    rateLimitRules.push(...compiled.rateLimitRules);
    for (const [backend, list] of compiled.refs) refs.set(backend, [...(refs.get(backend) ?? []), ...list]);
  }
  // Gateway API precedence among same-prefix matches: more header matches first; ties keep the order of routes
  // (oldest, then namespace/name), rules and matches. The sort is stable.
  routeConfigs.sort((a, b) => b.match.headers.length - a.match.headers.length);

  const port = options.listenerPort ?? listenerPort(routes, index, errors);
  const backends = index.list("AIServiceBackend")
    .map((s) => {
      const own = refs.get(qualifiedName(s)) ?? [];
      return memo
        ? memo.reuse("backend", s, index, own, errors, (lookup) => compileBackend(s, lookup, own))
        : compileBackend(s, index, own);
    })
    .sort((a, b) => a.name.localeCompare(b.name));

  // Reservation adds request-time entries to routes that charge a reserved cost (rate_limit_options.ts).
  const limits = compileRateLimitOptions(index.list("RateLimitOptions"), routeConfigs, errors);

  // Semantic routing: its trigger models (e.g. "auto") are listed and accepted like the models routes serve.
  const models = memo
    ? compileModels(routes, (route) => memo.reuse("models", route, index, [], errors, () => routeModels(route)))
    : compileModels(routes);
  const routers = compileSemanticRouters(index.list("SemanticRouter"), { models: models.map((m) => m.id), routes });
  errors.push(...routers.errors);

  if (errors.length > 0) return { ok: false, errors: dedupe(sortErrors(errors)) };

  const hasRateLimits = routeConfigs.some((r) => r.rateLimits.length > 0);
  const edge: EdgeConfig = {
    listener: { host: options.listenerHost ?? "0.0.0.0", port },
    maxRequestBodyBytes: options.maxRequestBodyBytes ?? DEFAULT_MAX_REQUEST_BODY_BYTES,
    routerExtProc,
    ...(options.rateLimit && hasRateLimits
      ? {
        rateLimit: {
          domain: options.rateLimit.domain,
          target: options.rateLimit.target,
          timeoutMs: options.rateLimit.timeoutMs ?? DEFAULT_RATE_LIMIT_TIMEOUT_MS,
          failureModeDeny: options.rateLimit.failureModeDeny ?? false,
          enableXRateLimitHeaders: true,
        },
      }
      : {}),
    routes: limits.routes,
    clusters,
    ...(options.accessLog === undefined ? {} : { accessLog: options.accessLog }),
  };
  return {
    ok: true,
    edge,
    models: [...models, ...routers.configs.flatMap((r) => r.triggerModels.map((m) => modelInfo(m)))],
    backends,
    rateLimitRules,
    llmRequestCosts: routes.flatMap((route) =>
      memo ? memo.reuse("costs", route, index, [], errors, () => costsOf(route)) : costsOf(route)
    ),
    ...(limits.options ? { rateLimitOptions: limits.options } : {}),
    ...(routers.configs.length > 0 ? { semanticRouters: routers.configs } : {}),
  };
}

function costsOf(route: AIGatewayRoute): CompiledCost[] {
  return (route.spec.llmRequestCosts ?? []).map((c) => ({
    route: qualifiedName(route),
    metadataKey: c.metadataKey,
    type: c.type,
    ...(c.cel === undefined ? {} : { cel: c.cel }),
  }));
}

/** Gateway API orders routes of equal precedence by age, then by namespace/name. */
function olderFirst(a: AIGatewayRoute, b: AIGatewayRoute): number {
  const ta = Date.parse(a.metadata.creationTimestamp ?? "") || 0;
  const tb = Date.parse(b.metadata.creationTimestamp ?? "") || 0;
  return ta - tb || qualifiedName(a).localeCompare(qualifiedName(b));
}

/** A conflict seen from several routes is one error. */
function dedupe(errors: readonly ResourceError[]): ResourceError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = formatResourceError(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
