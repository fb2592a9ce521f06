// A soak run: `tollgate run` with the token rate limit example, usage on NATS JetStream (a nats-server this script
// starts) or folded in process, under a bounded-time mixed load. It samples the gateway's memory (RSS from /proc, V8
// heap from its /metrics) at the start, the middle and the end, and counts requests/s and errors.
// Run: deno run -A bench/soak.ts --help
import { parseArgs } from "node:util";
import { connect } from "nats";
import { NatsServer, pollUntil } from "../test/support/nats_server.ts";
import { freePorts } from "../test/support/nats_server.ts";
import { USAGE_STREAM } from "../src/usage/nats_connection.ts";
import { intFlag } from "./support/flags.ts";

const USAGE = `Usage: deno run -A bench/soak.ts [flags]

  --seconds N       length of the measured load (default 120)
  --warmup N        seconds of load before the first memory sample (default 10)
  --concurrency N   clients, each sending one request after the other (default 16)
  --in-process      usage folded inside \`tollgate run\` instead of on NATS JetStream
  --json            print the figures as one JSON line at the end
  -h, --help        show this help

The mix: 55% chat completions, 30% streamed chat completions (read to the end), 5% GET /v1/models, 5% malformed JSON
(400), 5% an unknown model (404). Chat requests carry one of 50 x-user-id values, the first ones far more often than
the rest (1/rank), against 20,000 input tokens an hour each: the busiest users run out and get 429, as expected.
An error is a network failure, a 5xx, or any status other than the one its kind expects.
`;

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "120" },
    warmup: { type: "string", default: "10" },
    concurrency: { type: "string", default: "16" },
    "in-process": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const SECONDS = intFlag("seconds", flags.seconds, 1);
const WARMUP = intFlag("warmup", flags.warmup, 0);
const CONCURRENCY = intFlag("concurrency", flags.concurrency, 1);
const ON_NATS = !flags["in-process"];
const ROOT = new URL("..", import.meta.url).pathname;
const MODEL = "rate-limit-funky-model";
const USERS = 50;
const INPUT_TOKENS_PER_HOUR = 20_000;
const encoder = new TextEncoder();

// The provider: OpenAI-compatible, usage in every answer (the last event of a stream carries it).
let upstreamAnswered = 0;
const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
  const body = await req.json();
  upstreamAnswered++;
  const prompt = String(body.messages?.at(-1)?.content ?? "").length;
  const usage = { prompt_tokens: prompt, completion_tokens: 8, total_tokens: prompt + 8 };
  const base = { id: "chatcmpl-soak", created: 1, model: body.model };
  if (!body.stream) {
    return Response.json({
      ...base,
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "eight words of an answer to the question" } }],
      usage,
    });
  }
  const events = [
    ...["eight ", "words ", "of ", "an ", "answer ", "to ", "the ", "question"].map((content, i) => ({
      ...base,
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content } : { content }, finish_reason: null }],
    })),
    { ...base, object: "chat.completion.chunk", choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
    { ...base, object: "chat.completion.chunk", choices: [], usage },
  ];
  const text = events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n";
  return new Response(encoder.encode(text), { headers: { "content-type": "text/event-stream" } });
});

const nats = ON_NATS ? await NatsServer.start() : undefined;
const dir = await Deno.makeTempDir({ prefix: "tollgate-soak-" });
const config = (await Deno.readTextFile(`${ROOT}testdata/resources/token_ratelimit/token_ratelimit.yaml`))
  .replace("port: 18080", `port: ${upstream.addr.port}`)
  .replace(/requests: 10\n/, `requests: ${INPUT_TOKENS_PER_HOUR}\n`)
  .replace(/requests: (100|1000)\n/g, "requests: 1000000000\n");
