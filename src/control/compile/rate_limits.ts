// A BackendTrafficPolicy's global rate-limit rules → the rate_limits of one route, exactly as Envoy Gateway builds
// them (internal/xds/translator/ratelimit.go): every entry starts with a generic_key naming the route; each header
// selector adds header_value_match (Exact) or request_headers (Distinct) keyed "rule-<r>-match-<m>" (selectors of a
// rule numbered in order across its clientSelectors); a rule without selectors adds generic_key "rule-<r>-match--1".
// A request cost becomes the entry's hits_addend; a response cost a second, apply_on_stream_done entry.
import type { DescriptorAction, RateLimitEntry } from "../../edge/config.ts";
import type { CostSpecifier, RateLimitUnit } from "../resources/backend_traffic_policy.ts";
import type { BackendTrafficPolicy } from "../resources/resource.ts";
import { qualifiedName } from "../resources/resource.ts";
import { errorAt, type ResourceError } from "../resources/errors.ts";
import type { RateLimitRule, RateLimitUnitName } from "./compiled.ts";

export interface RouteRateLimits {
  readonly entries: RateLimitEntry[];
  readonly rules: RateLimitRule[];
}

export function ruleDescriptorKey(ruleIndex: number, matchIndex: number): string {
  return `rule-${ruleIndex}-match-${matchIndex}`;
}

export function compileRateLimits(
  policy: BackendTrafficPolicy | undefined,
  routeName: string,
  domain: string | undefined,
  errors: ResourceError[],
): RouteRateLimits {
  const out: RouteRateLimits = { entries: [], rules: [] };
  const rules = policy?.spec.rateLimit?.global?.rules ?? [];
  if (!policy || rules.length === 0) return out;
  if (domain === undefined) {
    const message = "Global rate limits need a rate limit service: compile with the rateLimit option";
    errors.push(errorAt(policy.origin, ["spec", "rateLimit"], message));
    return out;
  }
  rules.forEach((rule, r) => {
    const actions: DescriptorAction[] = [{ kind: "genericKey", descriptorKey: routeName, descriptorValue: routeName }];
    const descriptors: { key: string; value?: string }[] = [{ key: routeName, value: routeName }];
    const headers = (rule.clientSelectors ?? []).flatMap((s, i) =>
      (s.headers ?? []).map((h, j) => ({ h, path: ["clientSelectors", i, "headers", j] }))
    );
    headers.forEach(({ h, path }, m) => {
      const key = ruleDescriptorKey(r, m);
      if (h.type === "Distinct") {
        actions.push({ kind: "requestHeaders", headerName: h.name, descriptorKey: key, skipIfAbsent: false });
        descriptors.push({ key });
      } else if (h.type === "RegularExpression") {
        const message = "RegularExpression selectors are not supported by Tollgate's edge";
        errors.push(errorAt(policy.origin, ["spec", "rateLimit", "global", "rules", r, ...path, "type"], message));
      } else {
        actions.push({
          kind: "headerValueMatch",
          descriptorKey: key,
          descriptorValue: key,
          expectMatch: h.invert !== true,
          headers: [{ name: h.name, exact: h.value ?? "" }],
        });
        descriptors.push({ key, value: key });
      }
    });
    if (headers.length === 0) {
      const key = ruleDescriptorKey(r, -1);
      actions.push({ kind: "genericKey", descriptorKey: key, descriptorValue: key });
      descriptors.push({ key, value: key });
    }
    const request = rule.cost?.request;
    const response = rule.cost?.response;
    out.entries.push({ actions, applyOnStreamDone: false, ...(request ? { hitsAddend: hitsAddend(request) } : {}) });
    if (response) out.entries.push({ actions, applyOnStreamDone: true, hitsAddend: hitsAddend(response) });
    out.rules.push({
      domain,
      policy: qualifiedName(policy),
      ruleIndex: r,
      route: routeName,
      descriptors,
      limit: { requests: rule.limit.requests, unit: unitName(rule.limit.unit) },
      shadowMode: rule.shadowMode ?? false,
    });
  });
  return out;
}

function hitsAddend(cost: CostSpecifier): NonNullable<RateLimitEntry["hitsAddend"]> {
  // The schema guarantees the field named by `from` is set.
  if (cost.from === "Number") return { number: cost.number ?? 1 };
  const { namespace, key } = cost.metadata ?? { namespace: "", key: "" };
  return { metadata: { namespace, key } };
}

function unitName(unit: RateLimitUnit): RateLimitUnitName {
  return unit.toLowerCase() as RateLimitUnitName;
}
