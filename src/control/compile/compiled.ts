// What compileGateway produces besides the edge topology: the per-backend facts the upstream ExtProc needs (schema,
// credentials by reference, model overrides), the rate-limit rules the RLS serves, and the cost definitions.
import type { EdgeConfig } from "../../edge/config.ts";
import type { ModelInfo } from "../snapshot.ts";
import type { APISchemaName, LLMRequestCostType } from "../resources/ai_gateway_route.ts";
import type { OIDCExchange, SecurityPolicyType } from "../resources/backend_security_policy.ts";
import type { ResourceError } from "../resources/errors.ts";
import type { SemanticRouterConfig } from "../../routing/config.ts";
import type { CompiledRateLimitOptions } from "../resources/rate_limit_options.ts";

/**
 * Endpoint metadata namespace carrying the backend identity, read by the upstream ext_proc filter through the
 * `xds.upstream_host_metadata` attribute. Same namespace and `per_route_rule_backend_name` key (and value format) as
 * Envoy AI Gateway, plus two plainer keys:
 *
 *   "aigateway.envoy.io": {
 *     "per_route_rule_backend_name": "<ns>/<backend>/route/<route>/rule/<i>/ref/<j>",
 *     "backend": "<ns>/<AIServiceBackend name>",
 *     "routeRule": "<ns>/<AIGatewayRoute name>/rule/<i>"
 *   }
 */
export const ENDPOINT_METADATA_NAMESPACE = "aigateway.envoy.io";
/** Dynamic metadata namespace of the AI Gateway filter (costs), the only one the ext_proc filters accept. */
export const AI_GATEWAY_METADATA_NAMESPACE = "io.envoy.ai_gateway";

export interface CompileOptions {
  /** Default: the port of the HTTP listener of the Gateways the routes attach to, else 1975. */
  readonly listenerPort?: number;
  /** Default "0.0.0.0". */
  readonly listenerHost?: string;
  /** gRPC target of the ExtProc sidecar, e.g. "unix:///run/tollgate/extproc.sock". */
  readonly extProcTarget: string;
  /** Required when any BackendTrafficPolicy has global rate limits. */
  readonly rateLimit?: {
    readonly target: string;
    readonly domain: string;
    /** Default 20 ms (Envoy's default). */
    readonly timeoutMs?: number;
    /** Default false, as Envoy Gateway renders it (fail open). */
    readonly failureModeDeny?: boolean;
  };
  /** ext_proc message_timeout for both filters. */
  readonly messageTimeoutMs: number;
  readonly failureModeAllow: boolean;
  /** Default 50 MiB, the buffer Envoy AI Gateway gives request bodies. */
  readonly maxRequestBodyBytes?: number;
  readonly accessLog?: string;
}

export interface SecretReference {
  readonly namespace: string;
  readonly name: string;
  /** The key of the Secret holding the credential (Envoy AI Gateway's key names). */
  readonly key: string;
}

/** Credentials by reference only: a Secret is always named, never copied, even when it came from the same files. */
export type CompiledAuth =
  | {
    readonly type: "APIKey" | "AzureAPIKey" | "AnthropicAPIKey";
    readonly policy: string;
    readonly secret: SecretReference;
  }
  | {
    readonly type: "AWSCredentials";
    readonly policy: string;
    readonly region: string;
    readonly credentialsFile?: { readonly secret: SecretReference; readonly profile: string };
    readonly oidcExchangeToken?: { readonly awsRoleArn: string; readonly oidc: CompiledOIDC };
  }
  | {
    readonly type: "AzureCredentials";
    readonly policy: string;
    readonly tenantID: string;
    readonly clientID?: string;
    readonly clientSecret?: SecretReference;
    readonly oidcExchangeToken?: CompiledOIDC;
    readonly useManagedIdentity: boolean;
  }
  | {
    readonly type: "GCPCredentials";
    readonly policy: string;
    readonly projectName?: string;
    readonly region?: string;
    readonly credentialsFile?: { readonly secret: SecretReference };
    readonly workloadIdentityFederation?: {
      readonly projectID: string;
      readonly workloadIdentityPoolName: string;
      readonly workloadIdentityProviderName: string;
      readonly serviceAccountName?: string;
      readonly oidc: CompiledOIDC;
    };
    readonly isPassthrough: boolean;
  };

