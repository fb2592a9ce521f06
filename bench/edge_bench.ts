// The gateway's added latency as a client sees it: an HTTP load generator (closed and open loop) drives the same
// local OpenAI-compatible upstream directly, through `tollgate run` (edge + ExtProc over a Unix socket) and through
// the Portkey gateway (on Node, from npm, installed into bench/portkey/.deps), interleaved so that all three share
// the machine's noise. Run: deno run -A bench/edge_bench.ts --help
import { parseArgs } from "node:util";
import { intFlag } from "./support/flags.ts";

const PORTKEY_VERSION = "1.15.2";
const USAGE = `Usage: deno run -A bench/edge_bench.ts [flags]

  --requests N          measured requests per target and level in each run (default 2000)
  --concurrency LIST    closed-loop clients, comma-separated levels (default 1,8,32; "" for none)
  --rate LIST           open-loop arrival rates in req/s, comma-separated (default 50,100; "" for none): every
                        target gets the same load, and latency counts from when a request was due
  --warmup N            requests per target and level before measuring (default 500; 0 for none)
  --rounds N            slices each target's requests are cut into, interleaved direct, tollgate, portkey
                        (default 3)
  --runs N              repeat the whole sweep; figures are medians over runs (default 1)
  --targets LIST        any of direct,tollgate,portkey (default all three)
  --upstream-delay-ms N the upstream waits this long before answering (default 0)
  --cpu-prof DIR        run tollgate under deno --cpu-prof, writing its V8 profile into DIR
  --svg FILE            also draw p99 latency against the load as an SVG
  --json                print the figures as one JSON line after the table
  -h, --help            show this help

Portkey is @portkey-ai/gateway@${PORTKEY_VERSION}; when bench/portkey/.deps lacks it, the bench installs it there
with npm (see bench/portkey/README.md). Everything listens on 127.0.0.1 only.
`;
const ROOT = new URL("..", import.meta.url).pathname;
const PORTKEY_DEPS = `${ROOT}bench/portkey/.deps`;
const PORTKEY_MAIN = `${PORTKEY_DEPS}/node_modules/@portkey-ai/gateway/build/start-server.js`;
const MODEL = "gpt-4o-mini";
const API_KEY = "x";
/** A request taking longer than this is an error: a hung gateway fails the run instead of stalling it. */
const REQUEST_TIMEOUT_MS = 10_000;
const STARTUP_MS = 60_000;
const SHUTDOWN_MS = 10_000;
const MAX_IN_FLIGHT = 512;

type TargetName = "direct" | "tollgate" | "portkey";
const TARGETS: readonly TargetName[] = ["direct", "tollgate", "portkey"];

interface Level {
  readonly mode: Mode;
  /** Clients for the closed loop, req/s for the open loop. */
  readonly level: number;
}

