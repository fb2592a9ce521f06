// The checks no single document can make: duplicate names, and every reference between resources (route → backend
// → Backend, policy → target, policy → Secret and key). The set of files is the whole world: a reference to anything
// outside it is an error. ReferenceGrants are not modelled; cross-namespace references are allowed as written.
import { errorAt, type PathSegment, type ResourceError } from "./errors.ts";
import type {
  AIGatewayRoute,
  AIServiceBackend,
  BackendSecurityPolicy,
  BackendTrafficPolicy,
  Resource,
  ResourceKind,
} from "./resource.ts";
import { qualifiedName } from "./resource.ts";
import { AI_SERVICE_BACKEND_GROUP } from "./ai_gateway_route.ts";
import { policySecretRefs } from "./backend_security_policy.ts";
import { secretKeys } from "./kubernetes.ts";

export const GATEWAY_API_GROUP = "gateway.networking.k8s.io";

type OfKind<K extends ResourceKind> = Extract<Resource, { kind: K }>;

/** Resources by kind and "namespace/name"; the first definition wins, later ones are duplicates. */
export class ResourceIndex {
  /** kind → namespace → name: lookups build no key strings (a compile makes tens of thousands). */
  readonly #byName = new Map<ResourceKind, Map<string, Map<string, Resource>>>();
  /** Per kind, in load order: `list` is called per route and per backend, so it must not scan everything. */
  readonly #byKind = new Map<ResourceKind, Resource[]>();
  readonly duplicates: ResourceError[] = [];

  constructor(resources: readonly Resource[]) {
    for (const r of resources) {
      let namespaces = this.#byName.get(r.kind);
      if (!namespaces) this.#byName.set(r.kind, namespaces = new Map());
      let names = namespaces.get(r.metadata.namespace);
      if (!names) namespaces.set(r.metadata.namespace, names = new Map());
      const first = names.get(r.metadata.name);
      if (first) {
        const where = `${first.origin.file}#${first.origin.document}`;
        this.duplicates.push(
          errorAt(r.origin, "metadata.name", `Duplicate ${r.kind} "${qualifiedName(r)}": also defined in ${where}`),
        );
      } else {
        names.set(r.metadata.name, r);
        const same = this.#byKind.get(r.kind);
        if (same) same.push(r);
        else this.#byKind.set(r.kind, [r]);
      }
    }
  }

  get<K extends ResourceKind>(kind: K, namespace: string, name: string): OfKind<K> | undefined {
    return this.#byName.get(kind)?.get(namespace)?.get(name) as OfKind<K> | undefined;
  }

