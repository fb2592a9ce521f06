import { Registry } from "prom-client";
import { assertEquals } from "../../test/support/assert.ts";
import { EdgeMetrics } from "./edge_metrics.ts";

async function values(registry: Registry, name: string) {
  const { values } = await registry.getSingleMetric(name)!.get();
  return values.map((v) => [v.labels, v.value]);
}

Deno.test("attempt results name the upstream's status class or the failure", async () => {
  const registry = new Registry();
  const m = new EdgeMetrics(registry);
  m.attempt("r", { kind: "failed", failure: "connect-failure" });
  m.attempt("r", { kind: "failed", failure: "per-try-timeout" });
  m.attempt("r", { kind: "response", response: new Response(null, { status: 503 }) });
  m.attempt("r", { kind: "local", reply: { status: 422, headers: [], body: new Uint8Array(), details: "x" } });
  assertEquals(await values(registry, "tollgate_edge_upstream_attempts_total"), [
    [{ route: "r", result: "connect_failure" }, 1],
    [{ route: "r", result: "per_try_timeout" }, 1],
    [{ route: "r", result: "5xx" }, 1],
    [{ route: "r", result: "local_reply" }, 1],
  ]);
});

Deno.test("a finished request counts its status, retries, rate limiting and local reply", async () => {
  const registry = new Registry();
  const m = new EdgeMetrics(registry, { tenant: { header: "X-User-Id", cap: 1 } });
  assertEquals(m.tenantHeader, "x-user-id");
  const base = { route: "r", seconds: 0.01, attempts: 0, tenant: undefined };
  m.requestStarted();
  m.requestFinished({ ...base, status: 429, details: "request_rate_limited", tenant: "a" });
  m.requestStarted();
  m.requestFinished({ ...base, status: 200, attempts: 3, details: "", tenant: "b" });
  assertEquals(await values(registry, "tollgate_edge_requests_total"), [
    [{ route: "r", code: "429", code_class: "4xx", tenant: "a" }, 1],
    [{ route: "r", code: "200", code_class: "2xx", tenant: "other" }, 1],
  ]);
  assertEquals(await values(registry, "tollgate_edge_upstream_retries_total"), [[{ route: "r" }, 2]]);
  assertEquals(await values(registry, "tollgate_edge_rate_limited_total"), [[{ route: "r" }, 1]]);
  assertEquals(await values(registry, "tollgate_edge_local_replies_total"), [[{ details: "request_rate_limited" }, 1]]);
  assertEquals(await values(registry, "tollgate_edge_requests_active"), [[{}, 0]]);
});