interface Options {
  readonly requests: number;
  readonly levels: readonly Level[];
  readonly warmup: number;
  readonly rounds: number;
  readonly runs: number;
  readonly targets: readonly TargetName[];
  readonly upstreamDelayMs: number;
  readonly cpuProf: string | undefined;
  readonly svg: string | undefined;
  readonly json: boolean;
  /** Internal: this process is the upstream. */
  readonly serveUpstream: boolean;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      requests: { type: "string", default: "2000" },
      concurrency: { type: "string", default: "1,8,32" },
      rate: { type: "string", default: "50,100" },
      warmup: { type: "string", default: "500" },
      rounds: { type: "string", default: "3" },
      runs: { type: "string", default: "1" },
      targets: { type: "string", default: TARGETS.join(",") },
      "upstream-delay-ms": { type: "string", default: "0" },
      "cpu-prof": { type: "string" },
      svg: { type: "string" },
      json: { type: "boolean", default: false },
      "serve-upstream": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const int = intFlag;
  const targets = values.targets.split(",").map((t) => t.trim());
  for (const t of targets) {
    if (!TARGETS.includes(t as TargetName)) throw new Error(`--targets: unknown target "${t}"`);
  }
  if (!targets.includes("direct")) throw new Error("--targets must include direct: added latency is relative to it");
  const list = (name: string, text: string) =>
    text.split(",").filter((x) => x.trim() !== "").map((x) => int(name, x, 1));
  const levels: Level[] = [
    ...list("concurrency", values.concurrency).map((level) => ({ mode: "closed" as const, level })),
    ...list("rate", values.rate).map((level) => ({ mode: "open" as const, level })),
  ];
  if (levels.length === 0) throw new Error("--concurrency and --rate are both empty: nothing to measure");
  return {
    requests: int("requests", values.requests, 1),
    levels,
    warmup: int("warmup", values.warmup, 0),
    rounds: int("rounds", values.rounds, 1),
    runs: int("runs", values.runs, 1),
    targets: TARGETS.filter((t) => targets.includes(t)),
    upstreamDelayMs: int("upstream-delay-ms", values["upstream-delay-ms"], 0),
    cpuProf: values["cpu-prof"],
    svg: values.svg,
    json: values.json,
    serveUpstream: values["serve-upstream"],
  };
}

// ---- The traffic: a small multi-turn chat request and a realistic ~600-byte answer. ----

const chatBody = JSON.stringify({
  model: MODEL,
  temperature: 0.2,
  max_tokens: 256,
  messages: [
    { role: "system", content: "You are a support assistant for Acme Cloud. Answer concisely and accurately." },
    { role: "user", content: "Our nightly export job fails with 'SignatureDoesNotMatch' since yesterday." },
    { role: "assistant", content: "Was the access key rotated recently, or has the container clock drifted?" },
    { role: "user", content: "The key was rotated two days ago. How do I pick up the new secret without downtime?" },
    { role: "assistant", content: "Update the Secret, then trigger a rolling restart:" },
  ],
});

const chatCompletion = JSON.stringify({
  id: "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  object: "chat.completion",
  created: 1741570283,
  model: "gpt-4o-mini-2024-07-18",
  choices: [{
    index: 0,
    message: {
      role: "assistant",
      content: "Run `kubectl rollout restart deployment/nightly-export`, then `kubectl rollout status " +
        "deployment/nightly-export`. Pods are replaced one at a time, so the job keeps running. A CronJob needs " +
        "no restart: its next run mounts the updated Secret.",
      refusal: null,
    },
    logprobs: null,
    finish_reason: "stop",
  }],
  usage: { prompt_tokens: 94, completion_tokens: 52, total_tokens: 146 },
  service_tier: "default",
  system_fingerprint: "fp_06737a9306",
});

/** `--serve-upstream`: the stand-in provider, in its own process so the load generator does not slow it. */
async function serveUpstream(delayMs: number): Promise<number> {
  const answer = new TextEncoder().encode(chatCompletion);
  const unauthorized = JSON.stringify({ error: { message: "Incorrect API key provided", type: "invalid_request" } });
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (addr) => console.log(JSON.stringify({ upstreamPort: (addr as Deno.NetAddr).port })),
  }, async (req) => {
    await req.arrayBuffer();
    if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/chat/completions") {
      return new Response("not found", { status: 404 });
    }
    // Each gateway must present the provider key it was given, as a real provider would insist.
    if (req.headers.get("authorization") !== `Bearer ${API_KEY}`) {
      return new Response(unauthorized, { status: 401, headers: { "content-type": "application/json" } });
    }
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    return new Response(answer, { headers: { "content-type": "application/json", "openai-processing-ms": "1" } });
  });
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", resolve));
  await server.shutdown();
  return 0;
}

// ---- Processes: the upstream, tollgate and Portkey, each started, awaited until ready, and stopped. ----

interface Server {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  /** The last lines it printed, shown when it fails. */
  readonly tail: string[];
}

