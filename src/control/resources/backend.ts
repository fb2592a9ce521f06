// Backend of gateway.envoyproxy.io/v1alpha1: the addresses behind an AIServiceBackend. TLS is decided without a
// BackendTLSPolicy (out of scope): an endpoint on port 443, or a Backend with spec.tls, is dialled with TLS.
import { z } from "zod";
import { ignored, unsupported } from "./common.ts";

const port = z.number().int().min(0).max(65535);

/** DNS-1123 subdomain, as Envoy Gateway requires for fqdn endpoints. */
const HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const IPV4 = /^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$/;
const IPV6 = /^(([0-9a-fA-F]{1,4}:){1,7}[0-9a-fA-F]{1,4}|::|(([0-9a-fA-F]{1,4}:){0,5})?(:[0-9a-fA-F]{1,4}){1,2})$/;

const endpoint = z.strictObject({
  fqdn: z.strictObject({
    hostname: z.string().max(253).regex(HOSTNAME, "Is not a valid DNS hostname"),
    port,
  }).optional(),
  ip: z.strictObject({
    address: z.string().refine((a) => IPV4.test(a) || IPV6.test(a), "Is not an IPv4 or IPv6 address"),
    port,
  }).optional(),
  unix: unsupported(),
  hostname: unsupported(),
  zone: unsupported(),
}).superRefine((e, ctx) => {
  if ((e.fqdn === undefined) === (e.ip === undefined)) {
    ctx.addIssue({ code: "custom", message: "Exactly one of fqdn or ip must be set" });
  }
});

export const backendSpec = z.strictObject({
  type: z.literal("Endpoints", { error: 'Only type "Endpoints" is supported by Tollgate' }).optional(),
  endpoints: z.array(endpoint).min(1).max(64),
  appProtocols: unsupported(),
  /** Envoy AI Gateway sets endpoint priorities from backendRef priority, which overrides this flag. */
  fallback: ignored,
  tls: z.strictObject({
    wellKnownCACertificates: z.literal("System").optional(),
    caCertificateRefs: unsupported(),
    insecureSkipVerify: unsupported(),
  }).optional(),
}).superRefine((spec, ctx) => {
  const fqdn = spec.endpoints.filter((e) => e.fqdn !== undefined).length;
  if (fqdn > 0 && fqdn < spec.endpoints.length) {
    ctx.addIssue({ code: "custom", path: ["endpoints"], message: "fqdn endpoints cannot be mixed with ip endpoints" });
  }
});

export type BackendSpec = z.output<typeof backendSpec>;
export type BackendEndpoint = BackendSpec["endpoints"][number];
