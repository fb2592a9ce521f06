// Drives full non-streaming chat lifecycles against a real `tollgate extproc` subprocess, the way Envoy would
// (one HTTP/2 connection, streams multiplexed on it), and prints throughput, client-side latency and the sidecar's
// CPU time per request. Run: deno run -A bench/extproc_bench.ts --help
import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import {
  ExternalProcessorService,
  ProcessingRequest,
  ProcessingResponse,
} from "../src/protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { bodyRequest, headersRequest } from "../src/protocol/ext_proc_request.ts";
import { ROLE_METADATA } from "../src/extproc/server.ts";
import { MODEL_HEADER, ORIGINAL_PATH_HEADER, REQUEST_ID_HEADER } from "../src/actors/router_stream.ts";

const USAGE = `Usage: deno run -A bench/extproc_bench.ts [flags]

  --requests N        measured lifecycles (default 20000)
  --concurrency C     lifecycles in flight at once (default 16)
  --transport T       unix or tcp (default unix)
  --warmup N          lifecycles run before measuring (default 2000; 0 for none)
  -h, --help          show this help
`;
const MODEL = "gpt-4o-mini";
/** No lifecycle finishing for this long means the sidecar hangs: cancel what is open and fail the run. */
const STALL_MS = 15_000;
const STARTUP_MS = 30_000;
const SHUTDOWN_MS = 15_000;

interface Options {
  readonly requests: number;
  readonly concurrency: number;
  readonly transport: "unix" | "tcp";
  readonly warmup: number;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      requests: { type: "string", default: "20000" },
      concurrency: { type: "string", default: "16" },
      transport: { type: "string", default: "unix" },
      warmup: { type: "string", default: "2000" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const int = (name: string, text: string, min: number) => {
    const n = Number(text);
    if (text.trim() === "" || !Number.isSafeInteger(n) || n < min) {
      throw new Error(`--${name} must be an integer of at least ${min}, got "${text}"`);
    }
    return n;
  };
  if (values.transport !== "unix" && values.transport !== "tcp") {
    throw new Error(`--transport must be unix or tcp, got "${values.transport}"`);
  }
  return {
    requests: int("requests", values.requests, 1),
    concurrency: int("concurrency", values.concurrency, 1),
    transport: values.transport,
    warmup: int("warmup", values.warmup, 0),
  };
}

// ---- The traffic: what Envoy sends for an OpenAI Python client's chat request and a real OpenAI answer. ----

const chatBody = JSON.stringify({
  model: MODEL,
  temperature: 0.2,
  max_tokens: 512,
  messages: [
    {
      role: "system",
      content: "You are a support assistant for Acme Cloud. Answer concisely and accurately, cite the relevant " +
        "documentation page when you can, and never invent configuration options. If a question is about billing, " +
        "direct the user to the billing portal. Format code and commands as Markdown code blocks.",
    },
    {
      role: "user",
      content: "Our nightly export job to object storage started failing yesterday with 'SignatureDoesNotMatch'. " +
        "Nothing changed in our code. The job runs in a container on the managed Kubernetes service, region eu-west-2.",
    },
    {
      role: "assistant",
      content: "A sudden SignatureDoesNotMatch with unchanged code usually has one of three causes: the access key " +
        "was rotated and the pod still has the old secret, the container clock has drifted by more than 15 minutes, " +
        "or a proxy rewrites a signed header. Could you check when the key was last rotated and run `date -u` in " +
        "the pod to compare it with the real time?",
    },
    {
      role: "user",
      content: "The key was rotated two days ago by our security team, and the pod still mounts the secret from " +
        "the old version. How do I make the deployment pick up the new secret without downtime?",
    },
    {
      role: "assistant",
      content: "Update the Secret, then trigger a rolling restart so new pods mount the new value while old ones " +
        "keep serving:",
    },
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
      content: "```sh\nkubectl create secret generic export-credentials --from-env-file=new.env " +
        "--dry-run=client -o yaml | kubectl apply -f -\nkubectl rollout restart deployment/nightly-export\n" +
        "kubectl rollout status deployment/nightly-export\n```\n\nThe rolling restart replaces pods one at a time " +
        "(respecting `maxUnavailable`), so the job keeps running. If the export runs as a CronJob instead, no " +
        "restart is needed: the next run mounts the updated Secret. See Docs › Kubernetes › Rotating secrets.",
      refusal: null,
      annotations: [],
    },
    logprobs: null,
    finish_reason: "stop",
  }],
  usage: {
    prompt_tokens: 312,
    completion_tokens: 118,
    total_tokens: 430,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  },
  service_tier: "default",
  system_fingerprint: "fp_06737a9306",
});