/** Starts a process and resolves with the first match of `ready` in its stdout or stderr. */
async function startServer(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ server: Server; match: RegExpExecArray }> {
  const process = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped", stdin: "null" }).spawn();
  const tail: string[] = [];
  let found!: (m: RegExpExecArray) => void;
  const matched = new Promise<RegExpExecArray>((resolve) => (found = resolve));
  // Both pipes are drained to the end, so a chatty server never blocks on a full pipe.
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    let seen = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      tail.push(...chunk.split("\n").filter((l) => l.trim() !== ""));
      tail.splice(0, Math.max(0, tail.length - 8));
      if (seen.length < 100_000) {
        seen += chunk;
        const m = ready.exec(seen);
        if (m) found(m);
      }
    }
  };
  drain(process.stdout).catch(() => {});
  drain(process.stderr).catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const failed = Promise.race([
    process.status.then((s) => `it exited with code ${s.code} before it was ready`),
    new Promise<string>((
      resolve,
    ) => (timer = setTimeout(() => resolve(`not ready after ${STARTUP_MS} ms`), STARTUP_MS))),
  ]);
  const server = { name, process, tail };
  try {
    const match = await Promise.race([matched, failed.then((why) => Promise.reject(new Error(why)))]);
    return { server, match };
  } catch (e) {
    process.kill("SIGKILL");
    await process.status;
    throw new Error(`Cannot start ${name}: ${(e as Error).message}; last output:\n  ${tail.join("\n  ")}`);
  } finally {
    clearTimeout(timer);
  }
}

