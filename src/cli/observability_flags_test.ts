import { throws } from "node:assert/strict";
import { assertEquals } from "../../test/support/assert.ts";
import { parseFlags, UsageError } from "./args.ts";
import { OBSERVABILITY_FLAGS, observabilityOptions } from "./observability_flags.ts";

const parse = (args: string[], env: Record<string, string> = {}) =>
  observabilityOptions("run", parseFlags("run", args, OBSERVABILITY_FLAGS), env);

Deno.test("observability is off by default: no tracing, no tenant label", () => {
  assertEquals(parse([]), { otlpTracesUrl: undefined, tenant: undefined, serviceName: "tollgate" });
});

Deno.test("observability flags: OTLP endpoint, tenant header (lower-cased) and cap, service name from OTEL_SERVICE_NAME", () => {
  assertEquals(
    parse(
      ["--otlp-endpoint", "http://otel:4318", "--metrics-tenant-header", "X-User-Id", "--metrics-tenant-cap", "7"],
      {
        OTEL_SERVICE_NAME: "edge-gw",
      },
    ),
    { otlpTracesUrl: "http://otel:4318/v1/traces", tenant: { header: "x-user-id", cap: 7 }, serviceName: "edge-gw" },
  );
  assertEquals(
    parse([], { OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318" }).otlpTracesUrl,
    "http://otel:4318/v1/traces",
  );
});

Deno.test("bad observability flags are usage errors", () => {
  throws(() => parse(["--otlp-endpoint", "otel:4318"]), { name: "UsageError", message: /--otlp-endpoint/ });
  throws(() => parse(["--metrics-tenant-header", "x user"]), { name: "UsageError", message: /header name/ });
  throws(() => parse(["--metrics-tenant-cap", "5"]), { name: "UsageError", message: /needs --metrics-tenant-header/ });
  throws(() => parse(["--metrics-tenant-header", "x-user-id", "--metrics-tenant-cap", "0"]), UsageError);
});