const requestHeaders: Record<string, string> = {
  ":method": "POST",
  ":scheme": "http",
  ":path": "/v1/chat/completions",
  ":authority": "gateway.local",
  "content-type": "application/json",
  "content-length": String(new TextEncoder().encode(chatBody).length),
  accept: "application/json",
  authorization: "Bearer sk-bench-0000000000000000000000000000000000000000",
  "user-agent": "OpenAI/Python 1.55.3",
  "x-forwarded-proto": "http",
  "x-request-id": "5f0c3a4e-8d0b-4f6a-9a53-2f1a6f3d9c11",
};
const responseHeaders: Record<string, string> = {
  ":status": "200",
  "content-type": "application/json",
  "content-length": String(new TextEncoder().encode(chatCompletion).length),
  date: "Mon, 10 Mar 2025 01:31:23 GMT",
  "openai-processing-ms": "734",
  "x-envoy-upstream-service-time": "741",
};

const encode = (r: ProcessingRequest) => ProcessingRequest.encode(r).finish();
// Encoded once: the bench measures the sidecar, so the client spends as little CPU as it easily can.
const ROUTER_MESSAGES = {
  requestHeaders: encode(headersRequest("requestHeaders", requestHeaders)),
  requestBody: encode(bodyRequest("requestBody", chatBody)),
  responseHeaders: encode(headersRequest("responseHeaders", responseHeaders)),
  responseBody: encode(bodyRequest("responseBody", chatCompletion)),
};
/** The attempt's headers are the request's after the router's mutations; only the request id varies. */
function attemptHeaders(requestId: string): Uint8Array {
  return encode(headersRequest("requestHeaders", {
    ...requestHeaders,
    [MODEL_HEADER]: MODEL,
    [ORIGINAL_PATH_HEADER]: "/v1/chat/completions",
    [REQUEST_ID_HEADER]: requestId,
  }));
}

// ---- A lean client: pre-encoded requests in, decoded responses out, one pending exchange per stream. ----

