// `tollgate run` as a user starts it: one process, the edge on a port, the demo provider or an OpenAI-compatible
// provider from the environment.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { assertEquals, assertMatch } from "./support/assert.ts";
import { freePorts } from "./support/nats_server.ts";
import { TOLLGATE } from "./support/process.ts";
import { chatCompletion, startFakeUpstream } from "./support/fake_upstream.ts";

async function startRun(env: Record<string, string>, config: string[] = []) {
  const port = freePorts(1)[0]!;
  const child = new Deno.Command(TOLLGATE, {
    args: ["run", ...config, "--listen", `127.0.0.1:${port}`, "--admin", "off", "--access-log", "off"],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  while (!banner.includes("Try it:")) {
    const { value, done } = await stderr.read();
    if (done) throw new Error(`tollgate run exited early:\n${banner}`);
    banner += value;
  }
  return { child, port, banner, stderr };
}

const baseEnv = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: Deno.env.get("HOME") ?? "/tmp" };

Deno.test("tollgate run with no provider serves the demo model, prints a curl, and stops on SIGTERM", async () => {
  const { child, port, banner, stderr } = await startRun(baseEnv);
  assertMatch(banner, new RegExp(`curl http://127\\.0\\.0\\.1:${port}/v1/chat/completions`));
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0 });
  const res = await openai.chat.completions.create({
    model: "tollgate-echo",
    messages: [{ role: "user", content: "ping" }],
  });
  assertEquals(res.choices[0]!.message.content, "Echo: ping");
  const stream = await openai.chat.completions.create({
    model: "tollgate-echo",
    messages: [{ role: "user", content: "one two" }],
    stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  assertEquals(text, "Echo: one two");
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0);
  await stderr.cancel();
  await child.stdout.cancel();
});

Deno.test("tollgate run routes to an OpenAI-compatible provider from OPENAI_API_KEY with the gateway's key", async () => {
  await using upstream = await startFakeUpstream((r) => chatCompletion(JSON.parse(r.body).model, "from provider"));
  const { child, port, stderr } = await startRun({
    ...baseEnv,
    OPENAI_API_KEY: "sk-upstream-secret",
    OPENAI_BASE_URL: `http://127.0.0.1:${upstream.port}/compat/v1`,
  });
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "client-key", maxRetries: 0 });
  const res = await openai.chat.completions.create({ model: "any-model", messages: [{ role: "user", content: "hi" }] });
  assertEquals(res.choices[0]!.message.content, "from provider");
  const seen = upstream.seen[0]!;
  assertEquals(seen.path, "/compat/v1/chat/completions");
  assertEquals(seen.headers.get("authorization"), "Bearer sk-upstream-secret");
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0);
  await stderr.cancel();
  await child.stdout.cancel();
});

Deno.test("tollgate run CONFIG serves Envoy AI Gateway resources: provider fallback with the fallback's API key", async () => {
  await using primary = await startFakeUpstream(() => Response.json({ error: { message: "down" } }, { status: 500 }));
  await using secondary = await startFakeUpstream((r) => chatCompletion(JSON.parse(r.body).model, "from secondary"));
  const { child, port, banner, stderr } = await startRun({
    ...baseEnv,
    PRIMARY_PORT: String(primary.port),
    SECONDARY_PORT: String(secondary.port),
    SECONDARY_API_KEY: "sk-secondary-from-env",
  }, ["testdata/resources/openai_fallback"]);
  assertMatch(banner, /Serving testdata\/resources\/openai_fallback/);
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "client-key", maxRetries: 0 });
  const res = await openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(res.choices[0]!.message.content, "from secondary");
  assertEquals([primary.seen.length, secondary.seen.length], [1, 1]);
  assertEquals(secondary.seen[0]!.headers.get("authorization"), "Bearer sk-secondary-from-env");
  // The primary has no credential configured, and the client's key was for the gateway: it never reaches a provider.
  assertEquals(primary.seen[0]!.headers.get("authorization"), null);
  assertEquals(primary.seen[0]!.headers.get("x-ai-eg-model"), "gpt-4o-mini");
  const models = [];
  for await (const m of openai.models.list()) models.push(m.id);
  assertEquals(models, ["gpt-4o-mini"]);
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0);
  await stderr.cancel();
  await child.stdout.cancel();
});