async function stopServer(s: Server): Promise<string> {
  try {
    s.process.kill("SIGTERM");
  } catch {
    // Already gone: its status says how.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), SHUTDOWN_MS)));
  const status = await Promise.race([s.process.status, expired]);
  clearTimeout(timer);
  if (status) return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
  s.process.kill("SIGKILL");
  await s.process.status;
  return `killed: no exit ${SHUTDOWN_MS / 1000} s after SIGTERM`;
}

const baseEnv = () => ({
  PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  HOME: Deno.env.get("HOME") ?? "/tmp",
  DENO_NO_UPDATE_CHECK: "1",
});

function startUpstream(delayMs: number) {
  const self = new URL(import.meta.url).pathname;
  const args = ["run", "--quiet", "--allow-net", self, "--serve-upstream", "--upstream-delay-ms", String(delayMs)];
  return startServer("the upstream", Deno.execPath(), args, baseEnv(), /"upstreamPort":(\d+)/);
}

function startTollgate(upstreamPort: number, cpuProf: string | undefined) {
  const env = { ...baseEnv(), OPENAI_API_KEY: API_KEY, OPENAI_BASE_URL: `http://127.0.0.1:${upstreamPort}/v1` };
  const flags = ["run", "--listen", "127.0.0.1:0", "--admin", "off", "--access-log", "off", "--log-level", "warn"];
  const ready = /serving an OpenAI-compatible API on http:\/\/127\.0\.0\.1:(\d+)\/v1[\s\S]*Try it:/;
  // bin/tollgate execs Deno, so the child's pid is the gateway's own; profiling needs Deno's flags, so no wrapper.
  if (cpuProf === undefined) return startServer("tollgate", `${ROOT}bin/tollgate`, flags, env, ready);
  const deno = [
    "run",
    "--quiet",
    "--allow-all",
    `--config=${ROOT}deno.json`,
    "--cpu-prof",
    `--cpu-prof-dir=${cpuProf}`,
  ];
  return startServer("tollgate", Deno.execPath(), [...deno, `${ROOT}src/main.ts`, ...flags], env, ready);
}

async function installPortkey(): Promise<void> {
  if (await Deno.stat(PORTKEY_MAIN).then(() => true, () => false)) return;
  console.error(`Installing @portkey-ai/gateway@${PORTKEY_VERSION} into bench/portkey/.deps (once)…`);
  const out = await new Deno.Command("npm", {
    args: [
      "install",
      "--prefix",
      PORTKEY_DEPS,
      "--no-audit",
      "--no-fund",
      "--ignore-scripts",
      `@portkey-ai/gateway@${PORTKEY_VERSION}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => {
    throw new Error(`Cannot install Portkey: npm could not run (${(e as Error).message})`);
  });
  if (!out.success) {
    const lines = new TextDecoder().decode(out.stderr).split("\n").filter((l) => l.startsWith("npm error"));
    throw new Error(`Cannot install Portkey: npm exited with ${out.code}: ${lines.slice(0, 2).join(" / ")}`);
  }
}

async function startPortkey() {
  await installPortkey();
  const port = freePort();
  // --headless and production skip its console UI and log stream; it then listens on --port with @hono/node-server.
  const env = { ...baseEnv(), NODE_ENV: "production" };
  const started = await startServer("portkey", "node", [PORTKEY_MAIN, `--port=${port}`, "--headless"], env, /Ready/);
  return { ...started, port };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

// ---- Load: closed-loop workers (one request in flight each) or an open-loop schedule, over fetch's keep-alive pool.

interface Target {
  readonly name: TargetName;
  readonly url: string;
  readonly headers: Record<string, string>;
  /** The process that serves it, for its CPU time; none for direct. */
  readonly pid: number | undefined;
}

/** Closed loop: `level` clients each send their next request when the last one is answered. Open loop: `level`
 * requests a second on a fixed schedule, whether or not earlier ones were answered. */
type Mode = "closed" | "open";

interface Slice {
  readonly latenciesMs: number[];
  readonly seconds: number;
  readonly errors: number;
  readonly samples: string[];
  readonly cpuMicros: number;
  readonly clientCpuMicros: number;
}

class Recorder {
  readonly latenciesMs: number[] = [];
  readonly samples: string[] = [];
  errors = 0;

  /** One request; its latency counts from `since`, which for the open loop is when it was due, not when sent. */
  async send(target: Target, since: number): Promise<void> {
    try {
      const res = await fetch(target.url, {
        method: "POST",
        headers: target.headers,
        body: chatBody,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
      this.latenciesMs.push(performance.now() - since);
    } catch (e) {
      this.fail(e instanceof Error ? e.message : String(e));
    }
  }

  fail(why: string): void {
    this.errors++;
    if (this.samples.length < 3 && !this.samples.includes(why)) this.samples.push(why);
  }
}

async function closedLoop(target: Target, total: number, concurrency: number, r: Recorder): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      next++;
      await r.send(target, performance.now());
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}

async function openLoop(target: Target, total: number, rate: number, r: Recorder): Promise<void> {
  const start = performance.now();
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < total; i++) {
    const due = start + i * 1000 / rate;
    const wait = due - performance.now();
    if (wait >= 1) await new Promise((resolve) => setTimeout(resolve, wait));
    // A target that cannot keep up would otherwise pile up requests without bound.
    if (inFlight.size >= MAX_IN_FLIGHT) {
      r.fail(`more than ${MAX_IN_FLIGHT} requests in flight: the target cannot keep up with ${rate} req/s`);
      continue;
    }
    const sent: Promise<void> = r.send(target, due).finally(() => inFlight.delete(sent));
    inFlight.add(sent);
  }
  await Promise.all(inFlight);
}

async function load(target: Target, total: number, mode: Mode, level: number, ticks: number): Promise<Slice> {
  const r = new Recorder();
  const cpu0 = target.pid ? await cpuMicros(target.pid, ticks) : 0;
  const client0 = await cpuMicros(Deno.pid, ticks);
  const start = performance.now();
  await (mode === "closed" ? closedLoop(target, total, level, r) : openLoop(target, total, level, r));
  const seconds = (performance.now() - start) / 1000;
  const client = await cpuMicros(Deno.pid, ticks) - client0;
  const cpu = target.pid ? await cpuMicros(target.pid, ticks) - cpu0 : 0;
  const { latenciesMs, errors, samples } = r;
  return { latenciesMs, seconds, errors, samples, cpuMicros: cpu, clientCpuMicros: client };
}

/** The 1, 5 and 15-minute load averages: other work on the machine shows here. */
async function loadavg(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" ");
}

/** utime + stime of a whole process (all threads), in microseconds. */
async function cpuMicros(pid: number, ticksPerSecond: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / ticksPerSecond;
}

/** One request through every path, before measuring: all must answer 200 with the upstream's own answer. */
async function verify(targets: readonly Target[]): Promise<string[]> {
  const notes: string[] = [];
  const expected = JSON.parse(chatCompletion);
  for (const t of targets) {
    const res = await fetch(t.url, { method: "POST", headers: t.headers, body: chatBody });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${t.name} answered ${res.status} instead of 200: ${text.slice(0, 300)}`);
    if (text === chatCompletion) continue;
    if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(expected)) {
      throw new Error(`${t.name} changed the upstream's answer:\n  ${text.slice(0, 400)}`);
    }
    notes.push(
      `${t.name} re-serialises the body (same JSON, different bytes: ${text.length} vs ${chatCompletion.length})`,
    );
  }
  return notes;
}

// ---- Figures. ----

interface Cell {
  readonly reqPerSec: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  /** The serving process's CPU time per request (µs), all threads. */
  readonly cpuUsPerRequest: number | null;
  /** The load generator's, which competes with the gateways for the same cores. */
  readonly clientCpuUsPerRequest: number;
  readonly errors: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]!;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function cell(slices: readonly Slice[], hasPid: boolean): Cell {
  const sorted = Float64Array.from(slices.flatMap((s) => s.latenciesMs)).sort();
  const seconds = slices.reduce((a, s) => a + s.seconds, 0);
  const cpu = slices.reduce((a, s) => a + s.cpuMicros, 0);
  return {
    reqPerSec: round(sorted.length / seconds, 0),
    p50: round(percentile(sorted, 50), 3),
    p90: round(percentile(sorted, 90), 3),
    p99: round(percentile(sorted, 99), 3),
    max: round(sorted[sorted.length - 1] ?? NaN, 3),
    cpuUsPerRequest: hasPid ? round(cpu / sorted.length, 0) : null,
    clientCpuUsPerRequest: round(slices.reduce((a, s) => a + s.clientCpuMicros, 0) / sorted.length, 0),
    errors: slices.reduce((a, s) => a + s.errors, 0),
  };
}

interface Row extends Cell, Level {
  readonly target: TargetName;
  /** Median over runs of (this target's percentile − direct's) within the same run. */
  readonly addedP50: number | null;
  readonly addedP99: number | null;
  readonly perRun: readonly Cell[];
}

const levelKey = (l: Level) => `${l.mode}:${l.level}`;
const levelLabel = (l: Level) => (l.mode === "closed" ? `c=${l.level}` : `${l.level}/s`);

function summarise(o: Options, targets: readonly TargetName[], runs: Map<string, Cell>[]): Row[] {
  const rows: Row[] = [];
  for (const l of o.levels) {
    for (const target of targets) {
      const perRun = runs.map((r) => r.get(`${levelKey(l)}/${target}`)!);
      const direct = runs.map((r) => r.get(`${levelKey(l)}/direct`)!);
      const med = (f: (x: Cell) => number) => round(median(perRun.map(f)), 3);
      const added = (f: (x: Cell) => number) =>
        target === "direct" ? null : round(median(perRun.map((x, i) => f(x) - f(direct[i]!))), 3);
      rows.push({
        ...l,
        target,
        reqPerSec: med((x) => x.reqPerSec),
        p50: med((x) => x.p50),
        p90: med((x) => x.p90),
        p99: med((x) => x.p99),
        max: med((x) => x.max),
        cpuUsPerRequest: perRun[0]!.cpuUsPerRequest === null ? null : med((x) => x.cpuUsPerRequest!),
        clientCpuUsPerRequest: med((x) => x.clientCpuUsPerRequest),
        errors: perRun.reduce((a, x) => a + x.errors, 0),
        addedP50: added((x) => x.p50),
        addedP99: added((x) => x.p99),
        perRun,
      });
    }
  }
  return rows;
}

function printTable(rows: readonly Row[]): void {
  const head = ["load", "target", "req/s", "p50 ms", "p90 ms", "p99 ms", "+p50 ms", "+p99 ms", "cpu µs/req", "errors"];
  const widths = [7, 9, 7, 8, 8, 8, 8, 8, 11, 6];
  const line = (cells: string[]) => cells.map((x, i) => i < 2 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!));
  const show = (x: number | null, digits = 2) => (x === null ? "—" : x.toFixed(digits));
  console.log(line(head).join(" "));
  for (const r of rows) {
    const figures = [r.reqPerSec.toFixed(0), show(r.p50), show(r.p90), show(r.p99), show(r.addedP50)];
    const rest = [show(r.addedP99), show(r.cpuUsPerRequest, 0), String(r.errors)];
    console.log(line([levelLabel(r), r.target, ...figures, ...rest]).join(" "));
  }
}

