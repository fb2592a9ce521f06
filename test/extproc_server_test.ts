import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { startExtProc } from "./support/extproc_fixture.ts";
import { bodyRequest, headersRequest } from "../src/protocol/ext_proc_request.ts";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../src/protocol/gen/grpc/health/v1/health.ts";
import type { ExtProcTestClient } from "./support/extproc_client.ts";

const decoder = new TextDecoder();
const chatHeaders = { ":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json" };
const chatBody = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });

async function lifecycle(client: ExtProcTestClient): Promise<void> {
  const router = client.open("router");
  await router.exchange(headersRequest("requestHeaders", chatHeaders));
  const routed = await router.exchange(bodyRequest("requestBody", chatBody));
  const v = routed.response?.value as {
    response?: { headerMutation?: { setHeaders: { header?: { key: string; rawValue: Uint8Array } }[] } };
  };
  const id = v.response?.headerMutation?.setHeaders.find((h) => h.header?.key === "x-tollgate-request-id")?.header
    ?.rawValue;
  const attempt = client.open("upstream");
  await attempt.exchange(
    headersRequest("requestHeaders", { ...chatHeaders, "x-tollgate-request-id": decoder.decode(id) }),
  );
  await router.exchange(headersRequest("responseHeaders", { ":status": "200" }));
  await router.exchange(bodyRequest("responseBody", "{}"));
  const [r, a] = await Promise.all([router.ended, attempt.ended]);
  if (r.code !== 0 || a.code !== 0) throw new Error(`stream ended with ${r.code}/${a.code}`);
}

Deno.test("10,000 streams leave no stream, actor or registry entry behind", async () => {
  await using fx = await startExtProc("unix");
  const total = 10_000;
  const concurrency = 50;
  let next = 0;
  // Each lifecycle is a router stream plus an attempt stream: 10,000 streams in all.
  const worker = async () => {
    while (next < total / 2) {
      next++;
      await lifecycle(fx.client);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  assertEquals(fx.server.openStreams, 0);
  assertEquals(fx.server.registeredRouters, 0);
  const metrics = await fx.registry.getSingleMetricAsString("tollgate_extproc_streams_finished_total");
  assertMatch(metrics, /role="router",outcome="done"} 5000/);
  assertMatch(metrics, /role="attempt",outcome="done"} 5000/);
  const active = await fx.registry.getSingleMetricAsString("tollgate_extproc_streams_active");
  assertMatch(active, /role="router"} 0/);
});

Deno.test("a message out of order ends the gRPC stream with INVALID_ARGUMENT and a clear message", async () => {
  await using fx = await startExtProc();
  const s = fx.client.open();
  s.write(bodyRequest("requestBody", chatBody));
  const end = await s.ended;
  assertEquals(end.code, grpc.status.INVALID_ARGUMENT);
  assertEquals(end.details, "Protocol violation: received requestBody while in requestHeaders");
  assertEquals(fx.server.openStreams, 0);
});

Deno.test("an empty ProcessingRequest is a protocol violation", async () => {
  await using fx = await startExtProc();
  const s = fx.client.open();
  s.write({ request: undefined, metadataContext: undefined, attributes: {}, observabilityMode: false });
  assertEquals((await s.ended).code, grpc.status.INVALID_ARGUMENT);
});

Deno.test("a half-close from Envoy mid-request ends the stream cleanly and frees it", async () => {
  await using fx = await startExtProc();
  const s = fx.client.open();
  await s.exchange(headersRequest("requestHeaders", chatHeaders));
  assertEquals(fx.server.registeredRouters, 1);
  assertEquals((await s.end()).code, 0);
  assertEquals(fx.server.openStreams, 0);
  assertEquals(fx.server.registeredRouters, 0);
  assertMatch(
    await fx.registry.getSingleMetricAsString("tollgate_extproc_streams_finished_total"),
    /outcome="aborted"} 1/,
  );
});

Deno.test("a cancelled stream is torn down on the server", async () => {
  await using fx = await startExtProc();
  const s = fx.client.open();
  await s.exchange(headersRequest("requestHeaders", chatHeaders));
  s.cancel();
  for (let i = 0; i < 100 && fx.server.openStreams > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assertEquals(fx.server.openStreams, 0);
  assertEquals(fx.server.registeredRouters, 0);
});

Deno.test("in observability mode the server sends no responses", async () => {
  await using fx = await startExtProc();
  const s = fx.client.open();
  s.write({ ...headersRequest("requestHeaders", chatHeaders), observabilityMode: true });
  s.write({ ...bodyRequest("requestBody", chatBody), observabilityMode: true });
  const end = await s.end();
  assertEquals(end.code, 0);
  assertEquals(await s.next().then(() => "response", () => "none"), "none");
});

Deno.test("GET /v1/models is answered with an immediate 200 in OpenAI's list format", async () => {
  await using fx = await startExtProc();
  const s = fx.client.open();
  const r = await s.exchange(headersRequest("requestHeaders", { ":method": "GET", ":path": "/v1/models" }, true));
  assert(r.response?.$case === "immediateResponse");
  assertEquals(r.response.value.status?.code, 200);
  const body = JSON.parse(decoder.decode(r.response.value.body));
  assertEquals(body.data.map((m: { id: string }) => m.id), ["gpt-4o-mini", "tollgate-echo"]);
  assertEquals((await s.ended).code, 0);
});

Deno.test("grpc.health.v1 reports SERVING for the server and the ExtProc service, NOT_FOUND for others", async () => {
  await using fx = await startExtProc();
  const health = new HealthClient(fx.target, grpc.credentials.createInsecure());
  const check = (service: string) =>
    new Promise<{ status?: number; code?: number }>((resolve) =>
      health.check({ service }, (err, res) => resolve(err ? { code: err.code } : { status: res.status }))
    );
  assertEquals(await check(""), { status: HealthCheckResponse_ServingStatus.SERVING });
  assertEquals(await check("envoy.service.ext_proc.v3.ExternalProcessor"), {
    status: HealthCheckResponse_ServingStatus.SERVING,
  });
  assertEquals(await check("nope"), { code: grpc.status.NOT_FOUND });
  health.close();
});

Deno.test("the per-phase latency histogram and message counters record each phase", async () => {
  await using fx = await startExtProc();
  await lifecycle(fx.client);
  const text = await fx.registry.metrics();
  for (const phase of ["requestHeaders", "requestBody", "responseHeaders", "responseBody"]) {
    assertMatch(
      text,
      new RegExp(`tollgate_extproc_phase_duration_seconds_count\\{role="router",phase="${phase}"\\} 1`),
    );
  }
  assertMatch(text, /tollgate_extproc_messages_total\{role="attempt",phase="requestHeaders"\} 1/);
});