await Deno.writeTextFile(`${dir}/gateway.yaml`, config);
const [port, admin] = freePorts(2) as [number, number];
const args = [
  "run",
  `${dir}/gateway.yaml`,
  ...["--listen", `127.0.0.1:${port}`, "--admin", `127.0.0.1:${admin}`, "--access-log", "off"],
  ...(nats ? ["--nats", nats.url, "--usage-spool", `${dir}/usage.spool`] : []),
];
const gateway = new Deno.Command(`${ROOT}bin/tollgate`, {
  args,
  env: { TOLLGATE_LOG_LEVEL: "warn" },
  stdout: "null",
  stderr: "piped",
  stdin: "null",
}).spawn();
const stderr = gateway.stderr.pipeThrough(new TextDecoderStream()).getReader();
let banner = "";
while (!banner.includes("Try it:")) {
  const { value, done } = await stderr.read();
  if (done) throw new Error(`tollgate run exited early:\n${banner}`);
  banner += value;
}
const logs: string[] = [];
const draining = (async () => {
  for (;;) {
    const { value, done } = await stderr.read();
    if (done) return;
    if (logs.length < 50) logs.push(value);
  }
})();
const url = `http://127.0.0.1:${port}`;

interface Memory {
  readonly at: string;
  readonly seconds: number;
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  readonly heapTotalMiB: number;
}

async function sample(at: string, since: number): Promise<Memory> {
  const status = await Deno.readTextFile(`/proc/${gateway.pid}/status`);
  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? NaN);
  return {
    at,
    seconds: Math.round((performance.now() - since) / 100) / 10,
    rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024,
    heapUsedMiB: metric("tollgate_process_nodejs_heap_size_used_bytes") / 2 ** 20,
    heapTotalMiB: metric("tollgate_process_nodejs_heap_size_total_bytes") / 2 ** 20,
  };
}

type Kind = "chat" | "stream" | "models" | "malformed" | "unknown-model";
const EXPECTED: Record<Kind, readonly number[]> = {
  chat: [200, 429],
  stream: [200, 429],
  models: [200],
  malformed: [400],
  "unknown-model": [404],
};

/** 1/rank weights over the users: user 0 gets ~22% of the chat requests, user 49 ~0.4%. */
const WEIGHTS = Array.from({ length: USERS }, (_, i) => 1 / (i + 1));
const WEIGHT_SUM = WEIGHTS.reduce((a, b) => a + b, 0);
function pickUser(r: number): string {
  let x = r * WEIGHT_SUM;
  for (const [i, w] of WEIGHTS.entries()) if ((x -= w) <= 0) return `user-${i}`;
  return `user-${USERS - 1}`;
}

function kindOf(r: number): Kind {
  if (r < 0.55) return "chat";
  if (r < 0.85) return "stream";
  if (r < 0.9) return "models";
  if (r < 0.95) return "malformed";
  return "unknown-model";
}

async function send(kind: Kind): Promise<number> {
  if (kind === "models") {
    const res = await fetch(`${url}/v1/models`);
    await res.arrayBuffer();
    return res.status;
  }
  const content = "x".repeat(1 + Math.floor(Math.random() * 40)).replace(/^xxx$/, "xxxx"); // 3: the example's CEL
  const body = kind === "malformed" ? '{"model": "rate-limit-funky-model", "messages": [{' : JSON.stringify({
    model: kind === "unknown-model" ? "no-such-model" : MODEL,
    messages: [{ role: "user", content }],
    ...(kind === "stream" ? { stream: true } : {}),
  });
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-user-id": pickUser(Math.random()) },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (kind === "stream" && res.status === 200 && !text.includes("[DONE]")) return -1; // cut short
  return res.status;
}

const counts = new Map<string, number>();
const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
let errors = 0;
let requests = 0;
const latencies: number[] = [];
let measuring = false;
let stopped = false;
const errorSamples: string[] = [];

const clients = Array.from({ length: CONCURRENCY }, async () => {
  while (!stopped) {
    const kind = kindOf(Math.random());
    const t0 = performance.now();
    let outcome: string;
    let ok = false;
    try {
      const status = await send(kind);
      outcome = status === -1 ? "stream cut short" : String(status);
      ok = EXPECTED[kind].includes(status);
    } catch (err) {
      outcome = `network: ${(err as Error).message}`;
    }
    if (!measuring) continue;
    requests++;
    latencies.push(performance.now() - t0);
    count(`${kind} ${outcome}`);
    if (!ok) {
      errors++;
      if (errorSamples.length < 10) errorSamples.push(`${kind} ${outcome}`);
    }
  }
});

