// Builders for the ProcessingRequest messages a proxy sends (the edge, the test client and the benchmark use
// them). Header values go in raw_value, as Envoy sends them.
import type { ProcessingRequest } from "./gen/envoy/service/ext_proc/v3/external_processor.ts";

const encoder = new TextEncoder();

export function headersRequest(
  phase: "requestHeaders" | "responseHeaders",
  headers: Readonly<Record<string, string>> | Iterable<readonly [string, string]>,
  endOfStream = false,
): ProcessingRequest {
  const entries = Symbol.iterator in headers ? [...headers] : Object.entries(headers);
  return {
    request: {
      $case: phase,
      value: {
        headers: { headers: entries.map(([key, v]) => ({ key, value: "", rawValue: encoder.encode(v) })) },
        attributes: {},
        endOfStream,
      },
    },
    metadataContext: undefined,
    attributes: {},
    observabilityMode: false,
  };
}

export function bodyRequest(
  phase: "requestBody" | "responseBody",
  body: Uint8Array | string,
  endOfStream = true,
): ProcessingRequest {
  return {
    request: { $case: phase, value: { body: typeof body === "string" ? encoder.encode(body) : body, endOfStream } },
    metadataContext: undefined,
    attributes: {},
    observabilityMode: false,
  };
}