  /** Every resource of a kind, in load order (duplicates excluded). */
  list<K extends ResourceKind>(kind: K): OfKind<K>[] {
    return [...(this.#byKind.get(kind) ?? [])] as OfKind<K>[];
  }

  #targeting: Map<string, BackendSecurityPolicy> | undefined;

  /**
   * The first BackendSecurityPolicy (in load order) of `namespace` whose targetRefs name the AIServiceBackend `name`.
   * Indexed on first use: asked once per backend, a scan of every policy each time would be quadratic.
   */
  securityPolicyTargeting(namespace: string, name: string): BackendSecurityPolicy | undefined {
    if (!this.#targeting) {
      this.#targeting = new Map();
      for (const p of this.list("BackendSecurityPolicy")) {
        for (const t of p.spec.targetRefs ?? []) {
          if (t.kind !== "AIServiceBackend") continue;
          const key = `${p.metadata.namespace}/${t.name}`;
          if (!this.#targeting.has(key)) this.#targeting.set(key, p);
        }
      }
    }
    return this.#targeting.get(`${namespace}/${name}`);
  }
}

/** What compiling reads from the resources (a ResourceIndex, or one that records what was read). */
export type ResourceLookup = Pick<ResourceIndex, "get" | "list" | "securityPolicyTargeting">;

export function validateReferences(resources: readonly Resource[]): ResourceError[] {
  return [...checkResources(resources).errors];
}

/** The resources indexed, with every duplicate and broken reference: what compileGateway needs, built once. */
export interface CheckedResources {
  readonly index: ResourceIndex;
  readonly errors: readonly ResourceError[];
}

export function checkResources(resources: readonly Resource[]): CheckedResources {
  const index = new ResourceIndex(resources);
  const errors = [...index.duplicates];
  const missing = (r: Resource, path: PathSegment[], kind: ResourceKind, ns: string, name: string) => {
    if (!index.get(kind, ns, name)) errors.push(errorAt(r.origin, path, `${kind} "${ns}/${name}" is not defined`));
  };

  for (const route of index.list("AIGatewayRoute")) checkRoute(route, errors, missing);
  for (const backend of index.list("AIServiceBackend")) {
    const ref = backend.spec.backendRef;
    missing(backend, ["spec", "backendRef", "name"], "Backend", ref.namespace ?? backend.metadata.namespace, ref.name);
    const policyRef = "backendSecurityPolicyRef" in backend.spec ? backend.spec.backendSecurityPolicyRef : undefined;
    if (policyRef) {
      const path = ["spec", "backendSecurityPolicyRef", "name"];
      missing(backend, path, "BackendSecurityPolicy", backend.metadata.namespace, policyRef.name);
    }
  }
  checkSecurityPolicies(index, errors);
  for (const policy of index.list("BackendTrafficPolicy")) checkTrafficPolicy(policy, index, errors);
  return { index, errors };
}

type Missing = (r: Resource, path: PathSegment[], kind: ResourceKind, ns: string, name: string) => void;

function checkRoute(route: AIGatewayRoute, errors: ResourceError[], missing: Missing): void {
  const ns = route.metadata.namespace;
  const parents = "targetRefs" in route.spec && route.spec.targetRefs
    ? ["targetRefs", route.spec.targetRefs] as const
    : undefined;
  for (const [field, refs] of [["parentRefs", route.spec.parentRefs ?? []] as const, ...(parents ? [parents] : [])]) {
    refs.forEach((ref, i) => {
      const kind = ref.kind ?? "Gateway";
      if (kind !== "Gateway" || (ref.group ?? GATEWAY_API_GROUP) !== GATEWAY_API_GROUP) {
        errors.push(errorAt(route.origin, ["spec", field, i, "kind"], "Only Gateway parents are supported"));
        return;
      }
      const refNs = "namespace" in ref && ref.namespace ? ref.namespace : ns;
      missing(route, ["spec", field, i, "name"], "Gateway", refNs, ref.name);
    });
  }
  route.spec.rules.forEach((rule, i) => {
    (rule.backendRefs ?? []).forEach((ref, j) => {
      const path = ["spec", "rules", i, "backendRefs", j];
      if (ref.kind !== undefined || ref.group !== undefined) {
        if (ref.kind !== "AIServiceBackend" || ref.group !== AI_SERVICE_BACKEND_GROUP) {
          const message = ref.kind === "InferencePool"
            ? "InferencePool backends are not supported by Tollgate"
            : `Must reference an AIServiceBackend of ${AI_SERVICE_BACKEND_GROUP}`;
          errors.push(errorAt(route.origin, [...path, "kind"], message));
          return;
        }
      }
      missing(route, [...path, "name"], "AIServiceBackend", ref.namespace ?? ns, ref.name);
    });
  });
}

function checkSecurityPolicies(index: ResourceIndex, errors: ResourceError[]): void {
  const owner = new Map<string, BackendSecurityPolicy>();
  const attach = (backend: AIServiceBackend, policy: BackendSecurityPolicy, path: PathSegment[]) => {
    const previous = owner.get(qualifiedName(backend));
    if (previous && previous !== policy) {
      const message = `AIServiceBackend "${qualifiedName(backend)}" already has BackendSecurityPolicy "${
        qualifiedName(previous)
      }"`;
      errors.push(errorAt(policy.origin, path, message));
    } else owner.set(qualifiedName(backend), policy);
  };
  const referencedBy = new Map<string, AIServiceBackend[]>();
  for (const backend of index.list("AIServiceBackend")) {
    const ref = "backendSecurityPolicyRef" in backend.spec ? backend.spec.backendSecurityPolicyRef : undefined;
    if (!ref) continue;
    const key = `${backend.metadata.namespace}/${ref.name}`;
    referencedBy.set(key, [...(referencedBy.get(key) ?? []), backend]);
  }
  for (const policy of index.list("BackendSecurityPolicy")) {
    const ns = policy.metadata.namespace;
    const targets = policy.spec.targetRefs ?? [];
    targets.forEach((ref, i) => {
      const path = ["spec", "targetRefs", i];
      if (ref.kind !== "AIServiceBackend" || ref.group !== AI_SERVICE_BACKEND_GROUP) {
        const message = ref.kind === "InferencePool"
          ? "InferencePool targets are not supported by Tollgate"
          : `Must target an AIServiceBackend of ${AI_SERVICE_BACKEND_GROUP}`;
        errors.push(errorAt(policy.origin, [...path, "kind"], message));
        return;
      }
      const backend = index.get("AIServiceBackend", ns, ref.name);
      if (!backend) {
        errors.push(errorAt(policy.origin, [...path, "name"], `AIServiceBackend "${ns}/${ref.name}" is not defined`));
      } else attach(backend, policy, [...path, "name"]);
    });
    const referrers = referencedBy.get(qualifiedName(policy)) ?? [];
    for (const backend of referrers) attach(backend, policy, ["metadata", "name"]);
    if (targets.length === 0 && referrers.length === 0) {
      errors.push(errorAt(policy.origin, ["spec", "targetRefs"], "Policy is not attached to any AIServiceBackend"));
    }
    for (const { path, ref, key } of policySecretRefs(policy.spec)) {
      const secretNs = ref.namespace ?? ns;
      const secret = index.get("Secret", secretNs, ref.name);
      if (!secret) {
        errors.push(errorAt(policy.origin, [...path, "name"], `Secret "${secretNs}/${ref.name}" is not defined`));
      } else if (!secretKeys(secret).has(key)) {
        errors.push(errorAt(policy.origin, [...path, "name"], `Secret "${secretNs}/${ref.name}" has no key "${key}"`));
      }
    }
  }
}

function checkTrafficPolicy(policy: BackendTrafficPolicy, index: ResourceIndex, errors: ResourceError[]): void {
  const ns = policy.metadata.namespace;
  const targets = trafficPolicyTargets(policy);
  if (targets.length === 0) errors.push(errorAt(policy.origin, ["spec", "targetRefs"], "Policy targets nothing"));
  for (const [path, ref] of targets) {
    if (ref.group !== GATEWAY_API_GROUP || (ref.kind !== "Gateway" && ref.kind !== "HTTPRoute")) {
      const message = `Must target a Gateway or an HTTPRoute of ${GATEWAY_API_GROUP} (an AIGatewayRoute's route)`;
      errors.push(errorAt(policy.origin, [...path, "kind"], message));
      continue;
    }
    if (ref.sectionName !== undefined) {
      errors.push(errorAt(policy.origin, [...path, "sectionName"], "Field is not supported by Tollgate"));
      continue;
    }
    // Envoy AI Gateway names the HTTPRoute it generates after the AIGatewayRoute, so that is what an HTTPRoute
    // target means here.
    const kind = ref.kind === "Gateway" ? "Gateway" : "AIGatewayRoute";
    if (!index.get(kind, ns, ref.name)) {
      const what = kind === "Gateway" ? `Gateway "${ns}/${ref.name}"` : `AIGatewayRoute "${ns}/${ref.name}"`;
      errors.push(errorAt(policy.origin, [...path, "name"], `Policy targets nothing: ${what} is not defined`));
    }
  }
}

/** targetRefs, or the deprecated singular targetRef, with the path of each. */
export function trafficPolicyTargets(policy: BackendTrafficPolicy) {
  const { targetRefs, targetRef } = policy.spec;
  if (targetRefs) return targetRefs.map((ref, i) => [["spec", "targetRefs", i] as PathSegment[], ref] as const);
  return targetRef ? [[["spec", "targetRef"] as PathSegment[], targetRef] as const] : [];
}