console.error(
  `soak: ${ON_NATS ? "usage on NATS JetStream" : "usage in process"}, ${CONCURRENCY} clients, ` +
    `${WARMUP} s warmup + ${SECONDS} s measured`,
);
await new Promise((r) => setTimeout(r, WARMUP * 1000));
const started = performance.now();
measuring = true;
const memory: Memory[] = [await sample("start", started)];
await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2));
memory.push(await sample("middle", started));
await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2));
memory.push(await sample("end", started));
measuring = false;
const elapsed = (performance.now() - started) / 1000;
stopped = true;
await Promise.all(clients);
const peakRssMiB = Number(/VmHWM:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${gateway.pid}/status`))![1]) / 1024;

// With NATS: once the gateway drained (SIGTERM), every request the provider answered has its usage event.
gateway.kill("SIGTERM");
const exit = await gateway.status;
await draining;
let usageEvents: number | undefined;
if (nats) {
  const nc = await connect({ servers: nats.url });
  const jsm = await nc.jetstreamManager();
  usageEvents = await pollUntil("the usage stream to hold every event", async () => {
    const n = (await jsm.streams.info(USAGE_STREAM)).state.messages;
    return n >= upstreamAnswered ? n : undefined;
  }, { timeoutMs: 10_000 }).catch(async () => (await jsm.streams.info(USAGE_STREAM)).state.messages);
  await nc.close();
  await nats[Symbol.asyncDispose]();
}
await upstream.shutdown();
await Deno.remove(dir, { recursive: true });

latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
const commit = new TextDecoder().decode(
  (await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], cwd: ROOT }).output()).stdout,
).trim();
const dirty = new TextDecoder().decode(
  (await new Deno.Command("git", { args: ["status", "--porcelain"], cwd: ROOT }).output()).stdout,
).trim() !== "";
const result = {
  date: new Date().toISOString(),
  commit,
  dirty,
  cpus: navigator.hardwareConcurrency,
  loadavg: Deno.loadavg(),
  mode: ON_NATS ? "nats" : "in-process",
  concurrency: CONCURRENCY,
  seconds: Math.round(elapsed * 10) / 10,
  requests,
  requestsPerSecond: Math.round((requests / elapsed) * 10) / 10,
  errors,
  latencyMs: { p50: round(pct(50)), p99: round(pct(99)), max: round(latencies.at(-1) ?? 0) },
  memory,
  peakRssMiB,
  upstreamAnswered,
  usageEvents,
  exitCode: exit.code,
  outcomes: Object.fromEntries([...counts].sort()),
};

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

const f = (x: number) => x.toFixed(1);
console.log(
  `\nSoak ${result.date} commit ${commit}${dirty ? " (dirty)" : ""}, ${result.cpus} CPUs, load average ` +
    `${result.loadavg.map((l) => l.toFixed(1)).join(" ")}`,
);
console.log(
  `mode ${result.mode}, ${CONCURRENCY} clients, ${result.seconds} s: ${requests} requests, ` +
    `${result.requestsPerSecond} req/s, ${errors} errors; latency p50 ${result.latencyMs.p50} ms, ` +
    `p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms`,
);
console.log("\n| sample | s | RSS MiB | V8 heap used MiB | V8 heap total MiB |\n| --- | --- | --- | --- | --- |");
for (const m of memory) {
  console.log(`| ${m.at} | ${m.seconds} | ${f(m.rssMiB)} | ${f(m.heapUsedMiB)} | ${f(m.heapTotalMiB)} |`);
}
console.log(
  `\npeak RSS (VmHWM) ${f(peakRssMiB)} MiB; provider answered ${upstreamAnswered}` +
    (usageEvents === undefined ? "" : `, usage events in the stream ${usageEvents}`) + `; exit code ${exit.code}`,
);
console.log("outcomes:", JSON.stringify(result.outcomes));
if (errorSamples.length > 0) console.log("first errors:", errorSamples);
if (errors > 0 && logs.length > 0) console.log("gateway stderr (first lines):\n" + logs.join("").slice(0, 4000));
if (flags.json) console.log(JSON.stringify(result));
if (errors > 0 || exit.code !== 0) Deno.exitCode = 1;
