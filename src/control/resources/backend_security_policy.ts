// BackendSecurityPolicy of aigateway.envoyproxy.io: how the gateway authenticates to a provider. The spec carries
// exactly the sub-object named by `type`; credentials are always references to Secrets, never values. Both API
// versions share one schema: v1alpha1 gained every v1beta1 credential type before v1beta1 was cut.
import { z } from "zod";
import { duration, ignored, policyTargetReference, secretObjectReference, unsupported } from "./common.ts";

export const SECURITY_POLICY_TYPES = [
  "APIKey",
  "AWSCredentials",
  "AzureAPIKey",
  "AzureCredentials",
  "GCPCredentials",
  "AnthropicAPIKey",
] as const;
export type SecurityPolicyType = (typeof SECURITY_POLICY_TYPES)[number];

/** The sub-object each type requires (and the only one it allows). */
export const POLICY_FIELD: Readonly<Record<SecurityPolicyType, string>> = {
  APIKey: "apiKey",
  AWSCredentials: "awsCredentials",
  AzureAPIKey: "azureAPIKey",
  AzureCredentials: "azureCredentials",
  GCPCredentials: "gcpCredentials",
  AnthropicAPIKey: "anthropicAPIKey",
};

/** Envoy Gateway's OIDC, reduced to what a token exchange uses; its browser-login settings are accepted and unused. */
const oidc = z.strictObject({
  provider: z.strictObject({
    issuer: z.string().min(1),
    authorizationEndpoint: z.string().optional(),
    tokenEndpoint: z.string().optional(),
    endSessionEndpoint: z.string().optional(),
    backendRef: unsupported(),
    backendRefs: unsupported(),
    backendSettings: unsupported(),
  }),
  clientID: z.string().min(1).optional(),
  clientIDRef: secretObjectReference.optional(),
  clientSecret: secretObjectReference,
  scopes: z.array(z.string()).optional(),
  resources: z.array(z.string()).optional(),
  cookieNames: ignored,
  cookieConfig: ignored,
  cookieDomain: ignored,
  redirectURL: ignored,
  denyRedirect: ignored,
  logoutPath: ignored,
  forwardAccessToken: ignored,
  forwardIDToken: ignored,
  defaultTokenTTL: duration.optional(),
  refreshToken: ignored,
  defaultRefreshTokenTTL: ignored,
  csrfTokenTTL: ignored,
  disableTokenEncryption: ignored,
  passThroughAuthHeader: ignored,
});

const oidcExchange = { oidc, grantType: z.string().optional(), aud: z.string().optional() };

const secretRefHolder = z.strictObject({ secretRef: secretObjectReference });

const awsCredentials = z.strictObject({
  region: z.string().min(1),
  credentialsFile: z.strictObject({ secretRef: secretObjectReference, profile: z.string().min(1).optional() })
    .optional(),
  oidcExchangeToken: z.strictObject({ ...oidcExchange, awsRoleArn: z.string().min(1) }).optional(),
});

const azureCredentials = z.strictObject({
  clientID: z.string().min(1).optional(),
  tenantID: z.string().min(1),
  clientSecretRef: secretObjectReference.optional(),
  oidcExchangeToken: z.strictObject(oidcExchange).optional(),
  useManagedIdentity: z.boolean().optional(),
}).superRefine((c, ctx) => {
  const sources = (c.clientSecretRef ? 1 : 0) + (c.oidcExchangeToken ? 1 : 0);
  if (c.useManagedIdentity === true ? sources !== 0 : sources !== 1) {
    ctx.addIssue({
      code: "custom",
      message: c.useManagedIdentity === true
        ? "clientSecretRef and oidcExchangeToken must not be set with useManagedIdentity"
        : "Exactly one of clientSecretRef or oidcExchangeToken must be set",
    });
  }
  if (c.useManagedIdentity !== true && c.clientID === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["clientID"],
      message: "Field is required unless useManagedIdentity is true",
    });
  }
});

