// AIServiceBackend of aigateway.envoyproxy.io: the output schema of one provider and the Envoy Gateway Backend that
// holds its addresses. v1alpha1 still accepts the deprecated backendSecurityPolicyRef (policies now use targetRefs).
import { z } from "zod";
import { backendObjectReference, localObjectReference, unsupported } from "./common.ts";
import { httpBodyMutation, httpHeaderMutation, versionedAPISchema } from "./ai_gateway_route.ts";

export const BACKEND_GROUP = "gateway.envoyproxy.io";

/** Upstream requires a Backend of Envoy Gateway here (a Kubernetes Service was allowed only in early releases). */
const backendRef = backendObjectReference.superRefine((ref, ctx) => {
  if (ref.kind !== "Backend") {
    ctx.addIssue({ code: "custom", path: ["kind"], message: 'Must be "Backend" (a Backend of gateway.envoyproxy.io)' });
  }
  if (ref.group !== BACKEND_GROUP) {
    ctx.addIssue({ code: "custom", path: ["group"], message: `Must be "${BACKEND_GROUP}"` });
  }
  if (ref.port !== undefined) {
    ctx.addIssue({ code: "custom", path: ["port"], message: "Must not be set: the port comes from the Backend" });
  }
});

const common = {
  schema: versionedAPISchema,
  backendRef,
  headerMutation: httpHeaderMutation.optional(),
  bodyMutation: httpBodyMutation.optional(),
  contextCache: unsupported(),
};

const v1alpha1Spec = z.strictObject({ ...common, backendSecurityPolicyRef: localObjectReference.optional() });
const v1beta1Spec = z.strictObject({ ...common, responseBodyMutation: unsupported() });

export const aiServiceBackendSpec = { v1alpha1: v1alpha1Spec, v1beta1: v1beta1Spec } as const;

export type AIServiceBackendSpec = z.output<typeof v1alpha1Spec> | z.output<typeof v1beta1Spec>;