const RawExtProcClient = grpc.makeGenericClientConstructor({
  process: {
    ...ExternalProcessorService.process,
    requestSerialize: (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    requestDeserialize: (b: Buffer) => b,
  },
}, "envoy.service.ext_proc.v3.ExternalProcessor");
type RawCall = grpc.ClientDuplexStream<Uint8Array, ProcessingResponse>;

class LifecycleError extends Error {
  override name = "LifecycleError";
}

class BenchStream {
  readonly #call: RawCall;
  readonly #queue: ProcessingResponse[] = [];
  #waiter: ((r: ProcessingResponse | undefined) => void) | undefined;
  #code: number | undefined;
  readonly ended: Promise<{ code: number; details: string }>;

  constructor(call: RawCall, live: Set<RawCall>) {
    this.#call = call;
    live.add(call);
    this.ended = new Promise((resolve) => {
      call.on("status", (s: grpc.StatusObject) => {
        live.delete(call);
        this.#code = s.code;
        this.#waiter?.(undefined);
        resolve({ code: s.code, details: s.details });
      });
    });
    call.on("data", (r: ProcessingResponse) => {
      const w = this.#waiter;
      this.#waiter = undefined;
      if (w) w(r);
      else this.#queue.push(r);
    });
    call.on("error", () => {/* reported through "status" */});
  }

  async exchange(message: Uint8Array, expect: string): Promise<ProcessingResponse> {
    this.#call.write(message);
    const r = this.#queue.shift() ??
      (this.#code === undefined
        ? await new Promise<ProcessingResponse | undefined>((w) => (this.#waiter = w))
        : undefined);
    if (r === undefined) throw new LifecycleError(`stream ended (code ${this.#code}) before the ${expect} response`);
    if (r.response?.$case !== expect) {
      throw new LifecycleError(`expected a ${expect} response, got ${r.response?.$case ?? "an empty one"}`);
    }
    return r;
  }
}

const utf8 = new TextDecoder();
function setHeader(r: ProcessingResponse, name: string): string | undefined {
  const v = r.response?.value as {
    response?: { headerMutation?: { setHeaders: { header?: { key: string; rawValue: Uint8Array } }[] } };
  };
  const h = v.response?.headerMutation?.setHeaders.find((s) => s.header?.key === name)?.header;
  return h ? utf8.decode(h.rawValue) : undefined;
}

class Driver {
  readonly live = new Set<RawCall>();
  readonly #client: grpc.Client & { process(md: grpc.Metadata): RawCall };
  readonly #router = new grpc.Metadata();
  readonly #upstream = new grpc.Metadata();

  constructor(target: string) {
    this.#client = new RawExtProcClient(target, grpc.credentials.createInsecure()) as never;
    this.#upstream.set(ROLE_METADATA, "upstream");
  }

  /** One request: 4 router messages and 1 attempt message, each answered with the matching type. */
  async lifecycle(): Promise<void> {
    const router = new BenchStream(this.#client.process(this.#router), this.live);
    await router.exchange(ROUTER_MESSAGES.requestHeaders, "requestHeaders");
    const routed = await router.exchange(ROUTER_MESSAGES.requestBody, "requestBody");
    const requestId = setHeader(routed, REQUEST_ID_HEADER);
    if (!requestId) throw new LifecycleError(`the requestBody response did not set ${REQUEST_ID_HEADER}`);
    const model = setHeader(routed, MODEL_HEADER);
    if (model !== MODEL) throw new LifecycleError(`the requestBody response set ${MODEL_HEADER} to ${model}`);
    const attempt = new BenchStream(this.#client.process(this.#upstream), this.live);
    await attempt.exchange(attemptHeaders(requestId), "requestHeaders");
    const a = await attempt.ended;
    if (a.code !== 0) throw new LifecycleError(`the attempt stream ended with code ${a.code}: ${a.details}`);
    await router.exchange(ROUTER_MESSAGES.responseHeaders, "responseHeaders");
    await router.exchange(ROUTER_MESSAGES.responseBody, "responseBody");
    const r = await router.ended;
    if (r.code !== 0) throw new LifecycleError(`the router stream ended with code ${r.code}: ${r.details}`);
  }

  close(): void {
    this.#client.close();
  }
}

// ---- Running phases, measuring, reporting. ----

interface PhaseResult {
  readonly latenciesMs: Float64Array;
  readonly seconds: number;
  readonly errors: number;
  readonly samples: string[];
  readonly stalled: boolean;
}

async function runPhase(driver: Driver, total: number, concurrency: number): Promise<PhaseResult> {
  const latenciesMs = new Float64Array(total);
  const samples: string[] = [];
  let next = 0;
  let done = 0;
  let errors = 0;
  let stalled = false;
  let lastDone = 0;
  let lastProgress = performance.now();
  const watchdog = setInterval(() => {
    if (done !== lastDone) [lastDone, lastProgress] = [done, performance.now()];
    else if (performance.now() - lastProgress > STALL_MS) {
      stalled = true;
      for (const call of driver.live) call.cancel();
    }
  }, 1000);
  const worker = async () => {
    while (!stalled && next < total) {
      const i = next++;
      const t0 = performance.now();
      try {
        await driver.lifecycle();
      } catch (e) {
        errors++;
        const why = e instanceof Error ? e.message : String(e);
        if (samples.length < 5 && !samples.includes(why)) samples.push(why);
      }
      latenciesMs[i] = performance.now() - t0;
      done++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  const seconds = (performance.now() - start) / 1000;
  clearInterval(watchdog);
  if (stalled) samples.push(`no lifecycle finished for ${STALL_MS / 1000} s; open streams were cancelled`);
  return { latenciesMs: latenciesMs.subarray(0, done), seconds, errors: errors + (total - done), samples, stalled };
}

/** utime + stime of a whole process (all threads), in microseconds. */
async function cpuMicros(pid: number, ticksPerSecond: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the parenthesised command name, which may itself contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / ticksPerSecond;
}

async function rssMiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await Deno.readTextFile(`/proc/${pid}/status`));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

async function output(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
}

interface Sidecar {
  readonly process: Deno.ChildProcess;
  readonly target: string;
  /** Lines the sidecar logged at warn or above after it started listening. */
  readonly warnings: string[];
}

async function startSidecar(listen: string): Promise<Sidecar> {
  const bin = new URL("../bin/tollgate", import.meta.url).pathname;
  const args = [
    "extproc",
    "--listen",
    listen,
    "--admin",
    "off",
    "--log-level",
    "info",
    "--model",
    MODEL,
    "--grace",
    "5",
  ];
  const process = new Deno.Command(bin, { args, stdout: "piped", stderr: "inherit", stdin: "null" }).spawn();
  const warnings: string[] = [];
  let listening!: (address: string) => void;
  const ready = new Promise<string>((resolve) => (listening = resolve));
  // Drained to the end, so a chatty sidecar never blocks on a full pipe.
  (async () => {
    let buffered = "";
    for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (buffered + chunk).split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        let entry: { level?: number; msg?: string; address?: string };
        try {
          entry = JSON.parse(line);
        } catch {
          entry = { level: 40 };
        }
        if (entry.msg === "ExtProc server listening" && entry.address) listening(entry.address);
        else if ((entry.level ?? 0) >= 40) warnings.push(line);
      }
    }
  })().catch((e) => console.error(`Cannot read the sidecar's log: ${e}`));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const failed = Promise.race([
    process.status.then((s) => `it exited with code ${s.code} before listening`),
    new Promise<string>((
      resolve,
    ) => (timer = setTimeout(() => resolve(`not listening after ${STARTUP_MS} ms`), STARTUP_MS))),
  ]);
  const target = await Promise.race([ready, failed.then((why) => Promise.reject(new Error(why)))]).catch((e) => {
    process.kill("SIGKILL");
    throw new Error(`Cannot start the sidecar: ${e instanceof Error ? e.message : e}`);
  }).finally(() => clearTimeout(timer));
  return { process, target, warnings };
}

async function stopSidecar(s: Sidecar): Promise<number> {
  s.process.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), SHUTDOWN_MS)));
  const status = await Promise.race([s.process.status, killed]);
  clearTimeout(timer);
  if (status) return status.code;
  s.process.kill("SIGKILL");
  await s.process.status;
  return -1;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]!;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(Deno.args);
  } catch (e) {
    console.error(`extproc_bench: ${e instanceof Error ? e.message.split("\n")[0] : e}\n\n${USAGE}`);
    return 2;
  }
  const ticks = Number(await output("getconf", ["CLK_TCK"])) || 100;
  const dir = o.transport === "unix" ? await Deno.makeTempDir({ prefix: "tollgate-bench-" }) : undefined;
  const sidecar = await startSidecar(dir ? `unix://${dir}/extproc.sock` : "127.0.0.1:0");
  const pid = sidecar.process.pid;
  const driver = new Driver(sidecar.target);
  let measured: PhaseResult, sidecarCpu: number, clientCpu: number, rss: number;
  let warm: PhaseResult | undefined;
  try {
    if (o.warmup > 0) warm = await runPhase(driver, o.warmup, o.concurrency);
    const [s0, c0] = [await cpuMicros(pid, ticks), await cpuMicros(Deno.pid, ticks)];
    measured = await runPhase(driver, o.requests, o.concurrency);
    const [s1, c1] = [await cpuMicros(pid, ticks), await cpuMicros(Deno.pid, ticks)];
    [sidecarCpu, clientCpu, rss] = [s1 - s0, c1 - c0, await rssMiB(pid)];
  } finally {
    driver.close();
  }
  const exitCode = await stopSidecar(sidecar);
  if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});

  const sorted = measured.latenciesMs.slice().sort();
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  const errors = (warm?.errors ?? 0) + measured.errors;
  const result = {
    bench: "extproc",
    date: new Date().toISOString(),
    commit: await output("git", ["rev-parse", "--short", "HEAD"]),
    dirty: (await output("git", ["--no-optional-locks", "status", "--porcelain"])) !== "",
    transport: o.transport,
    concurrency: o.concurrency,
    requests: o.requests,
    warmup: o.warmup,
    seconds: round(measured.seconds, 3),
    reqPerSec: round(o.requests / measured.seconds, 0),
    latencyMs: {
      p50: round(percentile(sorted, 50), 3),
      p90: round(percentile(sorted, 90), 3),
      p99: round(percentile(sorted, 99), 3),
      max: round(sorted[sorted.length - 1] ?? NaN, 3),
      mean: round(mean, 3),
    },
    sidecarCpuUsPerRequest: round(sidecarCpu / o.requests),
    sidecarCores: round(sidecarCpu / 1e6 / measured.seconds, 2),
    clientCpuUsPerRequest: round(clientCpu / o.requests),
    sidecarRssMiB: rss,
    errors,
    sidecarWarnings: sidecar.warnings.length,
    sidecarExitCode: exitCode,
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
  };
  const rows: [string, string][] = [
    ["transport / concurrency", `${o.transport} / ${o.concurrency}`],
    ["requests (warmup)", `${o.requests} (${o.warmup})`],
    ["throughput", `${result.reqPerSec} req/s over ${result.seconds} s`],
    ["latency p50 / p90 / p99", `${result.latencyMs.p50} / ${result.latencyMs.p90} / ${result.latencyMs.p99} ms`],
    ["latency max / mean", `${result.latencyMs.max} / ${result.latencyMs.mean} ms`],
    ["sidecar CPU", `${result.sidecarCpuUsPerRequest} µs/request (${result.sidecarCores} cores busy)`],
    ["client CPU", `${result.clientCpuUsPerRequest} µs/request`],
    ["sidecar RSS after", `${rss} MiB`],
    ["errors", String(errors)],
    ["sidecar warnings / exit", `${sidecar.warnings.length} / ${exitCode}`],
  ];
  for (const [k, v] of rows) console.log(`${k.padEnd(26)}${v}`);
  for (const why of [...(warm?.samples ?? []), ...measured.samples]) console.error(`error: ${why}`);
  for (const line of sidecar.warnings.slice(0, 5)) console.error(`sidecar: ${line}`);
  console.log(JSON.stringify(result));
  return errors > 0 || exitCode !== 0 ? 1 : 0;
}

Deno.exit(await main());