const gcpCredentials = z.strictObject({
  projectName: z.string().min(1).optional(),
  region: z.string().min(1).optional(),
  credentialsFile: secretRefHolder.optional(),
  workloadIdentityFederationConfig: z.strictObject({
    projectID: z.string().min(1),
    workloadIdentityProviderName: z.string().min(1),
    workloadIdentityPoolName: z.string().min(1),
    oidcExchangeToken: z.strictObject(oidcExchange),
    serviceAccountImpersonation: z.strictObject({ serviceAccountName: z.string().min(1) }).optional(),
  }).optional(),
  isPassthrough: z.boolean().optional(),
}).superRefine((c, ctx) => {
  if (c.credentialsFile && c.workloadIdentityFederationConfig) {
    ctx.addIssue({ code: "custom", message: "At most one of credentialsFile or workloadIdentityFederationConfig" });
  }
  if (c.isPassthrough !== true) {
    for (const field of ["projectName", "region"] as const) {
      if (c[field] === undefined) {
        ctx.addIssue({ code: "custom", path: [field], message: "Field is required unless isPassthrough is true" });
      }
    }
  }
});

export const backendSecurityPolicySpec = z.strictObject({
  targetRefs: z.array(policyTargetReference).max(16).optional(),
  type: z.enum(SECURITY_POLICY_TYPES),
  apiKey: secretRefHolder.optional(),
  azureAPIKey: secretRefHolder.optional(),
  anthropicAPIKey: secretRefHolder.optional(),
  awsCredentials: awsCredentials.optional(),
  azureCredentials: azureCredentials.optional(),
  gcpCredentials: gcpCredentials.optional(),
  credentialOverride: unsupported(),
}).superRefine((spec, ctx) => {
  const wanted = POLICY_FIELD[spec.type];
  for (const field of Object.values(POLICY_FIELD)) {
    const present = (spec as Record<string, unknown>)[field] !== undefined;
    if (field === wanted && !present) {
      ctx.addIssue({ code: "custom", path: [field], message: `Field is required when type is ${spec.type}` });
    } else if (field !== wanted && present) {
      ctx.addIssue({ code: "custom", path: [field], message: `Field is not allowed when type is ${spec.type}` });
    }
  }
});

export type BackendSecurityPolicySpec = z.output<typeof backendSecurityPolicySpec>;
export type OIDCExchange = z.output<typeof oidc>;

export type SecretObjectRef = z.output<typeof secretObjectReference>;

/** A Secret a policy reads, the key it reads in it (the key names are Envoy AI Gateway's), and where it is named. */
export interface PolicySecretRef {
  readonly path: readonly (string | number)[];
  readonly ref: SecretObjectRef;
  readonly key: string;
}

export function policySecretRefs(spec: BackendSecurityPolicySpec): PolicySecretRef[] {
  const out: PolicySecretRef[] = [];
  const add = (path: (string | number)[], ref: SecretObjectRef | undefined, key: string) => {
    if (ref) out.push({ path: ["spec", ...path], ref, key });
  };
  const addOIDC = (path: (string | number)[], o: OIDCExchange | undefined) => {
    add([...path, "clientSecret"], o?.clientSecret, "client-secret");
    add([...path, "clientIDRef"], o?.clientIDRef, "client-id");
  };
  add(["apiKey", "secretRef"], spec.apiKey?.secretRef, "apiKey");
  add(["azureAPIKey", "secretRef"], spec.azureAPIKey?.secretRef, "apiKey");
  add(["anthropicAPIKey", "secretRef"], spec.anthropicAPIKey?.secretRef, "apiKey");
  add(
    ["awsCredentials", "credentialsFile", "secretRef"],
    spec.awsCredentials?.credentialsFile?.secretRef,
    "credentials",
  );
  addOIDC(["awsCredentials", "oidcExchangeToken", "oidc"], spec.awsCredentials?.oidcExchangeToken?.oidc);
  add(["azureCredentials", "clientSecretRef"], spec.azureCredentials?.clientSecretRef, "client-secret");
  addOIDC(["azureCredentials", "oidcExchangeToken", "oidc"], spec.azureCredentials?.oidcExchangeToken?.oidc);
  add(
    ["gcpCredentials", "credentialsFile", "secretRef"],
    spec.gcpCredentials?.credentialsFile?.secretRef,
    "service_account.json",
  );
  addOIDC(
    ["gcpCredentials", "workloadIdentityFederationConfig", "oidcExchangeToken", "oidc"],
    spec.gcpCredentials?.workloadIdentityFederationConfig?.oidcExchangeToken.oidc,
  );
  return out;
}
