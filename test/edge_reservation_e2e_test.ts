// Admission by reservation end to end, wired as `tollgate run` wires it (resources → edge + ExtProc server + in-process
// rate limit service), driven with the official OpenAI client: a user near a token budget cannot overshoot it when
// reservation is on, while without it the request that crosses the budget goes through; a failed request gives its
// reservation back; a money budget (CEL prices, calendar month) stops a tenant once spent. Also: what `tollgate render
// envoy` writes for the same resources decodes against Envoy's protos.
import OpenAI from "openai";
import { parse } from "yaml";
import { Registry } from "prom-client";
import { toJson } from "@bufbuild/protobuf";
import { assert, assertEquals } from "./support/assert.ts";
import { startFakeUpstream } from "./support/fake_upstream.ts";
import { decodeEnvoy, envoyRegistry, messageType } from "./support/envoy_protos.ts";
import { DEFAULT_RATE_LIMIT_DOMAIN, formatErrors, loadGatewayConfig } from "../src/control/gateway_config.ts";
import { startLocalRateLimits } from "../src/cli/run_rate_limits.ts";
import { ExtProcServer } from "../src/extproc/server.ts";
import { RateLimitFilter } from "../src/edge/rate_limit_filter.ts";
import { EdgeServer } from "../src/edge/edge_server.ts";
import { listenEdge } from "../src/edge/listen.ts";
import { renderEnvoyYaml } from "../src/edge/render_envoy.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { systemClock } from "../src/observability/clock.ts";
import type { UsageEvent } from "../src/usage/usage_event.ts";
import { windowOf } from "../src/usage/windows.ts";

const RESERVATION = new URL("../testdata/resources/reservation/reservation.yaml", import.meta.url);
const MONEY = new URL("../testdata/resources/money_budget/money_budget.yaml", import.meta.url);
const decoder = new TextDecoder();

/**
 * An OpenAI-compatible upstream that honours max_tokens the way providers do: it reports `prompt` prompt tokens and
 * exactly max_tokens completion tokens; a request with header x-fail gets a 500.
 */
function provider(prompt: number) {
  return startFakeUpstream((r) => {
    if (r.headers.get("x-fail")) return Response.json({ error: { message: "boom" } }, { status: 500 });
    const body = JSON.parse(r.body);
    const completion = body.max_tokens ?? 16;
    return Response.json({
      id: "c",
      object: "chat.completion",
      created: 1,
      model: body.model,
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "length" }],
      usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
    });
  });
}

