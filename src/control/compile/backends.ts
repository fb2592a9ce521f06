// AIServiceBackend + its Backend + its BackendSecurityPolicy → CompiledBackend. Credentials stay references to
// Secrets; endpoints get TLS when they listen on 443 or the Backend asks for TLS (BackendTLSPolicy is not read).
import type { AIServiceBackend, Backend, BackendSecurityPolicy } from "../resources/resource.ts";
import { qualifiedName } from "../resources/resource.ts";
import type { OIDCExchange, SecretObjectRef } from "../resources/backend_security_policy.ts";
import type { ResourceLookup } from "../resources/references.ts";
import type {
  CompiledAuth,
  CompiledBackend,
  CompiledBackendRef,
  CompiledOIDC,
  Mutation,
  SecretReference,
} from "./compiled.ts";

const TLS_PORT = 443;

export interface BackendAddress {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
}

export function backendAddresses(backend: Backend): BackendAddress[] {
  const tls = backend.spec.tls !== undefined;
  return backend.spec.endpoints.flatMap((e) => {
    const at = e.fqdn
      ? { host: e.fqdn.hostname, port: e.fqdn.port }
      : e.ip
      ? { host: e.ip.address, port: e.ip.port }
      : [];
    return Array.isArray(at) ? [] : [{ ...at, tls: tls || at.port === TLS_PORT }];
  });
}

export function backendOf(service: AIServiceBackend, index: ResourceLookup): Backend | undefined {
  const ref = service.spec.backendRef;
  return index.get("Backend", ref.namespace ?? service.metadata.namespace, ref.name);
}

/** The policy securing a backend: one that targets it, or (v1alpha1) the one it names. */
export function securityPolicyOf(service: AIServiceBackend, index: ResourceLookup): BackendSecurityPolicy | undefined {
  const ns = service.metadata.namespace;
  const targeting = index.securityPolicyTargeting(ns, service.metadata.name);
  if (targeting) return targeting;
  const ref = "backendSecurityPolicyRef" in service.spec ? service.spec.backendSecurityPolicyRef : undefined;
  return ref ? index.get("BackendSecurityPolicy", ns, ref.name) : undefined;
}

export function compileBackend(
  service: AIServiceBackend,
  index: ResourceLookup,
  refs: readonly CompiledBackendRef[],
): CompiledBackend {
  const { schema, headerMutation, bodyMutation } = service.spec;
  const backend = backendOf(service, index);
  const policy = securityPolicyOf(service, index);
  return {
    name: qualifiedName(service),
    schema: {
      name: schema.name,
      ...(schema.version === undefined ? {} : { version: schema.version }),
      ...(schema.prefix === undefined ? {} : { prefix: schema.prefix }),
    },
    ...(policy ? { auth: compileAuth(policy) } : {}),
    refs,
    endpoints: backend ? backendAddresses(backend) : [],
    ...(headerMutation ? { headerMutation: mutation(headerMutation) } : {}),
    ...(bodyMutation ? { bodyMutation: mutation(bodyMutation) } : {}),
  };
}

export function mutation<T>(m: { set?: T[] | undefined; remove?: string[] | undefined }): Mutation<T> {
  return { set: m.set ?? [], remove: m.remove ?? [] };
}

export function compileAuth(policy: BackendSecurityPolicy): CompiledAuth {
  const ns = policy.metadata.namespace;
  const name = qualifiedName(policy);
  const secret = (ref: SecretObjectRef, key: string): SecretReference => ({
    namespace: ref.namespace ?? ns,
    name: ref.name,
    key,
  });
  const oidc = (
    o: OIDCExchange,
    extra: { grantType?: string | undefined; aud?: string | undefined },
  ): CompiledOIDC => ({
    issuer: o.provider.issuer,
    ...(o.provider.tokenEndpoint === undefined ? {} : { tokenEndpoint: o.provider.tokenEndpoint }),
    ...(o.clientID === undefined ? {} : { clientID: o.clientID }),
    ...(o.clientIDRef === undefined ? {} : { clientIDSecret: secret(o.clientIDRef, "client-id") }),
    clientSecret: secret(o.clientSecret, "client-secret"),
    scopes: o.scopes ?? [],
    ...(extra.grantType === undefined ? {} : { grantType: extra.grantType }),
    ...(extra.aud === undefined ? {} : { aud: extra.aud }),
  });
  const spec = policy.spec;
  // The schema guarantees the sub-object named by `type` is present.
  switch (spec.type) {
    case "APIKey":
    case "AzureAPIKey":
    case "AnthropicAPIKey": {
      const holder = spec.type === "APIKey"
        ? spec.apiKey
        : spec.type === "AzureAPIKey"
        ? spec.azureAPIKey
        : spec.anthropicAPIKey;
      return { type: spec.type, policy: name, secret: secret(holder!.secretRef, "apiKey") };
    }
    case "AWSCredentials": {
      const aws = spec.awsCredentials!;
      const file = aws.credentialsFile;
      const exchange = aws.oidcExchangeToken;
      return {
        type: "AWSCredentials",
        policy: name,
        region: aws.region,
        ...(file
          ? { credentialsFile: { secret: secret(file.secretRef, "credentials"), profile: file.profile ?? "default" } }
          : {}),
        ...(exchange
          ? { oidcExchangeToken: { awsRoleArn: exchange.awsRoleArn, oidc: oidc(exchange.oidc, exchange) } }
          : {}),
      };
    }
    case "AzureCredentials": {
      const azure = spec.azureCredentials!;
      return {
        type: "AzureCredentials",
        policy: name,
        tenantID: azure.tenantID,
        ...(azure.clientID === undefined ? {} : { clientID: azure.clientID }),
        ...(azure.clientSecretRef ? { clientSecret: secret(azure.clientSecretRef, "client-secret") } : {}),
        ...(azure.oidcExchangeToken
          ? { oidcExchangeToken: oidc(azure.oidcExchangeToken.oidc, azure.oidcExchangeToken) }
          : {}),
        useManagedIdentity: azure.useManagedIdentity ?? false,
      };
    }
    case "GCPCredentials": {
      const gcp = spec.gcpCredentials!;
      const wif = gcp.workloadIdentityFederationConfig;
      return {
        type: "GCPCredentials",
        policy: name,
        ...(gcp.projectName === undefined ? {} : { projectName: gcp.projectName }),
        ...(gcp.region === undefined ? {} : { region: gcp.region }),
        ...(gcp.credentialsFile
          ? { credentialsFile: { secret: secret(gcp.credentialsFile.secretRef, "service_account.json") } }
          : {}),
        ...(wif
          ? {
            workloadIdentityFederation: {
              projectID: wif.projectID,
              workloadIdentityPoolName: wif.workloadIdentityPoolName,
              workloadIdentityProviderName: wif.workloadIdentityProviderName,
              ...(wif.serviceAccountImpersonation
                ? { serviceAccountName: wif.serviceAccountImpersonation.serviceAccountName }
                : {}),
              oidc: oidc(wif.oidcExchangeToken.oidc, wif.oidcExchangeToken),
            },
          }
          : {}),
        isPassthrough: gcp.isPassthrough ?? false,
      };
    }
  }
}
