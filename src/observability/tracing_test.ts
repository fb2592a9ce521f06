import { throws } from "node:assert/strict";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { ExportResultCode } from "@opentelemetry/core";
import { otlpTracesUrl, RequestTracing } from "./tracing.ts";
import { createLogger } from "./logger.ts";

Deno.test("tracing is off without a flag or an OTLP endpoint in the environment", () => {
  assertEquals(otlpTracesUrl(undefined, {}), undefined);
  assertEquals(otlpTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "  " }), undefined);
});

Deno.test("a base endpoint gets /v1/traces appended; the traces endpoint is used as is", () => {
  assertEquals(otlpTracesUrl("http://collector:4318", {}), "http://collector:4318/v1/traces");
  assertEquals(otlpTracesUrl("http://collector:4318/", {}), "http://collector:4318/v1/traces");
  assertEquals(otlpTracesUrl("http://collector:4318/v1/traces", {}), "http://collector:4318/v1/traces");
  assertEquals(
    otlpTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel:4318/base" }),
    "https://otel:4318/base/v1/traces",
  );
  assertEquals(
    otlpTracesUrl(undefined, {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:4318/custom",
    }),
    "http://traces:4318/custom",
  );
});

Deno.test("the flag wins over the environment, and OTEL_SDK_DISABLED turns environment tracing off", () => {
  assertEquals(
    otlpTracesUrl("http://flag:4318", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://env:4318/v1/traces" }),
    "http://flag:4318/v1/traces",
  );
  assertEquals(
    otlpTracesUrl(undefined, { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://x:4318" }),
    undefined,
  );
});

Deno.test("an endpoint that is not an http(s) URL is refused with where it came from", () => {
  throws(() => otlpTracesUrl("collector:4318", {}), { message: /^--otlp-endpoint: / });
  throws(() => otlpTracesUrl("grpc://collector:4317", {}), { message: /must be an http or https URL/ });
  throws(() => otlpTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "nope" }), {
    message: /^OTEL_EXPORTER_OTLP_ENDPOINT: "nope" is not a URL/,
  });
});

Deno.test("spans the OTLP endpoint refuses are reported in the log, at most once a minute", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "warn", destination: { write: (l: string) => lines.push(JSON.parse(l)) } });
  const failing = {
    export: (_spans: unknown, done: (r: { code: ExportResultCode; error?: Error }) => void) =>
      done({ code: ExportResultCode.FAILED, error: new Error("refused") }),
    shutdown: () => Promise.resolve(),
  };
  const withExporter = new RequestTracing({ url: "http://unused/v1/traces", role: "test", logger, exporter: failing });
  const router = {
    getSnapshot: () => ({
      status: "active",
      context: {
        path: "/v1/chat/completions",
        method: "POST",
        requestHeaders: new Map(),
        startedAt: Date.now(),
        now: Date.now,
        route: undefined,
        snapshot: { backends: new Map(), backendRefs: new Map() },
      },
    }),
  } as unknown as Parameters<RequestTracing["traceAttempt"]>[0]["router"];
  for (const id of ["a", "b"]) {
    withExporter.traceAttempt({ requestId: id, router, backend: undefined, backendRef: undefined });
    withExporter.requestClosed(id, router.getSnapshot().context, undefined, true);
    // A flush reports the failed export; the warning is the operator's signal.
    await withExporter.flush().then(() => assert(false, "the flush should fail"), () => {});
  }
  await withExporter.shutdown();
  const warnings = lines.filter((l) => l.msg === "Cannot export spans over OTLP; they are dropped");
  assertEquals(warnings.map((w) => [w.url, w.lostSpans]), [["http://unused/v1/traces", 2]]);
});
