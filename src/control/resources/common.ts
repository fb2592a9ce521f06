// Schema pieces shared by the Kubernetes, Gateway API, Envoy Gateway and Envoy AI Gateway kinds: object metadata,
// references, durations and header matches, each as the upstream API defines it (field names kept verbatim).
import { z } from "zod";

/** Fields of ObjectMeta we read; the read-only ones kubectl exports are accepted and ignored. */
export const objectMeta = z.strictObject({
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  creationTimestamp: z.string().refine((s) => !Number.isNaN(Date.parse(s)), "Is not an RFC 3339 timestamp")
    .optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().int().optional(),
});

/** An output-only block (status) or a knob that has no meaning outside Kubernetes: accepted, never read. */
export const ignored = z.unknown().optional();

/** A field of the upstream API that Tollgate does not implement: naming it is an error rather than a silent no-op. */
export function unsupported() {
  return z.unknown().refine((v) => v === undefined, "Field is not supported by Tollgate").optional();
}

/** Gateway API Duration: one to four `<n><unit>` parts, units h, m, s, ms (GEP-2257), e.g. "1h30m", "500ms". */
const DURATION = /^(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}$/;
const DURATION_PART = /([0-9]{1,5})(h|ms|m|s)/g;
const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

export const duration = z.string().regex(DURATION, 'Is not a duration such as "10s", "500ms" or "1h30m"');

export function durationMs(value: string): number {
  let total = 0;
  for (const [, n, unit] of value.matchAll(DURATION_PART)) total += Number(n) * (UNIT_MS[unit ?? "ms"] ?? 1);
  return total;
}

const port = z.number().int().min(0).max(65535);

/** Gateway API ParentReference. */
export const parentReference = z.strictObject({
  group: z.string().optional(),
  kind: z.string().optional(),
  namespace: z.string().min(1).optional(),
  name: z.string().min(1),
  sectionName: z.string().min(1).optional(),
  port: port.optional(),
});

/** Gateway API LocalPolicyTargetReference(WithSectionName). */
export const policyTargetReference = z.strictObject({
  group: z.string(),
  kind: z.string().min(1),
  name: z.string().min(1),
  sectionName: z.string().min(1).optional(),
});

/** Gateway API SecretObjectReference: kind defaults to Secret, namespace to the referrer's. */
export const secretObjectReference = z.strictObject({
  group: z.string().optional(),
  kind: z.literal("Secret").optional(),
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
});

/** Gateway API BackendObjectReference. */
export const backendObjectReference = z.strictObject({
  group: z.string().optional(),
  kind: z.string().optional(),
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
  port: port.optional(),
});

/** Gateway API LocalObjectReference (group and kind are optional here: old AI Gateway examples omit them). */
export const localObjectReference = z.strictObject({
  group: z.string().optional(),
  kind: z.string().optional(),
  name: z.string().min(1),
});

/** Gateway API HTTPHeaderMatch; type defaults to Exact. */
export const httpHeaderMatch = z.strictObject({
  type: z.enum(["Exact", "RegularExpression"]).optional(),
  name: z.string().min(1),
  value: z.string(),
});

/** Gateway API HTTPHeader, as used by header mutations. */
export const httpHeader = z.strictObject({ name: z.string().min(1), value: z.string() });

export type ParentReference = z.output<typeof parentReference>;
export type PolicyTargetReference = z.output<typeof policyTargetReference>;
export type SecretObjectReference = z.output<typeof secretObjectReference>;
export type HTTPHeaderMatch = z.output<typeof httpHeaderMatch>;
