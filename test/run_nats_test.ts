// `tollgate run --nats` as a user starts it, twice on one NATS: each process publishes its usage events to JetStream
// and serves the rate limits from its own aggregator replica, so a tenant's budget spent through one gateway is
// spent on the other too.
import { connect } from "nats";
import { assertEquals, assertMatch } from "./support/assert.ts";
import { freePorts, NatsServer, pollUntil } from "./support/nats_server.ts";
import { TOLLGATE } from "./support/process.ts";
import { startFakeUpstream } from "./support/fake_upstream.ts";
import { USAGE_STREAM } from "../src/usage/nats_connection.ts";

async function startRun(args: string[]) {
  const port = freePorts(1)[0]!;
  const child = new Deno.Command(TOLLGATE, {
    args: ["run", ...args, "--listen", `127.0.0.1:${port}`, "--admin", "off", "--access-log", "off"],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: Deno.env.get("HOME") ?? "/tmp" },
    clearEnv: true,
    stdout: "null",
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
  return {
    port,
    banner,
    async stop() {
      child.kill("SIGTERM");
      const status = await child.status;
      await stderr.cancel();
      return status.code;
    },
  };
}

Deno.test("two `tollgate run --nats` processes share one token budget through JetStream", async () => {
  await using ns = await NatsServer.start();
  await using upstream = await startFakeUpstream((r) =>
    Response.json({
      id: "c",
      object: "chat.completion",
      created: 1,
      model: JSON.parse(r.body).model,
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
    })
  );
  const dir = await Deno.makeTempDir();
  const example = await Deno.readTextFile("testdata/resources/token_ratelimit/token_ratelimit.yaml");
  await Deno.writeTextFile(`${dir}/gateway.yaml`, example.replace("port: 18080", `port: ${upstream.port}`));
  const runs = [];
  for (const i of [0, 1]) {
    runs.push(await startRun([`${dir}/gateway.yaml`, "--nats", ns.url, "--usage-spool", `${dir}/usage-${i}.spool`]));
  }
  try {
    for (const r of runs) assertMatch(r.banner, /enforced by an aggregator replica on NATS/);
    const ask = (port: number, user: string) =>
      fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-user-id": user },
        body: JSON.stringify({ model: "rate-limit-funky-model", messages: [{ role: "user", content: "hi" }] }),
      }).then(async (res) => {
        await res.body?.cancel();
        return res.status;
      });
    const [a, b] = runs.map((r) => r.port) as [number, number];
    assertEquals(await ask(a, "alice"), 200);
    assertEquals(await ask(a, "alice"), 200);
    // alice spent her 10 input tokens through the first gateway; the second learns it from the usage stream.
    await pollUntil("the second gateway to refuse alice", async () => (await ask(b, "alice")) === 429 || undefined, {
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    assertEquals(await ask(b, "bob"), 200);
    const nc = await connect({ servers: ns.url });
    const info = await nc.jetstreamManager().then((jsm) => jsm.streams.info(USAGE_STREAM));
    await nc.close();
    // Every request that reached the provider published exactly one usage event.
    assertEquals(info.state.messages, upstream.seen.length);
  } finally {
    for (const r of runs) assertEquals(await r.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});
