// Faults end to end through the edge: upstreams that reset, hang, answer garbage or cut a stream short, and an
// ExtProc sidecar that dies and comes back. For each, what the client sees (Envoy's answers, in the client's error
// format where the gateway speaks), that no stream is left open, and what usage is reported.
import OpenAI from "openai";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FALLBACK_RETRY, startGateway } from "./support/gateway_fixture.ts";
import { chatCompletion } from "./support/fake_upstream.ts";
import { pollUntil } from "./support/nats_server.ts";
import { ExtProcServer } from "../src/extproc/server.ts";
import { buildSnapshot, modelInfo } from "../src/control/snapshot.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { Registry } from "prom-client";

type Behaviour = "reset" | "hang" | "garbage" | "truncated-stream";

/** A raw TCP upstream that misbehaves below HTTP, as a crashed or broken provider would. */
function hostileUpstream(behaviour: Behaviour) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const encoder = new TextEncoder();
  let accepted = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(65536);
        await conn.read(buf).catch(() => null); // The request (headers and a small body fit in one read here).
        if (behaviour === "reset") {
          conn.close();
          conns.delete(conn);
        } else if (behaviour === "garbage") {
          const body = "<html>Bad gateway from a proxy</html>";
          await conn.write(encoder.encode(
            `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
          )).catch(() => {});
        } else if (behaviour === "truncated-stream") {
          const chunk = (content: string) =>
            `data: ${
              JSON.stringify({
                id: "c",
                object: "chat.completion.chunk",
                created: 1,
                model: "gpt-4o-mini",
                choices: [{ index: 0, delta: { content }, finish_reason: null }],
              })
            }\n\n`;
          const head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
          const part = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n`;
          await conn.write(encoder.encode(head + part(chunk("Hello")) + part(chunk(" wor")))).catch(() => {});
          await new Promise((r) => setTimeout(r, 50));
          conn.close(); // Mid-stream: no last chunk, no [DONE].
          conns.delete(conn);
        }
        // "hang": keep the connection open and never answer.
      })();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed already */ }
      }
      await serving.catch(() => {});
    },
  };
}

const ask = (url: string, body: Record<string, unknown> = {}) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], ...body }),
  });

Deno.test("an upstream that resets the connection: 503 without a fallback, the fallback's answer with one", async () => {
  await using bad = hostileUpstream("reset");
  await using gw = await startGateway({
    upstreams: { good: (r) => chatCompletion(JSON.parse(r.body).model, "from fallback") },
    listening: { bad: bad.port },
    routes: [{ model: "gpt-4o-mini", priorities: [["bad"]] }],
  });
  const res = await ask(gw.url);
  assertEquals(res.status, 503);
  assertMatch(await res.text(), /upstream connect error or disconnect\/reset before headers/);

  await using gw2 = await startGateway({
    upstreams: { good: (r) => chatCompletion(JSON.parse(r.body).model, "from fallback") },
    listening: { bad: bad.port },
    routes: [{ model: "gpt-4o-mini", priorities: [["bad"], ["good"]], retry: FALLBACK_RETRY }],
  });
  const ok = await gw2.openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "x" }],
  });
  assertEquals(ok.choices[0]!.message.content, "from fallback");
  for (const g of [gw, gw2]) {
    await pollUntil("streams to close", () => g.extproc.openStreams === 0 || undefined, { timeoutMs: 5000 });
  }
  assertEquals(gw2.usage.length, 1);
  assertEquals(gw2.usage[0]!.status, 200);
  assertEquals(gw2.usage[0]!.tokens.totalTokens, 7, "usage of the attempt that answered, counted once");
});

