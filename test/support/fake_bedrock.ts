// A local HTTP server standing in for Bedrock runtime (127.0.0.1, random port). Like AWS, it checks the SigV4
// signature of every request before anything else: it recomputes it with @smithy/signature-v4 over the method, path,
// signed headers and body it received, at the x-amz-date the client signed, and refuses a missing or wrong one with
// 403 in Bedrock's error shape. Accepted requests are recorded and answered by the test's handlers; streams are
// encoded as AWS event-stream frames.
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentials } from "../../src/protocol/auth/aws_sigv4.ts";
import { encodeAwsEvent } from "../../src/protocol/aws_event_stream.ts";

export type BedrockOperation = "converse" | "converse-stream" | "invoke";

export interface BedrockCall {
  readonly operation: BedrockOperation;
  readonly modelId: string;
  /** The path as received, still percent-encoded. */
  readonly path: string;
  readonly headers: Headers;
  readonly body: unknown;
}

/** One frame of a ConverseStream answer: an event (messageStart, contentBlockDelta, ...) or an exception. */
export type FakeStreamEvent =
  | { readonly event: string; readonly payload: unknown }
  | { readonly exception: string; readonly payload: unknown };

/** Each handler returns the answer's JSON (or frames), or a Response to send exactly that. */
export interface FakeBedrockHandlers {
  converse?(call: BedrockCall): unknown;
  converseStream?(call: BedrockCall): readonly FakeStreamEvent[] | Response;
  invoke?(call: BedrockCall): unknown;
}

export interface FakeBedrockOptions {
  /** The one key pair this Bedrock knows. */
  readonly credentials: AwsCredentials;
  readonly region?: string;
  readonly handlers: FakeBedrockHandlers;
}

export interface FakeBedrock extends AsyncDisposable {
  readonly port: number;
  /** 127.0.0.1:port, as clients sign it. */
  readonly host: string;
  readonly url: string;
  readonly region: string;
  readonly calls: BedrockCall[];
  /** Requests refused for their signature: the error type AWS would name. */
  readonly rejected: string[];
  shutdown(): Promise<void>;
}

const encoder = new TextEncoder();
const ROUTE = /^\/model\/([^/]+)\/(converse|converse-stream|invoke)$/;

export function startFakeBedrock(options: FakeBedrockOptions): Promise<FakeBedrock> {
  const region = options.region ?? "us-east-1";
  const calls: BedrockCall[] = [];
  const rejected: string[] = [];
  let requests = 0;
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (addr) => {
        const port = (addr as Deno.NetAddr).port;
        resolve({
          port,
          host: `127.0.0.1:${port}`,
          url: `http://127.0.0.1:${port}`,
          region,
          calls,
          rejected,
          shutdown: () => server.shutdown(),
          [Symbol.asyncDispose]: () => server.shutdown(),
        });
      },
    }, async (req) => {
      const requestId = `fake-bedrock-${++requests}`;
      const url = new URL(req.url);
      const body = new Uint8Array(await req.arrayBuffer());
      const refusal = await verifySignature(req, url, body, options.credentials, region);
      if (refusal) {
        rejected.push(refusal.type);
        return awsError(403, refusal.type, refusal.message, requestId);
      }
      const route = ROUTE.exec(url.pathname);
      if (req.method !== "POST" || !route) {
        return awsError(404, "UnknownOperationException", `No operation at ${req.method} ${url.pathname}`, requestId);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(body));
      } catch {
        return awsError(400, "ValidationException", "The request body is not JSON", requestId);
      }
      const call = {
        operation: route[2] as BedrockOperation,
        modelId: decodeURIComponent(route[1]!),
        path: url.pathname,
        headers: req.headers,
        body: parsed,
      };
      calls.push(call);
      return answer(call, options.handlers, requestId);
    });
  });
}

