import { createActor, waitFor } from "xstate";
import { assertEquals } from "../../test/support/assert.ts";
import { attemptStreamMachine } from "./attempt_stream.ts";
import { routerStreamMachine } from "./router_stream.ts";
import { type StreamEmitted, toEnvoyEvent } from "./envoy_events.ts";
import { type ProcessingResponse, routerProcessingMode } from "../protocol/ext_proc.ts";
import { bodyRequest, headersRequest } from "../protocol/ext_proc_request.ts";
import {
  type BackendInfo,
  buildSnapshot,
  defaultSnapshot,
  type GatewaySnapshot,
  modelInfo,
} from "../control/snapshot.ts";
import type { UpstreamCredentials } from "./prepare_upstream.ts";

const decoder = new TextDecoder();
const credentials: UpstreamCredentials = {
  bearerFromFile: () => Promise.resolve("Bearer file-token"),
  now: () => new Date("2026-11-21T00:00:00Z"),
};

function router(snapshot: GatewaySnapshot = defaultSnapshot(), body = `{"model":"tollgate-echo","messages":[]}`) {
  const actor = createActor(routerStreamMachine, {
    id: "r",
    input: { streamId: "req-7", snapshot, mode: routerProcessingMode(), maxBodyBytes: 1 << 20 },
  });
  actor.start();
  actor.send(toEnvoyEvent(headersRequest("requestHeaders", { ":method": "POST", ":path": "/v1/chat/completions" }))!);
  actor.send(toEnvoyEvent(bodyRequest("requestBody", body))!);
  return actor;
}

async function attempt(
  findRouter: (id: string) => ReturnType<typeof router> | undefined,
  headers: Record<string, string>,
  metadata?: Record<string, string>,
) {
  const emitted: StreamEmitted[] = [];
  const actor = createActor(attemptStreamMachine, { id: "a", input: { streamId: "a", findRouter, credentials } });
  actor.on("*", (e) => emitted.push(e as StreamEmitted));
  actor.start();
  const req = headersRequest("requestHeaders", headers);
  if (metadata) {
    req.attributes = {
      "envoy.filters.http.ext_proc": {
        "xds.upstream_host_metadata": { filter_metadata: { "aigateway.envoy.io": metadata } },
      },
    };
  }
  actor.send(toEnvoyEvent(req)!);
  await waitFor(actor, (s) => s.status === "done");
  return { actor, emitted };
}

function mutation(r: StreamEmitted | undefined) {
  const response = (r as { response: ProcessingResponse }).response;
  const common = (response.response?.value as {
    response?: {
      status: number;
      headerMutation?: { setHeaders: { header?: { key: string; rawValue: Uint8Array } }[]; removeHeaders: string[] };
      bodyMutation?: { mutation?: { $case: string; value: Uint8Array } };
    };
  }).response;
  return {
    set: Object.fromEntries(
      (common?.headerMutation?.setHeaders ?? []).map((h) => [h.header!.key, decoder.decode(h.header!.rawValue)]),
    ),
    remove: common?.headerMutation?.removeHeaders ?? [],
    body: common?.bodyMutation?.mutation ? decoder.decode(common.bodyMutation.mutation.value as Uint8Array) : undefined,
    metadata: response.dynamicMetadata,
  };
}

Deno.test("attemptStreamMachine joins its router by request id, tells it the attempt's backend, strips the internal header", async () => {
  const r = router();
  const a = await attempt((id) => (id === "req-7" ? r : undefined), {
    ":path": "/v1/chat/completions",
    "x-tollgate-request-id": "req-7",
  }, { backend: "default/none" });
  assertEquals(a.actor.getSnapshot().value, "done");
  assertEquals([r.getSnapshot().context.attempts, r.getSnapshot().context.backend], [1, "default/none"]);
  assertEquals(mutation(a.emitted[0]).remove, ["x-tollgate-request-id"]);
});

Deno.test("attemptStreamMachine answers 500 when no router stream matches the request id", async () => {
  const a = await attempt(() => undefined, { "x-tollgate-request-id": "nope" });
  const reply = a.emitted[0] as { response: ProcessingResponse };
  assertEquals(reply.response.response?.$case, "immediateResponse");
  assertEquals(a.actor.getSnapshot().output?.failure, "no router stream for request nope");
});