/** `tollgate run CONFIG` in this process, with the usage events it folds recorded. */
async function run(text: string, upstreamPort: number) {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-reservation-" });
  await Deno.writeTextFile(`${dir}/gateway.yaml`, text.replace("port: 18080", `port: ${upstreamPort}`));
  const socket = `${dir}/extproc.sock`;
  const loaded = await loadGatewayConfig([`${dir}/gateway.yaml`], {
    extProcTarget: `unix://${socket}`,
    listener: { host: "127.0.0.1", port: 0 },
    rateLimit: { target: `unix://${dir}/rls.sock`, domain: DEFAULT_RATE_LIMIT_DOMAIN },
  });
  if (!loaded.ok) throw new Error(formatErrors(loaded.errors));
  const logger = silentLogger();
  const limits = await startLocalRateLimits(loaded.compiled, {
    socketPath: `${dir}/rls.sock`,
    domain: DEFAULT_RATE_LIMIT_DOMAIN,
    logger,
  });
  const usage: UsageEvent[] = [];
  const extproc = new ExtProcServer({
    listen: { kind: "unix", path: socket },
    snapshot: () => loaded.snapshot,
    logger,
    registry: new Registry(),
    onUsage: (e) => {
      usage.push(e);
      limits.apply(e);
    },
  });
  await extproc.start();
  const rateLimiter = new RateLimitFilter({
    domain: limits.domain,
    target: limits.target,
    timeoutMs: 2000,
    failureModeDeny: false,
    enableXRateLimitHeaders: true,
  }, { clock: systemClock, logger });
  const edge = new EdgeServer(loaded.edge, { clock: systemClock, logger, rateLimiter });
  const http = await listenEdge(edge, "127.0.0.1", 0);
  const url = `http://127.0.0.1:${http.port}`;
  return {
    url,
    usage,
    edgeConfig: loaded.edge,
    client: (headers: Record<string, string>) =>
      new OpenAI({ baseURL: `${url}/v1`, apiKey: "k", maxRetries: 0, defaultHeaders: headers }),
    async [Symbol.asyncDispose]() {
      await http.shutdown();
      edge.close();
      rateLimiter.close();
      await extproc.drain(1000);
      await limits[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

type Gateway = Awaited<ReturnType<typeof run>>;

/** One chat request; the status and the X-RateLimit-Remaining the edge answered with. */
async function ask(gw: Gateway, headers: Record<string, string>, model: string, maxTokens: number) {
  const res = await gw.client(headers).chat.completions.create({
    model,
    max_tokens: maxTokens,
    messages: [{ role: "user", content: "hello" }],
  }).withResponse().then(({ response }) => response, (e: unknown) => {
    if (e instanceof OpenAI.APIError) return { status: e.status, headers: e.headers ?? new Headers() };
    throw e;
  });
  return { status: res.status, remaining: Number(res.headers.get("x-ratelimit-remaining") ?? NaN) };
}

/** The reservation example's budget is 1,000 tokens an hour per user. Every answer costs 100 + max_tokens tokens. */
const BUDGET = 1000;
// The sidecar's estimate of `ask`'s prompt: one message (4) + "role" 1 + "user" 1 + "content" 2 + "hello" 2, reply
// priming 3 (src/usage/reservation_estimate.ts).
const PROMPT_ESTIMATE = 13;

const charged = (usage: readonly UsageEvent[], user: string) =>
  usage.filter((e) => e.status === 200 && e.descriptors.some((d) => d.entries.some((x) => x.value === user)))
    .reduce((sum, e) => sum + (e.costs.llm_total_token ?? 0), 0);

Deno.test("with reservation a user near the budget cannot overshoot it: the crossing request is refused before it runs", async () => {
  await using upstream = await provider(100);
  await using gw = await run(await Deno.readTextFile(RESERVATION), upstream.port);
  const alice = { "x-user-id": "alice" };
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await ask(gw, alice, "gpt-4o-mini", 200)).status);
  // 300 tokens a request: 0, 300, 600 fit with their 213-token estimate; at 900, 900 + 213 > 1000.
  assertEquals(statuses, [200, 200, 200, 429]);
  assertEquals(charged(gw.usage, "alice"), 900);
  assertEquals(upstream.seen.length, 3);
  // A smaller request still fits what is left (900 + 13 + 50 <= 1000), and the budget then holds: overshoot is at most
  // what one admitted request used beyond its estimate (here its prompt: 100 actual vs 13 estimated).
  assertEquals((await ask(gw, alice, "gpt-4o-mini", 50)).status, 200);
  assertEquals((await ask(gw, alice, "gpt-4o-mini", 1)).status, 429);
  const spent = charged(gw.usage, "alice");
  assertEquals(spent, 1050);
  assert(
    spent - BUDGET <= 100 + 50 - (PROMPT_ESTIMATE + 50),
    `overshoot ${spent - BUDGET} is more than one estimate's error`,
  );
  // Every usage event says what was reserved for it, under the id the sidecar gave the request.
  const first = gw.usage[0]!;
  assert(first.reservation !== undefined && /^[0-9a-f-]{36}$/.test(first.reservation), String(first.reservation));
  assertEquals(first.descriptors.map((d) => d.reserved), [PROMPT_ESTIMATE + 200]);
  assertEquals(new Set(gw.usage.map((e) => e.reservation)).size, gw.usage.length);
});

Deno.test("without reservation the request that crosses the budget goes through", async () => {
  await using upstream = await provider(100);
  const text = await Deno.readTextFile(RESERVATION);
  const withoutOptions = text.slice(0, text.lastIndexOf("---\napiVersion: tollgate.dev/v1alpha1"));
  await using gw = await run(withoutOptions, upstream.port);
  const alice = { "x-user-id": "alice" };
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push((await ask(gw, alice, "gpt-4o-mini", 200)).status);
  // Only "not spent yet" is checked: at 900 the fourth request runs and spends 300.
  assertEquals(statuses, [200, 200, 200, 200, 429]);
  assertEquals(charged(gw.usage, "alice"), 1200);
  assertEquals(gw.usage[0]!.reservation, undefined);
});

Deno.test("a request that fails upstream gives its reservation back", async () => {
  await using upstream = await provider(100);
  await using gw = await run(await Deno.readTextFile(RESERVATION), upstream.port);
  const bob = { "x-user-id": "bob" };
  const first = await ask(gw, bob, "gpt-4o-mini", 200);
  // The headers of an allowed request show what is left once its own estimate is held: 1000 - 0 - 213.
  assertEquals([first.status, first.remaining], [200, BUDGET - (PROMPT_ESTIMATE + 200)]);
  for (let i = 0; i < 3; i++) assertEquals((await ask(gw, { ...bob, "x-fail": "1" }, "gpt-4o-mini", 200)).status, 500);
  // Three failures later only the first request's 300 tokens count.
  const after = await ask(gw, bob, "gpt-4o-mini", 200);
  assertEquals([after.status, after.remaining], [200, BUDGET - 300 - (PROMPT_ESTIMATE + 200)]);
  assertEquals(charged(gw.usage, "bob"), 600);
});

Deno.test("a money budget in micro-dollars from per-model CEL prices stops a tenant once spent, per Paris calendar month", async () => {
  // 1,000 prompt tokens and max_tokens completion tokens per answer; the budget is cut to 3 cents for the test.
  await using upstream = await provider(1000);
  const text = (await Deno.readTextFile(MONEY)).replace("requests: 5000000", "requests: 30000");
  await using gw = await run(text, upstream.port);
  const acme = { "x-tenant-id": "acme" };
  // gpt-4o: (1000 × 2500 + 500 × 10000) / 1000 = 7,500 micro-dollars an answer.
  const results = [];
  for (let i = 0; i < 6; i++) results.push(await ask(gw, acme, "gpt-4o", 500));
  // 0, 7500, 15000, 22500 each leave room for the estimate ((13 × 2500 + 500 × 10000 + 999) / 1000 = 5,033);
  // at 30,000 the budget is spent.
  assertEquals(results.map((r) => r.status), [200, 200, 200, 200, 429, 429]);
  assertEquals(gw.usage.filter((e) => e.status === 200).map((e) => e.costs.usd_micros), [7500, 7500, 7500, 7500]);
  // Another tenant is not limited; gpt-4o-mini is priced by its own line: (1000 × 150 + 500 × 600 + 999) / 1000.
  assertEquals((await ask(gw, { "x-tenant-id": "globex" }, "gpt-4o", 500)).status, 200);
  assertEquals((await ask(gw, { "x-tenant-id": "globex" }, "gpt-4o-mini", 500)).status, 200);
  assertEquals(gw.usage.at(-1)?.costs.usd_micros, 450);
  // The window is the calendar month in Paris: it resets at the next local midnight on the 1st.
  const reset = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-tenant-id": "initech" },
    body: JSON.stringify({ model: "gpt-4o-mini", max_tokens: 1, messages: [{ role: "user", content: "hi" }] }),
  });
  await reset.body?.cancel();
  const end = windowOf("month", Date.now(), { calendar: { timeZone: "Europe/Paris" } }).end;
  const seconds = Number(reset.headers.get("x-ratelimit-reset"));
  assert(
    Math.abs(seconds - (end - Date.now()) / 1000) < 5,
    `reset in ${seconds} s, month ends in ${(end - Date.now()) / 1000} s`,
  );
});

Deno.test("what `tollgate render envoy` writes for reservation decodes against Envoy's protos with both new entries", async () => {
  await using upstream = await provider(1);
  await using gw = await run(await Deno.readTextFile(RESERVATION), upstream.port);
  const registry = await envoyRegistry();
  const yaml = renderEnvoyYaml(gw.edgeConfig, {
    extProcSocketPath: "/run/tollgate/extproc.sock",
    rateLimitTarget: "rls.internal:8081",
  });
  const type = "envoy.config.bootstrap.v3.Bootstrap";
  const decoded = decodeEnvoy(registry, type, parse(yaml));
  const json = JSON.stringify(toJson(messageType(registry, type), decoded, { registry, useProtoFieldName: true }));
  assert(json.includes('"format":"%DYNAMIC_METADATA(io.envoy.ai_gateway:tollgate_reserve_llm_total_token)%"'), json);
  assert(json.includes('"descriptor_key":"tollgate_reservation"'), "the marker descriptor was lost");
  assert(json.includes('"path":[{"key":"tollgate_reservation"}]'), "the marker's metadata key was lost");
  assert(decoder.decode(new TextEncoder().encode(yaml)).includes("tollgate_reserve_llm_total_token"));
});
