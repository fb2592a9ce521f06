// Core v1 Secret and the Gateway API Gateway/GatewayClass. Tollgate reads a Gateway only for its HTTP listener
// port; the rest of the listener is accepted so real manifests load.
import { z } from "zod";
import { ignored } from "./common.ts";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Secret data keys: alphanumerics, '-', '_' and '.' (Kubernetes' rule). */
const secretKey = z.string().regex(/^[-._a-zA-Z0-9]+$/, "Is not a valid Secret key");

export const secretBody = {
  type: z.string().optional(),
  immutable: z.boolean().optional(),
  data: z.record(
    secretKey,
    z.string().refine((v) => BASE64.test(v.replace(/\s+/g, "")), "Is not valid base64"),
  ).optional(),
  stringData: z.record(secretKey, z.string()).optional(),
};

export interface SecretData {
  readonly data?: Readonly<Record<string, string>> | undefined;
  readonly stringData?: Readonly<Record<string, string>> | undefined;
}

/** The keys a Secret will hold once applied: stringData is merged over data, as the API server does. */
export function secretKeys(secret: SecretData): Set<string> {
  return new Set([...Object.keys(secret.data ?? {}), ...Object.keys(secret.stringData ?? {})]);
}

/** The decoded value of one key; only for the component that injects credentials, never for configs or logs. */
export function secretValue(secret: SecretData, key: string): string | undefined {
  const plain = secret.stringData?.[key];
  if (plain !== undefined) return plain;
  const encoded = secret.data?.[key];
  if (encoded === undefined) return undefined;
  const bytes = Uint8Array.from(atob(encoded.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

const listener = z.strictObject({
  name: z.string().min(1),
  hostname: z.string().optional(),
  port: z.number().int().min(1).max(65535),
  protocol: z.string().min(1),
  tls: ignored,
  allowedRoutes: ignored,
});

export const gatewaySpec = z.strictObject({
  gatewayClassName: z.string().min(1),
  listeners: z.array(listener).min(1).max(64),
  addresses: ignored,
  infrastructure: ignored,
  backendTLS: ignored,
});

export const gatewayClassSpec = z.strictObject({
  controllerName: z.string().min(1),
  parametersRef: ignored,
  description: z.string().optional(),
});

export type GatewaySpec = z.output<typeof gatewaySpec>;
export type GatewayClassSpec = z.output<typeof gatewayClassSpec>;
