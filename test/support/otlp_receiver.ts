// A local OTLP/HTTP trace receiver for tests: what an OpenTelemetry Collector's otlphttp receiver does for
// POST /v1/traces with the JSON encoding (the one @opentelemetry/exporter-trace-otlp-http sends), gzip or not.
// Spans are flattened with their resource attributes. Protobuf bodies are refused with 415, so a test that
// misconfigures its exporter fails loudly instead of seeing no spans.
// https://opentelemetry.io/docs/specs/otlp/#otlphttp

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** "" for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly status: number;
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  readonly resource: Readonly<Record<string, unknown>>;
  readonly scope: string;
}

export interface OtlpReceiver extends AsyncDisposable {
  /** The base URL, e.g. http://127.0.0.1:4318 (spans go to <url>/v1/traces). */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Content types of the export requests received. */
  readonly contentTypes: string[];
  /** Resolves once `count` spans have arrived, or rejects after `timeoutMs`. */
  waitForSpans(count: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  shutdown(): Promise<void>;
}

interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
  bytesValue?: string;
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  attributes?: KeyValue[];
  status?: { code?: number };
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
}
interface ExportTraceServiceRequest {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: { scope?: { name?: string }; spans?: JsonSpan[] }[];
  }[];
}

function anyValue(v: AnyValue | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
  if (v.kvlistValue) return attributes(v.kvlistValue.values);
  return v.bytesValue;
}

function attributes(kvs: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

function flatten(req: ExportTraceServiceRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? "",
          name: s.name,
          kind: s.kind ?? 0,
          attributes: attributes(s.attributes),
          status: s.status?.code ?? 0,
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
          resource,
          scope: ss.scope?.name ?? "",
        });
      }
    }
  }
  return out;
}

async function readBody(req: Request): Promise<string> {
  if (!req.body) return "";
  const encoding = req.headers.get("content-encoding")?.toLowerCase();
  const stream = encoding === "gzip" ? req.body.pipeThrough(new DecompressionStream("gzip")) : req.body;
  return await new Response(stream).text();
}

export function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (req.method !== "POST" || url.pathname !== "/v1/traces") return new Response("Not found\n", { status: 404 });
    const type = req.headers.get("content-type") ?? "";
    contentTypes.push(type);
    if (!type.startsWith("application/json")) {
      await req.body?.cancel();
      return new Response("This test receiver only reads OTLP JSON\n", { status: 415 });
    }
    let parsed: ExportTraceServiceRequest;
    try {
      parsed = JSON.parse(await readBody(req));
    } catch (e) {
      return new Response(`Bad OTLP JSON: ${(e as Error).message}\n`, { status: 400 });
    }
    spans.push(...flatten(parsed));
    for (const w of [...waiters]) {
      if (spans.length >= w.count) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    return Response.json({ partialSuccess: {} });
  };
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (addr) => {
        const url = `http://127.0.0.1:${(addr as Deno.NetAddr).port}`;
        resolve({
          url,
          spans,
          contentTypes,
          waitForSpans(count, timeoutMs = 10_000) {
            if (spans.length >= count) return Promise.resolve(spans);
            return new Promise((ok, fail) => {
              const timer = setTimeout(() => {
                waiters.splice(waiters.indexOf(waiter), 1);
                fail(new Error(`Expected ${count} spans, received ${spans.length} within ${timeoutMs} ms`));
              }, timeoutMs);
              const waiter = {
                count,
                resolve: () => {
                  clearTimeout(timer);
                  ok(spans);
                },
              };
              waiters.push(waiter);
            });
          },
          shutdown: () => server.shutdown(),
          [Symbol.asyncDispose]: () => server.shutdown(),
        });
      },
    }, handle);
  });
}