Deno.test("an upstream that never answers: 504 after the route timeout, and nothing is left open", async () => {
  await using hang = hostileUpstream("hang");
  await using gw = await startGateway({
    upstreams: {},
    listening: { hang: hang.port },
    routes: [{ model: "gpt-4o-mini", priorities: [["hang"]], timeoutMs: 300 }],
  });
  const started = performance.now();
  const res = await ask(gw.url);
  assertEquals(res.status, 504);
  assertMatch(await res.text(), /upstream request timeout/);
  assert(performance.now() - started < 5000, "the timeout, not the client, ended it");
  await pollUntil("streams to close", () => gw.extproc.openStreams === 0 || undefined, { timeoutMs: 5000 });
});

Deno.test("an upstream answering 200 with garbage instead of JSON: the client gets an error in its format", async () => {
  await using garbage = hostileUpstream("garbage");
  await using gw = await startGateway({
    upstreams: {},
    listening: { garbage: garbage.port },
    routes: [{ model: "gpt-4o-mini", priorities: [["garbage"]] }],
    backends: { garbage: { schema: { name: "Anthropic" } } },
  });
  const res = await ask(gw.url);
  const text = await res.text();
  assertEquals(res.status, 502, text);
  const error = JSON.parse(text).error;
  assert(typeof error?.message === "string", text);
  assert(!text.includes("<html>"), "the garbage is not passed on as if it were an answer");
  await pollUntil("streams to close", () => gw.extproc.openStreams === 0 || undefined, { timeoutMs: 5000 });
  assertEquals(gw.usage.map((u) => u.status), [502], "the usage event records the failure, with no tokens");
  assertEquals(gw.usage[0]!.tokens, {});
});

Deno.test("a stream cut short by the upstream ends the client's stream with an error, not a clean finish", async () => {
  await using cut = hostileUpstream("truncated-stream");
  await using gw = await startGateway({
    upstreams: {},
    listening: { cut: cut.port },
    routes: [{ model: "gpt-4o-mini", priorities: [["cut"]] }],
  });
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "k", maxRetries: 0 });
  let text = "";
  let failed: unknown;
  try {
    const stream = await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  } catch (err) {
    failed = err;
  }
  assertEquals(text, "Hello wor", "what arrived before the cut reached the client");
  assert(failed !== undefined, "the client learns the stream did not finish");
  await pollUntil("streams to close", () => gw.extproc.openStreams === 0 || undefined, { timeoutMs: 5000 });
});

Deno.test("an ExtProc sidecar that dies gets 500s (failure_mode_allow false), and serves again once restarted", async () => {
  await using gw = await startGateway({
    upstreams: { openai: (r) => chatCompletion(JSON.parse(r.body).model, "ok") },
    routes: [{ model: "gpt-4o-mini", priorities: [["openai"]] }],
  });
  assertEquals((await ask(gw.url)).status, 200);
  await gw.extproc.close();
  const down = await ask(gw.url);
  assertEquals(down.status, 500);
  await down.body?.cancel();
  assertEquals(gw.upstreams.openai!.seen.length, 1, "nothing reached the provider without its processor");
  // A new sidecar on the same socket (what a container restart does).
  const snapshot = buildSnapshot(2, {
    models: [modelInfo("gpt-4o-mini")],
    backends: [{ name: "default/openai", schema: { name: "OpenAI" }, host: `127.0.0.1:${gw.upstreams.openai!.port}` }],
    backendRefs: [{ id: "gpt-4o-mini/openai", backend: "default/openai" }],
  });
  const restarted = new ExtProcServer({
    listen: { kind: "unix", path: gw.socketPath },
    snapshot: () => snapshot,
    logger: silentLogger(),
    registry: new Registry(),
  });
  await restarted.start();
  try {
    const again = await pollUntil("the edge to reach the new sidecar", async () => {
      const res = await ask(gw.url);
      await res.body?.cancel();
      return res.status === 200 ? res : undefined;
    }, { timeoutMs: 10_000, intervalMs: 100 });
    assertEquals(again.status, 200);
    assertEquals(restarted.openStreams, 0);
  } finally {
    await restarted.close();
  }
});
