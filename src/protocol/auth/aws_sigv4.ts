// AWS Signature Version 4 for upstream requests to Bedrock runtime. The signing itself is @smithy/signature-v4, the
// AWS SDK's own signer, so the canonical request (path segments encoded twice, sorted signed headers, payload hash)
// is byte for byte what AWS recomputes on its side.
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HttpRequest, QueryParameterBag } from "@smithy/types";

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface AwsSigningInput {
  readonly method: string;
  /** host[:port] exactly as the request will carry it (:authority); it is signed. */
  readonly host: string;
  /** The path as sent, already percent-encoded, query included. */
  readonly path: string;
  /** Headers to sign. Every one of them must reach AWS unchanged, so pass only those the proxy will not rewrite. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: Uint8Array | string;
  /** Defaults to the region in an AWS host name (bedrock-runtime.<region>.amazonaws.com). */
  readonly region?: string;
  /** The signing name: "bedrock" for Bedrock runtime. */
  readonly service: string;
  readonly credentials: AwsCredentials;
  /** The signing time; injected so that tests (and retries judged by the caller) control it. */
  readonly now?: Date;
}

export class AwsSigningError extends Error {
  override name = "AwsSigningError";
}

const AWS_HOST_REGION = /\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?(?::\d+)?$/;

/** The region named in an AWS endpoint host, e.g. "us-east-1" for bedrock-runtime.us-east-1.amazonaws.com. */
export function regionFromHost(host: string): string | undefined {
  return AWS_HOST_REGION.exec(host.toLowerCase())?.[1];
}

/**
 * Signs one request; returns the headers to add to it: authorization, x-amz-date, x-amz-content-sha256 and, with
 * temporary credentials, x-amz-security-token. Must be called again for every attempt: a signature is only valid for
 * the exact bytes and for a few minutes around `now`.
 */
export async function signAwsRequest(input: AwsSigningInput): Promise<Record<string, string>> {
  const region = input.region ?? regionFromHost(input.host);
  if (region === undefined) {
    throw new AwsSigningError(
      `Cannot sign request for host ${JSON.stringify(input.host)}: no region given and none in the host name`,
    );
  }
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: input.credentials.accessKeyId,
      secretAccessKey: input.credentials.secretAccessKey,
      ...(input.credentials.sessionToken ? { sessionToken: input.credentials.sessionToken } : {}),
    },
    region,
    service: input.service,
    sha256: Sha256,
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers ?? {})) headers[name.toLowerCase()] = value;
  headers["host"] = input.host;
  const { path, query } = splitPath(input.path);
  const { hostname, port } = splitHost(input.host);
  const request: HttpRequest = {
    method: input.method.toUpperCase(),
    protocol: "https:",
    hostname,
    ...(port !== undefined ? { port } : {}),
    path,
    query,
    headers,
    body: input.body,
  };
  const signed = await signer.sign(request, input.now ? { signingDate: input.now } : {});
  const added: Record<string, string> = {};
  for (const name of ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"]) {
    const value = signed.headers[name];
    if (value !== undefined) added[name] = value;
  }
  return added;
}

function splitPath(full: string): { path: string; query: QueryParameterBag } {
  const q = full.indexOf("?");
  if (q < 0) return { path: full, query: {} };
  const query: Record<string, string | string[] | null> = {};
  for (const pair of full.slice(q + 1).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? null : decodeURIComponent(pair.slice(eq + 1));
    const prior = query[key];
    if (prior === undefined || value === null) query[key] = prior ?? value;
    else query[key] = prior === null ? value : [...(Array.isArray(prior) ? prior : [prior]), value];
  }
  return { path: full.slice(0, q), query };
}

function splitHost(host: string): { hostname: string; port?: number } {
  const m = /^(.*):(\d+)$/.exec(host);
  return m ? { hostname: m[1]!, port: Number(m[2]) } : { hostname: host };
}