export interface CompiledOIDC {
  readonly issuer: string;
  readonly tokenEndpoint?: string;
  readonly clientID?: string;
  readonly clientIDSecret?: SecretReference;
  readonly clientSecret: SecretReference;
  readonly scopes: readonly string[];
  readonly grantType?: string;
  readonly aud?: string;
}
export type { OIDCExchange, SecurityPolicyType };

/** One backendRef of one route rule that points at this backend (the identity in endpoint metadata). */
export interface CompiledBackendRef {
  /** The `per_route_rule_backend_name` value. */
  readonly id: string;
  readonly route: string;
  readonly rule: number;
  readonly modelNameOverride?: string;
  /** Per-backendRef mutations; they win over the backend's own on conflicts (Envoy AI Gateway's rule). */
  readonly headerMutation?: Mutation<{ name: string; value: string }>;
  readonly bodyMutation?: Mutation<{ path: string; value: string }>;
}

export interface Mutation<T> {
  readonly set: readonly Readonly<T>[];
  readonly remove: readonly string[];
}

export interface CompiledBackend {
  /** "namespace/name" of the AIServiceBackend. */
  readonly name: string;
  readonly schema: { readonly name: APISchemaName; readonly version?: string; readonly prefix?: string };
  readonly auth?: CompiledAuth;
  readonly refs: readonly CompiledBackendRef[];
  readonly endpoints: readonly { readonly host: string; readonly port: number; readonly tls: boolean }[];
  readonly headerMutation?: {
    readonly set: readonly { name: string; value: string }[];
    readonly remove: readonly string[];
  };
  readonly bodyMutation?: {
    readonly set: readonly { path: string; value: string }[];
    readonly remove: readonly string[];
  };
}

export type RateLimitUnitName = "second" | "minute" | "hour" | "day" | "week" | "month" | "year";

/** One limit for the rate limit service: the descriptor chain Envoy sends for it and the budget. */
export interface RateLimitRule {
  readonly domain: string;
  /** "namespace/name" of the BackendTrafficPolicy and the index of the rule in it. */
  readonly policy: string;
  readonly ruleIndex: number;
  /** The route whose rate_limits carry this rule (Envoy Gateway keys counters per route). */
  readonly route: string;
  /** Outer to inner, as envoyproxy/ratelimit nests them; a descriptor without value matches any value. */
  readonly descriptors: readonly { readonly key: string; readonly value?: string }[];
  readonly limit: { readonly requests: number; readonly unit: RateLimitUnitName };
  readonly shadowMode: boolean;
}

export interface CompiledCost {
  /** "namespace/name" of the AIGatewayRoute. */
  readonly route: string;
  readonly metadataKey: string;
  readonly type: LLMRequestCostType;
  readonly cel?: string;
}

export interface CompiledGateway {
  readonly edge: EdgeConfig;
  readonly models: readonly ModelInfo[];
  readonly backends: readonly CompiledBackend[];
  readonly rateLimitRules: readonly RateLimitRule[];
  readonly llmRequestCosts: readonly CompiledCost[];
  /** SemanticRouters (tollgate.dev), compiled; their trigger models (e.g. "auto") are in `models`. */
  readonly semanticRouters?: readonly SemanticRouterConfig[];
  /** The RateLimitOptions (tollgate.dev/v1alpha1), when the configuration has one: calendar windows, reservation. */
  readonly rateLimitOptions?: CompiledRateLimitOptions;
}

export type CompileResult =
  | ({ readonly ok: true } & CompiledGateway)
  | { readonly ok: false; readonly errors: readonly ResourceError[] };
