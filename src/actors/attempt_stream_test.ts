import { createActor } from "xstate";
import { assertEquals } from "../../test/support/assert.ts";
import { attemptStreamMachine } from "./attempt_stream.ts";
import { routerStreamMachine } from "./router_stream.ts";
import { type StreamEmitted, toEnvoyEvent } from "./envoy_events.ts";
import { routerProcessingMode } from "../protocol/ext_proc.ts";
import { bodyRequest, headersRequest } from "../protocol/ext_proc_request.ts";
import { buildSnapshot, defaultSnapshot, modelInfo } from "../control/snapshot.ts";

function router() {
  const actor = createActor(routerStreamMachine, {
    id: "r",
    input: { streamId: "req-7", snapshot: defaultSnapshot(), mode: routerProcessingMode(), maxBodyBytes: 1 << 20 },
  });
  actor.start();
  actor.send(toEnvoyEvent(headersRequest("requestHeaders", { ":method": "POST", ":path": "/v1/chat/completions" }))!);
  actor.send(toEnvoyEvent(bodyRequest("requestBody", `{"model":"tollgate-echo","messages":[]}`))!);
  return actor;
}

function attempt(findRouter: (id: string) => ReturnType<typeof router> | undefined) {
  const emitted: StreamEmitted[] = [];
  const actor = createActor(attemptStreamMachine, { id: "a", input: { streamId: "a", findRouter } });
  actor.on("*", (e) => emitted.push(e as StreamEmitted));
  actor.start();
  return { actor, emitted };
}

Deno.test("attemptStreamMachine joins its router by request id, counts the attempt and strips the internal header", () => {
  const r = router();
  const a = attempt((id) => (id === "req-7" ? r : undefined));
  a.actor.send(
    toEnvoyEvent(
      headersRequest("requestHeaders", { ":path": "/v1/chat/completions", "x-tollgate-request-id": "req-7" }),
    )!,
  );
  assertEquals(a.actor.getSnapshot().value, "done");
  assertEquals(r.getSnapshot().context.attempts, 1);
  const reply = a.emitted[0] as {
    type: "reply";
    response: { response?: { $case: string; value: { response?: { headerMutation?: { removeHeaders: string[] } } } } };
  };
  assertEquals(reply.response.response?.$case, "requestHeaders");
  assertEquals(reply.response.response?.value.response?.headerMutation?.removeHeaders, ["x-tollgate-request-id"]);
});

Deno.test("attemptStreamMachine answers 500 when no router stream matches the request id", () => {
  const a = attempt(() => undefined);
  a.actor.send(toEnvoyEvent(headersRequest("requestHeaders", { "x-tollgate-request-id": "nope" }))!);
  const reply = a.emitted[0] as {
    type: "reply";
    response: { response?: { $case: string; value: { status?: { code: number } } } };
  };
  assertEquals(reply.response.response?.$case, "immediateResponse");
  assertEquals(reply.response.response?.value.status?.code, 500);
  assertEquals(a.actor.getSnapshot().output?.failure, "no router stream for request nope");
});

Deno.test("attemptStreamMachine treats a body before its headers as a protocol violation", () => {
  const a = attempt(() => undefined);
  a.actor.send(toEnvoyEvent(bodyRequest("requestBody", "{}"))!);
  assertEquals(a.emitted, [{
    type: "violation",
    message: "Protocol violation: received requestBody on an upstream attempt stream before its request headers",
  }]);
});

Deno.test("attemptStreamMachine sets the chosen backend's credential and API prefix from the endpoint metadata", () => {
  const snapshot = buildSnapshot(1, {
    models: [modelInfo("tollgate-echo")],
    backends: [{ name: "default/azure", auth: { header: "api-key", value: "secret-1" }, apiPrefix: "/openai/v1" }],
  });
  const r = createActor(routerStreamMachine, {
    id: "r",
    input: { streamId: "req-8", snapshot, mode: routerProcessingMode(), maxBodyBytes: 1 << 20 },
  });
  r.start();
  r.send(toEnvoyEvent(headersRequest("requestHeaders", { ":method": "POST", ":path": "/v1/chat/completions" }))!);
  r.send(toEnvoyEvent(bodyRequest("requestBody", `{"model":"tollgate-echo","messages":[]}`))!);
  const a = attempt((id) => (id === "req-8" ? r : undefined));
  const req = headersRequest("requestHeaders", {
    ":path": "/v1/chat/completions",
    "x-tollgate-request-id": "req-8",
    authorization: "Bearer client-key",
  });
  req.attributes = {
    "envoy.filters.http.ext_proc": {
      "xds.upstream_host_metadata": { filter_metadata: { "aigateway.envoy.io": { backend: "default/azure" } } },
    },
  };
  a.actor.send(toEnvoyEvent(req)!);
  const reply = a.emitted[0] as {
    response: {
      response?: {
        value: {
          response?: {
            headerMutation?: {
              setHeaders: { header?: { key: string; rawValue: Uint8Array } }[];
              removeHeaders: string[];
            };
          };
        };
      };
    };
  };
  const m = reply.response.response?.value.response?.headerMutation;
  const set = Object.fromEntries(
    m!.setHeaders.map((h) => [h.header!.key, new TextDecoder().decode(h.header!.rawValue)]),
  );
  assertEquals(set, { "api-key": "secret-1", ":path": "/openai/v1/chat/completions" });
  assertEquals(m!.removeHeaders, ["x-tollgate-request-id", "authorization"]);
});
