// Which Gateways a route attaches to and which BackendTrafficPolicy governs it, following Envoy Gateway's policy
// attachment: a policy on the route (its generated HTTPRoute, named after the AIGatewayRoute) replaces one on the
// Gateway; two policies at the same level conflict and, as Envoy Gateway does, the oldest wins — here the others
// are reported as errors so the conflict cannot go unnoticed.
import type { AIGatewayRoute, BackendTrafficPolicy, Gateway } from "../resources/resource.ts";
import { qualifiedName } from "../resources/resource.ts";
import { GATEWAY_API_GROUP, type ResourceLookup, trafficPolicyTargets } from "../resources/references.ts";
import { errorAt, type ResourceError } from "../resources/errors.ts";

/** The edge's listener port when neither the options nor a Gateway name one. */
export const DEFAULT_LISTENER_PORT = 1975;

/** A route without parentRefs (or deprecated targetRefs) is served on the single edge listener, i.e. every Gateway. */
export function routeGateways(route: AIGatewayRoute, index: ResourceLookup): Gateway[] {
  const refs = [...(route.spec.parentRefs ?? []), ...("targetRefs" in route.spec ? route.spec.targetRefs ?? [] : [])];
  if (refs.length === 0) return index.list("Gateway");
  return refs.flatMap((ref) => {
    const ns = "namespace" in ref && ref.namespace ? ref.namespace : route.metadata.namespace;
    const gateway = index.get("Gateway", ns, ref.name);
    return gateway ? [gateway] : [];
  });
}

export function listenerPort(
  routes: readonly AIGatewayRoute[],
  index: ResourceLookup,
  errors: ResourceError[],
): number {
  const gateways = new Map<string, Gateway>();
  for (const route of routes) for (const g of routeGateways(route, index)) gateways.set(qualifiedName(g), g);
  if (routes.length === 0) { for (const g of index.list("Gateway")) gateways.set(qualifiedName(g), g); }
  const ports = new Set<number>();
  for (const g of gateways.values()) {
    for (const l of g.spec.listeners) if (l.protocol === "HTTP") ports.add(l.port);
  }
  if (ports.size > 1) {
    const first = [...gateways.values()][0];
    const message = `HTTP listeners use several ports (${[...ports].join(", ")}); Tollgate's edge has one listener: ` +
      "set the listenerPort option";
    if (first) errors.push(errorAt(first.origin, ["spec", "listeners"], message));
  }
  return [...ports][0] ?? DEFAULT_LISTENER_PORT;
}

/** The policy for a route, or undefined; conflicting policies are reported. */
export function trafficPolicyFor(
  route: AIGatewayRoute,
  index: ResourceLookup,
  errors: ResourceError[],
): BackendTrafficPolicy | undefined {
  const ns = route.metadata.namespace;
  const gateways = new Set(routeGateways(route, index).map(qualifiedName));
  const onRoute: BackendTrafficPolicy[] = [];
  const onGateway: BackendTrafficPolicy[] = [];
  for (const policy of index.list("BackendTrafficPolicy")) {
    if (policy.metadata.namespace !== ns && !targetsGatewayIn(policy, gateways)) continue;
    for (const [, ref] of trafficPolicyTargets(policy)) {
      if (ref.group !== GATEWAY_API_GROUP) continue;
      const target = `${policy.metadata.namespace}/${ref.name}`;
      if (ref.kind === "HTTPRoute" && target === qualifiedName(route)) onRoute.push(policy);
      if (ref.kind === "Gateway" && gateways.has(target)) onGateway.push(policy);
    }
  }
  const level = onRoute.length > 0 ? onRoute : onGateway;
  const [winner, ...losers] = [...new Set(level)].sort(oldestFirst);
  for (const loser of losers) {
    const message = `Conflicts with BackendTrafficPolicy "${qualifiedName(winner!)}" for AIGatewayRoute ` +
      `"${qualifiedName(route)}": only one policy per route (or per Gateway) takes effect`;
    errors.push(errorAt(loser.origin, ["spec", "targetRefs"], message));
  }
  return winner;
}

function targetsGatewayIn(policy: BackendTrafficPolicy, gateways: ReadonlySet<string>): boolean {
  return trafficPolicyTargets(policy).some(([, ref]) => gateways.has(`${policy.metadata.namespace}/${ref.name}`));
}

/** Envoy Gateway's tie-break between policies: older creationTimestamp first, then namespace/name. */
function oldestFirst(a: BackendTrafficPolicy, b: BackendTrafficPolicy): number {
  const ta = Date.parse(a.metadata.creationTimestamp ?? "") || 0;
  const tb = Date.parse(b.metadata.creationTimestamp ?? "") || 0;
  return ta - tb || qualifiedName(a).localeCompare(qualifiedName(b));
}
