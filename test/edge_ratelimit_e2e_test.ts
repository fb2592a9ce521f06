// The edge's ratelimit filter end to end: descriptors from request headers, the request-time check before the
// upstream (hits_addend 0), 429 with x-envoy-ratelimited, and the stream-done call whose hits_addend comes from
// the dynamic metadata the processor wrote (io.envoy.ai_gateway), like Envoy AI Gateway's token limits.
import * as grpc from "@grpc/grpc-js";
import OpenAI from "openai";
import { assert, assertEquals } from "./support/assert.ts";
import { startGateway } from "./support/gateway_fixture.ts";
import { chatCompletion } from "./support/fake_upstream.ts";
import { FakeRls, rlsResponse } from "./support/fake_rls_server.ts";
import { type ScriptStep, startScriptedExtProc } from "./support/scripted_extproc.ts";
import { continueResponse, headerMutation, type ProcessingRequest } from "../src/protocol/ext_proc.ts";
import type { RateLimitEntry } from "../src/edge/config.ts";
import {
  RateLimitResponse_Code,
  RateLimitResponse_RateLimit_Unit,
} from "../src/protocol/gen/envoy/service/ratelimit/v3/rls.ts";

const decoder = new TextDecoder();

/** A router-level processor that routes by the body's model and reports 7 tokens on the response body. */
function tokenCountingProcessor(req: ProcessingRequest): ScriptStep {
  const phase = req.request!.$case;
  if (phase === "requestBody") {
    const model = JSON.parse(decoder.decode(req.request!.value.body)).model;
    return {
      reply: continueResponse(phase, {
        headerMutation: headerMutation({ "x-ai-eg-model": model }),
        clearRouteCache: true,
      }),
    };
  }
  if (phase === "responseBody") {
    return {
      reply: { ...continueResponse(phase), dynamicMetadata: { "io.envoy.ai_gateway": { llm_total_token: 7 } } },
    };
  }
  return { reply: continueResponse(phase) };
}

const actions = [
  { kind: "requestHeaders", headerName: "x-user-id", descriptorKey: "user_id", skipIfAbsent: false },
  { kind: "genericKey", descriptorKey: "rule", descriptorValue: "tokens-per-user" },
] as const;
const tokenLimits: RateLimitEntry[] = [
  { actions, applyOnStreamDone: false, hitsAddend: { number: 0 } },
  {
    actions,
    applyOnStreamDone: true,
    hitsAddend: { metadata: { namespace: "io.envoy.ai_gateway", key: "llm_total_token" } },
  },
];

async function gatewayWith(rls: FakeRls, o: { failureModeDeny?: boolean; xRateLimitHeaders?: boolean } = {}) {
  const proc = await startScriptedExtProc(tokenCountingProcessor);
  const gw = await startGateway({
    upstreams: { openai: (r) => chatCompletion(JSON.parse(r.body).model, "ok") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]], rateLimits: tokenLimits }],
    routerTarget: proc.target,
    upstreamExtProc: false,
    rateLimit: {
      target: rls.target,
      failureModeDeny: o.failureModeDeny ?? false,
      enableXRateLimitHeaders: o.xRateLimitHeaders ?? false,
    },
  });
  return {
    gw,
    openai: new OpenAI({
      baseURL: `${gw.url}/v1`,
      apiKey: "k",
      maxRetries: 0,
      defaultHeaders: { "x-user-id": "alice" },
    }),
    async [Symbol.asyncDispose]() {
      await gw[Symbol.asyncDispose]();
      await proc[Symbol.asyncDispose]();
    },
  };
}

const ask = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "hi" }] };

Deno.test("the edge checks the limit before the upstream and reports tokens from metadata when the stream is done", async () => {
  await using rls = await FakeRls.start();
  await using t = await gatewayWith(rls);
  const res = await t.openai.chat.completions.create(ask);
  assertEquals(res.choices[0]!.message.content, "ok");
  await rls.received(2);
  const [check, done] = rls.requests;
  assertEquals(check!.domain, "ai-gateway");
  const entries = [{ key: "user_id", value: "alice" }, { key: "rule", value: "tokens-per-user" }];
  assertEquals(check!.descriptors.map((d) => [d.entries, d.hitsAddend]), [[entries, 0]]);
  assertEquals(done!.descriptors.map((d) => [d.entries, d.hitsAddend]), [[entries, 7]]);
  // The access log line carries the usage the processor reported in dynamic metadata.
  assertEquals(t.gw.accessLog.at(-1)?.usage, { llm_total_token: 7 });
});

Deno.test("over the limit the edge answers 429 with x-envoy-ratelimited and never calls the upstream", async () => {
  await using rls = await FakeRls.start(() => rlsResponse({ overallCode: RateLimitResponse_Code.OVER_LIMIT }));
  await using t = await gatewayWith(rls);
  try {
    await t.openai.chat.completions.create(ask);
    throw new Error("expected a 429");
  } catch (e) {
    assert(e instanceof OpenAI.RateLimitError, String(e));
    assertEquals(e.headers?.get("x-envoy-ratelimited"), "true");
  }
  assertEquals(t.gw.upstreams.openai!.seen.length, 0);
});

Deno.test("with X-RateLimit headers enabled the response carries the limit, remaining and reset", async () => {
  await using rls = await FakeRls.start(() =>
    rlsResponse({
      statuses: [{
        code: RateLimitResponse_Code.OK,
        currentLimit: { name: "", requestsPerUnit: 1000, unit: RateLimitResponse_RateLimit_Unit.HOUR },
        limitRemaining: 993,
        durationUntilReset: { seconds: 1200, nanos: 0 },
      }],
    })
  );
  await using t = await gatewayWith(rls, { xRateLimitHeaders: true });
  const res = await fetch(`${t.gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-user-id": "alice" },
    body: JSON.stringify(ask),
  });
  await res.body?.cancel();
  assertEquals(res.status, 200);
  assertEquals(
    [
      res.headers.get("x-ratelimit-limit"),
      res.headers.get("x-ratelimit-remaining"),
      res.headers.get("x-ratelimit-reset"),
    ],
    ["1000, 1000;w=3600", "993", "1200"],
  );
});

for (const failureModeDeny of [true, false]) {
  Deno.test(`a failing rate limit service ${failureModeDeny ? "denies with 500 (failure_mode_deny)" : "lets the request through"}`, async () => {
    await using rls = await FakeRls.start();
    rls.failWith(grpc.status.UNAVAILABLE);
    await using t = await gatewayWith(rls, { failureModeDeny });
    const res = await fetch(`${t.gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-user-id": "alice" },
      body: JSON.stringify(ask),
    });
    await res.body?.cancel();
    assertEquals(res.status, failureModeDeny ? 500 : 200);
  });
}

Deno.test("a request without the descriptor's header is not sent to the rate limit service", async () => {
  await using rls = await FakeRls.start();
  await using t = await gatewayWith(rls);
  const res = await fetch(`${t.gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(ask),
  });
  await res.body?.cancel();
  assertEquals(res.status, 200);
  assertEquals(rls.requests.length, 0);
});
