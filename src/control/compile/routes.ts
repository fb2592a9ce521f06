// One AIGatewayRoute → Envoy routes and clusters, named as Envoy Gateway names what it generates from the HTTPRoute
// Envoy AI Gateway derives: a cluster per rule ("httproute/<ns>/<name>/rule/<i>") and a route per match
// ("…/rule/<i>/match/<j>/*", ORed as Gateway API requires). A cluster's endpoints are the Backends of the rule's
// backendRefs, each backendRef its own set carrying the backend identity as endpoint metadata (Envoy AI Gateway's
// post-translate step does the same), placed in the priority level of its backendRef priority.
import type { ClusterConfig, Endpoint, ExtProcFilterConfig, HeaderMatch, RouteConfig } from "../../edge/config.ts";
import type { AIGatewayRoute } from "../resources/resource.ts";
import { qualifiedName } from "../resources/resource.ts";
import type { ResourceLookup } from "../resources/references.ts";
import { errorAt, type ResourceError } from "../resources/errors.ts";
import { backendAddresses, backendOf, mutation } from "./backends.ts";
import { compileRuleTraffic } from "./retry.ts";
import { compileRateLimits } from "./rate_limits.ts";
import { trafficPolicyFor } from "./attachments.ts";
import { type CompiledBackendRef, ENDPOINT_METADATA_NAMESPACE, type RateLimitRule } from "./compiled.ts";

export interface RouteContext {
  readonly index: ResourceLookup;
  readonly upstreamExtProc: ExtProcFilterConfig;
  readonly rateLimitDomain: string | undefined;
  readonly errors: ResourceError[];
}

export interface CompiledRoute {
  readonly routes: RouteConfig[];
  readonly clusters: ClusterConfig[];
  readonly rateLimitRules: RateLimitRule[];
  /** AIServiceBackend "namespace/name" → the backendRefs pointing at it. */
  readonly refs: Map<string, CompiledBackendRef[]>;
}

export function compileRoute(route: AIGatewayRoute, ctx: RouteContext): CompiledRoute {
  const out: CompiledRoute = { routes: [], clusters: [], rateLimitRules: [], refs: new Map() };
  const { namespace: ns, name } = route.metadata;
  const policy = trafficPolicyFor(route, ctx.index, ctx.errors);
  route.spec.rules.forEach((rule, i) => {
    const rulePath = ["spec", "rules", i];
    const cluster = `httproute/${ns}/${name}/rule/${i}`;
    const levels = new Map<number, { weight: number; endpoints: Omit<Endpoint, "weight">[] }[]>();
    let unresolved = false;
    (rule.backendRefs ?? []).forEach((ref, j) => {
      const weight = ref.weight ?? 1;
      // Envoy Gateway leaves a weight-0 backendRef out of the load assignment.
      if (weight === 0) return;
      const refNs = ref.namespace ?? ns;
      const isService = ref.kind === undefined || ref.kind === "AIServiceBackend";
      const service = isService ? ctx.index.get("AIServiceBackend", refNs, ref.name) : undefined;
      const backend = service && backendOf(service, ctx.index);
      if (!service || !backend) {
        unresolved = true; // Reported by the reference checks.
        return;
      }
      const id = `${refNs}/${ref.name}/route/${name}/rule/${i}/ref/${j}`;
      const metadata = {
        [ENDPOINT_METADATA_NAMESPACE]: {
          per_route_rule_backend_name: id,
          backend: qualifiedName(service),
          routeRule: `${ns}/${name}/rule/${i}`,
        },
      };
      const endpoints = backendAddresses(backend).map((a) => ({ ...a, metadata }));
      const level = ref.priority ?? 0;
      levels.set(level, [...(levels.get(level) ?? []), { weight, endpoints }]);
      const refs = out.refs.get(qualifiedName(service)) ?? [];
      refs.push({
        id,
        route: qualifiedName(route),
        rule: i,
        ...(ref.modelNameOverride ? { modelNameOverride: ref.modelNameOverride } : {}),
        ...(ref.headerMutation ? { headerMutation: mutation(ref.headerMutation) } : {}),
        ...(ref.bodyMutation ? { bodyMutation: mutation(ref.bodyMutation) } : {}),
      });
      out.refs.set(qualifiedName(service), refs);
    });
    if (levels.size === 0) {
      if (unresolved) return;
      ctx.errors.push(
        errorAt(route.origin, [...rulePath, "backendRefs"], "Rule has no backend with a non-zero weight"),
      );
      return;
    }
    // Envoy wants priority levels without gaps: priorities 0 and 5 become levels 0 and 1, in order.
    const priorities = [...levels.keys()].sort((a, b) => a - b).map((p) => weighEndpoints(levels.get(p) ?? []));
    const traffic = compileRuleTraffic(rule, policy, priorities.length > 1, ctx.errors);
    out.clusters.push({
      name: cluster,
      priorities,
      connectTimeoutMs: traffic.connectTimeoutMs,
      upstreamExtProc: ctx.upstreamExtProc,
    });
    // A rule without matches matches everything, as the HTTPRoute's defaulted "/" prefix match does.
    const matches = rule.matches && rule.matches.length > 0 ? rule.matches : [{ headers: [] }];
    matches.forEach((match, j) => {
      const headers: HeaderMatch[] = [];
      (match.headers ?? []).forEach((h, k) => {
        if (h.type === "RegularExpression") {
          const path = [...rulePath, "matches", j, "headers", k, "type"];
          ctx.errors.push(
            errorAt(route.origin, path, "RegularExpression header matches are not supported by Tollgate's edge"),
          );
        } else headers.push({ name: h.name.toLowerCase(), exact: h.value });
      });
      const routeName = `${cluster}/match/${j}/*`;
      const limits = compileRateLimits(policy, routeName, ctx.rateLimitDomain, ctx.errors);
      out.rateLimitRules.push(...limits.rules);
      out.routes.push({
        name: routeName,
        match: { prefix: "/", headers },
        cluster,
        timeoutMs: traffic.timeoutMs,
        ...(traffic.retryPolicy ? { retryPolicy: traffic.retryPolicy } : {}),
        rateLimits: limits.entries,
        // Envoy AI Gateway attaches a host-rewrite filter to every route it generates.
        autoHostRewrite: true,
      });
    });
  });
  return out;
}

/**
 * Envoy weighs each backendRef's endpoint set (a locality) by the backendRef weight; the edge weighs endpoints. So an
 * endpoint gets its backendRef's weight scaled by (lcm of the set sizes at this level / its set size): the sets keep
 * the ratio of their backendRef weights however many addresses each has.
 */
function weighEndpoints(sets: readonly { weight: number; endpoints: Omit<Endpoint, "weight">[] }[]): Endpoint[] {
  const sizes = sets.map((s) => s.endpoints.length).filter((n) => n > 0);
  const common = sizes.reduce((acc, n) => lcm(acc, n), 1);
  return sets.flatMap((s) => s.endpoints.map((e) => ({ ...e, weight: s.weight * (common / s.endpoints.length) })));
}

function lcm(a: number, b: number): number {
  const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
  return (a / gcd(a, b)) * b;
}