Deno.test("attemptStreamMachine treats a body before its headers as a protocol violation", () => {
  const emitted: StreamEmitted[] = [];
  const actor = createActor(attemptStreamMachine, {
    id: "a",
    input: { streamId: "a", findRouter: () => undefined, credentials },
  });
  actor.on("*", (e) => emitted.push(e as StreamEmitted));
  actor.start();
  actor.send(toEnvoyEvent(bodyRequest("requestBody", "{}"))!);
  assertEquals(emitted, [{
    type: "violation",
    message:
      "Protocol violation: received requestBody on an upstream attempt stream, which expects only its request headers",
  }]);
});

function snapshotWith(backend: BackendInfo, override?: string) {
  return buildSnapshot(1, {
    models: [modelInfo("gpt-4o")],
    backends: [backend],
    backendRefs: [{ id: "ref-1", backend: backend.name, ...(override ? { modelNameOverride: override } : {}) }],
  });
}

Deno.test("attemptStreamMachine translates for the chosen backend: Azure path, model override, api-key, replaced body", async () => {
  const snapshot = snapshotWith({
    name: "default/azure",
    schema: { name: "AzureOpenAI", version: "2025-01-01-preview" },
    auth: { kind: "header", header: "api-key", value: "secret-1" },
    bodyMutation: { set: [{ path: "temperature", value: "0.1" }], remove: ["user"] },
  }, "my-deployment");
  const r = router(snapshot, `{"model":"gpt-4o","messages":[],"user":"u1"}`);
  const a = await attempt((id) => (id === "req-7" ? r : undefined), {
    ":path": "/v1/chat/completions",
    "x-tollgate-request-id": "req-7",
    authorization: "Bearer client-key",
  }, { backend: "default/azure", per_route_rule_backend_name: "ref-1" });
  const m = mutation(a.emitted[0]);
  assertEquals(m.set, {
    "content-type": "application/json",
    ":path": "/openai/deployments/my-deployment/chat/completions?api-version=2025-01-01-preview",
    "api-key": "secret-1",
  });
  assertEquals(m.remove, ["x-tollgate-request-id", "authorization", "x-api-key"]);
  assertEquals(JSON.parse(m.body!), { model: "my-deployment", messages: [], temperature: 0.1 });
  assertEquals(m.metadata, { "io.envoy.ai_gateway": { content_length: m.body!.length } });
});

Deno.test("attemptStreamMachine leaves an unchanged OpenAI body alone and adds the bearer token from a rotated file", async () => {
  const snapshot = snapshotWith({
    name: "default/openai",
    schema: { name: "OpenAI" },
    auth: { kind: "bearerFile", path: "/var/run/token" },
  });
  const r = router(snapshot, `{"model":"gpt-4o","messages":[]}`);
  const a = await attempt((id) => (id === "req-7" ? r : undefined), {
    ":path": "/v1/chat/completions",
    "x-tollgate-request-id": "req-7",
  }, { backend: "default/openai", per_route_rule_backend_name: "ref-1" });
  const m = mutation(a.emitted[0]);
  assertEquals(m.body, undefined);
  assertEquals(m.set.authorization, "Bearer file-token");
});

Deno.test("attemptStreamMachine answers 422 in the client's format when the backend cannot serve the endpoint", async () => {
  const snapshot = snapshotWith({ name: "default/cohere", schema: { name: "Cohere" } });
  const r = router(snapshot, `{"model":"gpt-4o","messages":[]}`);
  const a = await attempt((id) => (id === "req-7" ? r : undefined), {
    ":path": "/v1/chat/completions",
    "x-tollgate-request-id": "req-7",
  }, { backend: "default/cohere" });
  const reply = a.emitted[0] as { response: ProcessingResponse };
  const v = reply.response.response;
  assertEquals(v?.$case, "immediateResponse");
  if (v?.$case === "immediateResponse") {
    assertEquals(v.value.status?.code, 422);
    assertEquals(
      JSON.parse(decoder.decode(v.value.body)).error.message,
      "The backend default/cohere (Cohere) cannot serve chatCompletions",
    );
  }
});