function answer(call: BedrockCall, handlers: FakeBedrockHandlers, requestId: string): Response {
  const handler = call.operation === "converse"
    ? handlers.converse
    : call.operation === "invoke"
    ? handlers.invoke
    : handlers.converseStream;
  if (!handler) return awsError(400, "ValidationException", `The fake has no ${call.operation} handler`, requestId);
  const result = handler(call);
  if (result instanceof Response) return result;
  if (call.operation !== "converse-stream") {
    return new Response(JSON.stringify(result), {
      headers: { "content-type": "application/json", "x-amzn-requestid": requestId },
    });
  }
  const frames = (result as readonly FakeStreamEvent[]).map(frame);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const f of frames) controller.enqueue(f);
      controller.close();
    },
  });
  return new Response(stream, {
    headers: { "content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": requestId },
  });
}

/** Encodes one ConverseStream frame. */
export function frame(e: FakeStreamEvent): Uint8Array {
  const payload = encoder.encode(JSON.stringify(e.payload));
  return "event" in e ? encodeAwsEvent(e.event, payload) : encodeAwsEvent(e.exception, payload, "exception");
}

/** Bedrock's error answer: the type in x-amzn-errortype, {"message"} in the body. */
export function awsError(status: number, type: string, message: string, requestId = "fake-bedrock"): Response {
  return new Response(JSON.stringify({ message }), {
    status,
    headers: {
      "content-type": "application/json",
      "x-amzn-errortype": `${type}:http://internal.amazon.com/coral/com.amazon.coral.service/`,
      "x-amzn-requestid": requestId,
    },
  });
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;:-]+), ?Signature=([0-9a-f]{64})$/;

async function verifySignature(
  req: Request,
  url: URL,
  body: Uint8Array,
  credentials: AwsCredentials,
  region: string,
): Promise<{ type: string; message: string } | undefined> {
  const auth = req.headers.get("authorization");
  if (!auth) return { type: "MissingAuthenticationTokenException", message: "Missing Authentication Token" };
  const m = AUTHORIZATION.exec(auth);
  const amzDate = req.headers.get("x-amz-date") ?? "";
  if (!m || !/^\d{8}T\d{6}Z$/.test(amzDate) || !amzDate.startsWith(m[2]!)) {
    return { type: "IncompleteSignatureException", message: "Authorization header or x-amz-date is malformed" };
  }
  const [, keyId, , scopeRegion, service, signedHeaders, signature] = m;
  const token = req.headers.get("x-amz-security-token") ?? undefined;
  if (keyId !== credentials.accessKeyId || token !== credentials.sessionToken) {
    return { type: "UnrecognizedClientException", message: "The security token included in the request is invalid." };
  }
  if (scopeRegion !== region || service !== "bedrock") {
    return { type: "InvalidSignatureException", message: `Credential should be scoped to ${region}/bedrock` };
  }
  const names = signedHeaders!.split(";");
  const headers: Record<string, string> = {};
  for (const name of names) {
    // Over HTTP/2 the AWS SDK signs the :authority pseudo-header in place of host.
    const value = name === ":authority" ? url.host : req.headers.get(name);
    if (value === null) return { type: "InvalidSignatureException", message: `Signed header ${name} is missing` };
    headers[name] = value;
  }
  // The signer trusts a payload hash header as given, so it is checked against the body here.
  const declared = req.headers.get("x-amz-content-sha256");
  if (
    !(names.includes("host") || names.includes(":authority")) ||
    (declared !== null && declared !== await sha256Hex(body))
  ) {
    return { type: "InvalidSignatureException", message: "The host or the payload hash is not signed right" };
  }
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => query[k] = v);
  const signer = new SignatureV4({ credentials, region, service: "bedrock", sha256: Sha256, applyChecksum: false });
  const d = amzDate;
  const signingDate = new Date(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 11)}:${d.slice(11, 13)}:${d.slice(13)}`);
  const expected = await signer.sign(
    { method: req.method, protocol: "http:", hostname: url.hostname, path: url.pathname, query, headers, body },
    { signingDate, signableHeaders: new Set(names) },
  );
  if (expected.headers["authorization"]?.endsWith(`Signature=${signature}`)) return undefined;
  return {
    type: "InvalidSignatureException",
    message: "The request signature we calculated does not match the signature you provided. " +
      "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
  };
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const hash = new Sha256();
  hash.update(bytes);
  return [...await hash.digest()].map((b) => b.toString(16).padStart(2, "0")).join("");
}
