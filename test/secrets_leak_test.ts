// Credentials stay where they belong: a `tollgate run --nats` with a known API key serves traffic (successes, a
// fallback, upstream errors, client errors) at debug log level, and the key is then searched for in everything the
// gateway wrote: its stdout and stderr (logs, access log), the admin /metrics, every message that crossed NATS (a
// subscriber on ">" sees usage events, JetStream API calls and KV traffic), the usage spool, the spans it exported
// over OTLP, and the bodies clients got. The upstream must have received it, so the search is not vacuous. The
// gateway's own NATS password (from --nats-password-file) and the key the client sent to the gateway are searched
// for in the same places; the client's key must not reach any upstream either.
import { connect } from "nats";
import { assert, assertEquals } from "./support/assert.ts";
import { freePorts, NatsServer } from "./support/nats_server.ts";
import { TOLLGATE } from "./support/process.ts";
import { chatCompletion, startFakeUpstream } from "./support/fake_upstream.ts";
import { startOtlpReceiver } from "./support/otlp_receiver.ts";

const SECRET = "sk-tollgate-leak-canary-7d41c9e2b8";
const NATS_PASSWORD = "nats-leak-canary-2f6a90d1";
const CLIENT_KEY = "client-leak-canary-c0ffee42";

Deno.test("an upstream API key, the NATS password and the client's key never appear in logs, access logs, metrics, traces, NATS traffic, the spool or error bodies", async () => {
  await using ns = await NatsServer.start({ users: [{ user: "tollgate", password: NATS_PASSWORD }] });
  await using otlp = await startOtlpReceiver();
  // Primary always fails (so the fallback, which has the key, serves); the secondary rejects a "bad" prompt.
  await using primary = await startFakeUpstream(() => Response.json({ error: { message: "down" } }, { status: 500 }));
  await using secondary = await startFakeUpstream((r) => {
    const body = JSON.parse(r.body);
    if (r.body.includes("please fail")) {
      return Response.json({ error: { message: "Invalid request", type: "invalid_request_error" } }, { status: 400 });
    }
    return chatCompletion(body.model, "ok");
  });
  const nats = await connect({ servers: ns.url, user: "tollgate", pass: NATS_PASSWORD });
  const seenOnNats: string[] = [];
  const sub = nats.subscribe(">");
  const watching = (async () => {
    for await (const m of sub) {
      seenOnNats.push(`${m.subject} ${m.headers?.toString() ?? ""} ${new TextDecoder().decode(m.data)}`);
    }
  })();

  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/nats.pass`, NATS_PASSWORD, { mode: 0o600 });
  const port = freePorts(1)[0]!;
  const admin = freePorts(1)[0]!;
  const child = new Deno.Command(TOLLGATE, {
    args: [
      "run",
      "testdata/resources/openai_fallback",
      "--listen",
      `127.0.0.1:${port}`,
      "--admin",
      `127.0.0.1:${admin}`,
      "--access-log",
      "stdout",
      "--log-level",
      "trace",
      "--nats",
      ns.url,
      "--nats-user",
      "tollgate",
      "--nats-password-file",
      `${dir}/nats.pass`,
      "--otlp-endpoint",
      otlp.url,
      "--usage-spool",
      `${dir}/usage.spool`,
    ],
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      PRIMARY_PORT: String(primary.port),
      SECONDARY_PORT: String(secondary.port),
      SECONDARY_API_KEY: SECRET,
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  const stderrReader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  while (!stderr.includes("Try it:")) {
    const { value, done } = await stderrReader.read();
    if (done) throw new Error(`tollgate run exited early:\n${stderr}`);
    stderr += value;
  }
  const bodies: string[] = [];
  const post = async (path: string, body: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${CLIENT_KEY}`, ...headers },
      body,
    });
    bodies.push(`${res.status} ${[...res.headers].join(" ")} ${await res.text()}`);
    return res.status;
  };
  const chat = (content: string, stream = false) =>
    JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content }], stream });
  try {
    assertEquals(await post("/v1/chat/completions", chat("hello")), 200);
    assertEquals(await post("/v1/chat/completions", chat("please fail")), 400);
    assertEquals(await post("/v1/chat/completions", "{not json"), 400);
    assertEquals(await post("/v1/chat/completions", JSON.stringify({ model: "unknown-model", messages: [] })), 404);
    assertEquals(await post("/anthropic/v1/messages", JSON.stringify({ model: "gpt-4o-mini" })), 400);
    await post("/v1/chat/completions", chat("hello", true));
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    const status = await (await fetch(`http://127.0.0.1:${admin}/readyz`)).text();

    // The key did its job: the fallback upstream received it.
    assert(
      secondary.seen.some((r) => r.headers.get("authorization") === `Bearer ${SECRET}`),
      "the upstream got the key",
    );
    assert(primary.seen.every((r) => !JSON.stringify([...r.headers]).includes(SECRET)), "the primary (no key) did not");
    for (const seen of [...primary.seen, ...secondary.seen]) {
      assert(
        !JSON.stringify([...seen.headers]).includes(CLIENT_KEY),
        "the client's key for the gateway reached an upstream",
      );
      assert(!seen.body.includes(CLIENT_KEY), "the client's key reached an upstream in a body");
    }

    child.kill("SIGTERM");
    assertEquals((await child.status).code, 0);
    stderr += await (async () => {
      let rest = "";
      for (;;) {
        const { value, done } = await stderrReader.read();
        if (done) return rest;
        rest += value;
      }
    })();
    await nats.flush();
    sub.unsubscribe();
    await watching;
    let spool = "";
    try {
      spool = new TextDecoder().decode(await Deno.readFile(`${dir}/usage.spool`));
    } catch { /* no spool left: everything was published */ }

    const out = await stdout;
    assert(out.includes('"msg"'), "the logs were captured");
    assert(seenOnNats.some((m) => m.startsWith("tollgate.usage.")), "usage events crossed NATS");
    assert(metrics.includes("tollgate_"), "metrics were captured");
    // The exporter flushes on SIGTERM; the spans have arrived by the time the process has exited.
    assert(otlp.spans.length > 0, "spans were exported");
    const spans = JSON.stringify(otlp.spans, (_, v) => typeof v === "bigint" ? String(v) : v);
    const places: Record<string, string> = {
      stdout: out,
      stderr,
      metrics,
      readyz: status,
      nats: seenOnNats.join("\n"),
      spool,
      traces: spans,
      "client bodies": bodies.join("\n"),
    };
    for (const [where, text] of Object.entries(places)) {
      assert(!text.includes(SECRET), `the API key leaked into ${where}`);
      assert(!text.includes(SECRET.slice(3, 20)), `part of the API key leaked into ${where}`);
      assert(!text.includes(NATS_PASSWORD), `the NATS password leaked into ${where}`);
      assert(!text.includes(CLIENT_KEY), `the client's key leaked into ${where}`);
    }
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await nats.close().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