const COLOURS: Record<TargetName, string> = { direct: "#7f7f7f", tollgate: "#1f77b4", portkey: "#d62728" };

/** p99 against the load, one panel per mode and one line per target, on log axes. Hand-written SVG, so the bench
 * needs no plotting library; rsvg-convert turns it into a PNG. */
function svgPlot(rows: readonly Row[], title: string): string {
  const modes = (["closed", "open"] as const).filter((m) => rows.some((r) => r.mode === m));
  const [pw, h, left, top, bottom, legend] = [430, 420, 70, 60, 55, 120];
  const w = modes.length * pw + legend;
  const ys = rows.map((r) => r.p99).filter((v) => v > 0);
  const [lo, hi] = [Math.log10(Math.min(...ys)) - 0.1, Math.log10(Math.max(...ys)) + 0.1];
  const y = (v: number) => top + (1 - (Math.log10(v) - lo) / (hi - lo)) * (h - top - bottom);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="DejaVu Sans" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${w / 2}" y="22" text-anchor="middle" font-size="15">${title}</text>`,
  ];
  modes.forEach((mode, panel) => {
    const [x0, x1] = [panel * pw + left, (panel + 1) * pw - 20];
    const levels = [...new Set(rows.filter((r) => r.mode === mode).map((r) => r.level))].sort((a, b) => a - b);
    const [llo, lhi] = [Math.log2(levels[0]!), Math.log2(levels.at(-1)!)];
    const x = (l: number) => x0 + (lhi === llo ? 0.5 : (Math.log2(l) - llo) / (lhi - llo)) * (x1 - x0 - 30) + 15;
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e;
        if (Math.log10(v) < lo || Math.log10(v) > hi) continue;
        out.push(`<line x1="${x0}" x2="${x1}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
        out.push(`<text x="${x0 - 6}" y="${y(v) + 4}" text-anchor="end">${Number(v.toPrecision(1))}</text>`);
      }
    }
    for (const l of levels) {
      out.push(`<line x1="${x(l)}" x2="${x(l)}" y1="${top}" y2="${h - bottom}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${x(l)}" y="${h - bottom + 18}" text-anchor="middle">${l}</text>`);
    }
    const axis = mode === "closed" ? "concurrent clients (closed loop)" : "offered load, req/s (open loop)";
    out.push(
      `<rect x="${x0}" y="${top}" width="${x1 - x0}" height="${h - top - bottom}" fill="none" stroke="#333"/>`,
      `<text x="${(x0 + x1) / 2}" y="${h - 14}" text-anchor="middle">${axis}</text>`,
      `<text transform="translate(${x0 - 50} ${(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">` +
        `p99 latency (ms)</text>`,
    );
    for (const t of TARGETS) {
      const pts = rows.filter((r) => r.mode === mode && r.target === t && r.p99 > 0).map((r) => [x(r.level), y(r.p99)]);
      if (pts.length === 0) continue;
      out.push(`<polyline points="${pts.join(" ")}" fill="none" stroke="${COLOURS[t]}" stroke-width="2.5"/>`);
      for (const [px, py] of pts) out.push(`<circle cx="${px}" cy="${py}" r="4" fill="${COLOURS[t]}"/>`);
    }
  });
  TARGETS.filter((t) => rows.some((r) => r.target === t)).forEach((t, i) => {
    const [lx, ly] = [modes.length * pw + 5, top + 20 + i * 22];
    out.push(
      `<line x1="${lx}" x2="${lx + 25}" y1="${ly}" y2="${ly}" stroke="${COLOURS[t]}" stroke-width="2.5"/>`,
      `<text x="${lx + 31}" y="${ly + 4}">${t}</text>`,
    );
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

async function output(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "null" }).output()
    .catch(() => undefined);
  return out?.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(Deno.args);
  } catch (e) {
    console.error(`edge_bench: ${e instanceof Error ? e.message.split("\n")[0] : e}\n\n${USAGE}`);
    return 2;
  }
  if (o.serveUpstream) return await serveUpstream(o.upstreamDelayMs);
  const ticks = Number(await output("getconf", ["CLK_TCK"])) || 100;
  const commit = await output("git", ["rev-parse", "--short", "HEAD"]);
  const status = ["--no-optional-locks", "status", "--porcelain", "--", "src", "bin", "deno.json", "package.json"];
  const dirty = (await output("git", status)) !== "";
  if (o.cpuProf !== undefined) await Deno.mkdir(o.cpuProf, { recursive: true });

  const servers: Server[] = [];
  const exits: Record<string, string> = {};
  const runs: Map<string, Cell>[] = [];
  const errorSamples = new Set<string>();
  let notes: string[] = [];
  const loadAverage: string[] = [];
  const skipped: string[] = [];
  let measured: TargetName[] = [];
  let warmupErrors = 0;
  try {
    const upstream = await startUpstream(o.upstreamDelayMs);
    servers.push(upstream.server);
    const upstreamPort = Number(upstream.match[1]);
    const chat = "/v1/chat/completions";
    const json = { "content-type": "application/json", accept: "application/json" };
    const targets: Target[] = [{
      name: "direct",
      url: `http://127.0.0.1:${upstreamPort}${chat}`,
      headers: { ...json, authorization: `Bearer ${API_KEY}` },
      pid: undefined,
    }];
    if (o.targets.includes("tollgate")) {
      const t = await startTollgate(upstreamPort, o.cpuProf);
      servers.push(t.server);
      targets.push({
        name: "tollgate",
        url: `http://127.0.0.1:${t.match[1]}${chat}`,
        // Tollgate swaps the client's key for the provider key it holds.
        headers: { ...json, authorization: "Bearer sk-client-key" },
        pid: t.server.process.pid,
      });
    }
    // Portkey is the comparison, not the subject: when it cannot be installed or started, say why and measure the rest.
    const p = o.targets.includes("portkey")
      ? await startPortkey().catch((e) => {
        skipped.push(`portkey skipped: ${(e as Error).message}`);
        return undefined;
      })
      : undefined;
    if (p) {
      servers.push(p.server);
      targets.push({
        name: "portkey",
        url: `http://127.0.0.1:${p.port}${chat}`,
        // Portkey's OpenAI provider forwards the client's key; the custom host points it at the local upstream.
        headers: {
          ...json,
          authorization: `Bearer ${API_KEY}`,
          "x-portkey-provider": "openai",
          "x-portkey-custom-host": `http://127.0.0.1:${upstreamPort}/v1`,
        },
        pid: p.server.process.pid,
      });
    }
    measured = targets.map((t) => t.name);
    notes = await verify(targets);
    loadAverage.push(await loadavg());
    for (let run = 0; run < o.runs; run++) {
      const cells = new Map<string, Cell>();
      for (const l of o.levels) {
        for (const t of targets) {
          if (o.warmup === 0) continue;
          const w = await load(t, o.warmup, l.mode, l.level, ticks);
          warmupErrors += w.errors;
          w.samples.forEach((why) => errorSamples.add(`${t.name} (warm-up): ${why}`));
        }
        const slices = new Map<TargetName, Slice[]>(targets.map((t) => [t.name, []]));
        // Round-robin slices, so a burst of outside noise lands on every target rather than on one.
        for (let r = 0; r < o.rounds; r++) {
          const n = Math.floor(o.requests / o.rounds) + (r < o.requests % o.rounds ? 1 : 0);
          for (const t of targets) slices.get(t.name)!.push(await load(t, n, l.mode, l.level, ticks));
        }
        for (const t of targets) {
          const s = slices.get(t.name)!;
          s.flatMap((x) => x.samples).forEach((why) => errorSamples.add(`${t.name}: ${why}`));
          cells.set(`${levelKey(l)}/${t.name}`, cell(s, t.pid !== undefined));
        }
        console.error(`run ${run + 1}/${o.runs}: ${levelLabel(l)} done`);
      }
      runs.push(cells);
    }
    loadAverage.push(await loadavg());
  } finally {
    for (const s of servers.toReversed()) exits[s.name] = await stopServer(s);
  }

  const rows = summarise(o, measured, runs);
  const cpuModel = /model name\s*:\s*(.*)/.exec(await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))?.[1];
  console.log(
    `edge_bench: ${o.requests} requests per target and level in ${o.rounds} interleaved rounds, ` +
      `${o.warmup} warm-up, ${o.runs} run(s)${
        o.runs > 1 ? " (medians)" : ""
      }; upstream delay ${o.upstreamDelayMs} ms; ` +
      `${navigator.hardwareConcurrency} CPUs shared by the load generator, the upstream and the gateways; ` +
      `load average ${loadAverage.join(" → ")}`,
  );
  printTable(rows);
  for (const n of [...skipped, ...notes]) console.log(`note: ${n}`);
  for (const why of errorSamples) console.error(`error: ${why}`);
  // Node has no SIGTERM handler unless the app installs one, and Portkey does not: dying by it is its normal stop.
  const badExits = Object.entries(exits).filter(([name, e]) =>
    e !== "code 0" && !(name === "portkey" && e === "signal SIGTERM")
  );
  for (const [name, e] of badExits) console.error(`${name} exited with ${e}`);
  if (o.svg !== undefined) {
    const title = `p99 latency, ${o.runs > 1 ? `median of ${o.runs} runs, ` : ""}${navigator.hardwareConcurrency} CPUs`;
    await Deno.writeTextFile(o.svg, svgPlot(rows, title));
  }
  if (o.json) {
    console.log(JSON.stringify({
      bench: "edge",
      date: new Date().toISOString(),
      commit,
      dirty,
      requests: o.requests,
      warmup: o.warmup,
      rounds: o.rounds,
      runs: o.runs,
      upstreamDelayMs: o.upstreamDelayMs,
      portkey: measured.includes("portkey") ? PORTKEY_VERSION : null,
      results: rows,
      warmupErrors,
      notes: [...skipped, ...notes],
      exits,
      loadAverage,
      cpus: navigator.hardwareConcurrency,
      cpuModel: cpuModel ?? "unknown",
      deno: Deno.version.deno,
      node: measured.includes("portkey") ? await output("node", ["--version"]) : null,
    }));
  }
  if (warmupErrors > 0) console.error(`${warmupErrors} warm-up request(s) failed`);
  return rows.some((r) => r.errors > 0) || warmupErrors > 0 || badExits.length > 0 ? 1 : 0;
}

Deno.exit(await main());