Deno.test("tollgate run refuses an invalid config with every error located, and exits 1", async () => {
  const out = await new Deno.Command(TOLLGATE, {
    args: ["run", "testdata/resources/invalid/references.yaml", "--admin", "off"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 1);
  const text = new TextDecoder().decode(out.stderr);
  assertMatch(text, /references\.yaml#0 AIGatewayRoute default\/route spec\.rules\[0\]\.backendRefs\[1\]\.name: /);
  assertMatch(text, /error\(s\) in the configuration/);
});

Deno.test("tollgate run routes Anthropic's clients and OpenAI's clients to Anthropic from ANTHROPIC_API_KEY", async () => {
  const message = {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: "claude-haiku-4-5",
    content: [{ type: "text", text: "from claude" }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 3, output_tokens: 2 },
  };
  await using upstream = await startFakeUpstream(() => Response.json(message));
  const { child, port, stderr } = await startRun({
    ...baseEnv,
    ANTHROPIC_API_KEY: "sk-ant-run",
    ANTHROPIC_BASE_URL: `http://127.0.0.1:${upstream.port}`,
  });
  const anthropic = new Anthropic({ baseURL: `http://127.0.0.1:${port}/anthropic`, apiKey: "client", maxRetries: 0 });
  const native = await anthropic.messages.create({
    model: "claude-haiku-4-5",
    max_tokens: 10,
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(native.content[0]?.type === "text" ? native.content[0].text : "", "from claude");
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "client", maxRetries: 0 });
  const translated = await openai.chat.completions.create({
    model: "claude-haiku-4-5",
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(translated.choices[0]!.message.content, "from claude");
  assertEquals(upstream.seen.map((r) => [r.path, r.headers.get("x-api-key")]), [
    ["/v1/messages", "sk-ant-run"],
    ["/v1/messages", "sk-ant-run"],
  ]);
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0);
  await stderr.cancel();
  await child.stdout.cancel();
});

Deno.test("tollgate run enforces Envoy AI Gateway's token rate limit example: a user is limited after spending the budget, another is not", async () => {
  // Every answer reports 5 input tokens; the example's first rule allows 10 input tokens per hour per x-user-id.
  await using upstream = await startFakeUpstream((r) => {
    const model = JSON.parse(r.body).model;
    return Response.json({
      id: "c",
      object: "chat.completion",
      created: 1,
      model,
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
    });
  });
  const dir = await Deno.makeTempDir();
  const example = await Deno.readTextFile("testdata/resources/token_ratelimit/token_ratelimit.yaml");
  await Deno.writeTextFile(`${dir}/gateway.yaml`, example.replace("port: 18080", `port: ${upstream.port}`));
  const { child, port, banner, stderr } = await startRun(baseEnv, [`${dir}/gateway.yaml`]);
  assertMatch(banner, /rate-limit rule\(s\) enforced in process/);
  const ask = (user: string) =>
    fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-user-id": user },
      body: JSON.stringify({ model: "rate-limit-funky-model", messages: [{ role: "user", content: "hi" }] }),
    }).then(async (r) => {
      await r.body?.cancel();
      return r.status;
    });
  assertEquals(await ask("alice"), 200);
  assertEquals(await ask("alice"), 200);
  // alice has now spent 10 input tokens: the check before the upstream refuses her.
  assertEquals(await ask("alice"), 429);
  assertEquals(await ask("bob"), 200);
  assertEquals(upstream.seen.length, 3);
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0);
  await stderr.cancel();
  await child.stdout.cancel();
  await Deno.remove(dir, { recursive: true });
});
