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
import { continueResponse, headerMutation } from "../src/protocol/ext_proc.ts";
import { ROLE_METADATA } from "../src/extproc/server.ts";
import { MODEL_HEADER, ORIGINAL_PATH_HEADER, REQUEST_ID_HEADER } from "../src/actors/router_stream.ts";
import { intFlag } from "./support/flags.ts";

const USAGE = `Usage: deno run -A bench/extproc_bench.ts [flags]

  --requests N        measured lifecycles (default 20000)
  --concurrency C     lifecycles in flight at once (default 16)
  --transport T       unix or tcp (default unix)
  --warmup N          lifecycles run before measuring (default 2000; 0 for none)
  --server S          tollgate (default), or baseline: a bare grpc-js + ts-proto ExtProc server on the same
                      Deno that answers every message with CONTINUE, the floor Tollgate's figures sit on
  --cpu-prof DIR      run the server under deno --cpu-prof, writing its V8 profile into DIR (the client then
                      goes through a byte relay, which costs the client CPU, not the server)
  -h, --help          show this help

Exit status: 0 when every lifecycle was answered correctly and the server exited cleanly; 1 when a lifecycle
failed (the figures are then not valid); 3 when the figures are valid but the server crashed or did not exit 0.
`;
const MODEL = "gpt-4o-mini";
/** No lifecycle finishing for this long means the sidecar hangs: cancel what is open and fail the run. */
const STALL_MS = 15_000;
const STARTUP_MS = 30_000;
const SHUTDOWN_MS = 15_000;
const DISCONNECT_GRACE_MS = 1_000;

interface Options {
  readonly requests: number;
  readonly concurrency: number;
  readonly transport: "unix" | "tcp";
  readonly warmup: number;
  readonly server: "tollgate" | "baseline";
  readonly cpuProf: string | undefined;
  /** Internal: this process is the baseline server, listening here. */
  readonly serveBaseline: string | undefined;
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
      server: { type: "string", default: "tollgate" },
      "cpu-prof": { type: "string" },
      "serve-baseline": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const int = intFlag;
  if (values.server !== "tollgate" && values.server !== "baseline") {
    throw new Error(`--server must be tollgate or baseline, got "${values.server}"`);
  }
  if (values.transport !== "unix" && values.transport !== "tcp") {
    throw new Error(`--transport must be unix or tcp, got "${values.transport}"`);
  }
  return {
    requests: int("requests", values.requests, 1),
    concurrency: int("concurrency", values.concurrency, 1),
    transport: values.transport,
    warmup: int("warmup", values.warmup, 0),
    server: values.server === "baseline" ? "baseline" : "tollgate",
    cpuProf: values["cpu-prof"],
    serveBaseline: values["serve-baseline"],
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

async function output(cmd: string, args: string[]): Promise<string | undefined> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "null",
  }).output();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
}

interface Sidecar {
  readonly process: Deno.ChildProcess;
  readonly target: string;
  /** Lines the sidecar logged at warn or above after it started listening. */
  readonly warnings: string[];
  /** Its last few log lines, shown when it does not exit cleanly. */
  readonly tail: string[];
}

/**
 * Profiling only: a byte relay between the client and the server. Closing it ends the server's connection without
 * a GOAWAY, which Deno 2.9.6 may abort on (denoland/deno#36788), so the server lives to write its profile.
 */
function startRelay(target: string): { readonly target: string; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const server: Deno.ConnectOptions | Deno.UnixConnectOptions = target.startsWith("unix://")
    ? { transport: "unix", path: target.slice("unix://".length) }
    : { hostname: "127.0.0.1", port: Number(target.slice(target.lastIndexOf(":") + 1)) };
  (async () => {
    for await (const down of listener) {
      const up = await Deno.connect(server as Deno.ConnectOptions);
      for (const c of [down, up]) if ("setNoDelay" in c) (c as Deno.TcpConn).setNoDelay(true);
      conns.push(down, up);
      down.readable.pipeTo(up.writable).catch(() => {});
      up.readable.pipeTo(down.writable).catch(() => {});
    }
  })().catch(() => {});
  return {
    target: `127.0.0.1:${listener.addr.port}`,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed by its pipe */ }
      }
    },
  };
}

/** The server's command line. bin/tollgate execs Deno, so the child's pid is the server's own. */
function serverCommand(o: Options, listen: string): [string, string[]] {
  const root = new URL("..", import.meta.url).pathname;
  // Unsupervised: the process measured must be the one serving (the supervisor would hand it to a worker).
  const flags = [
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
    "--crash-restarts",
    "0",
  ];
  if (o.server === "tollgate" && o.cpuProf === undefined) return [`${root}bin/tollgate`, ["extproc", ...flags]];
  // Profiling needs Deno's own flags, which bin/tollgate does not pass through: same command line, no wrapper.
  const deno = ["run", "--quiet", "--allow-all", `--config=${root}deno.json`];
  if (o.cpuProf !== undefined) deno.push("--cpu-prof", `--cpu-prof-dir=${o.cpuProf}`);
  return o.server === "tollgate"
    ? [Deno.execPath(), [...deno, `${root}src/main.ts`, "extproc", ...flags]]
    : [Deno.execPath(), [...deno, new URL(import.meta.url).pathname, "--serve-baseline", listen]];
}

async function startSidecar([cmd, args]: [string, string[]]): Promise<Sidecar> {
  const env = { DENO_NO_UPDATE_CHECK: "1" };
  const process = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "inherit", stdin: "null" }).spawn();
  const warnings: string[] = [];
  const tail: string[] = [];
  let listening!: (address: string) => void;
  const ready = new Promise<string>((resolve) => (listening = resolve));
  // Drained to the end, so a chatty sidecar never blocks on a full pipe.
  (async () => {
    let buffered = "";
    for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (buffered + chunk).split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 5) tail.shift();
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
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`not listening after ${STARTUP_MS} ms`), STARTUP_MS);
  });
  const exited = process.status.then((s) => `it exited with code ${s.code} before listening`);
  const target = await Promise.race([ready, Promise.race([exited, late]).then((why) => Promise.reject(new Error(why)))])
    .catch((e) => {
      try {
        process.kill("SIGKILL");
      } catch { /* already gone */ }
      throw new Error(`Cannot start the sidecar: ${e instanceof Error ? e.message : e}`);
    })
    .finally(() => clearTimeout(timer));
  return { process, target, warnings, tail };
}

interface SidecarExit {
  readonly code: number;
  readonly signal: string | null;
  /** It was already gone when we sent SIGTERM. */
  readonly beforeSigterm: boolean;
  readonly killed: boolean;
}

async function stopSidecar(s: Sidecar): Promise<SidecarExit> {
  // Envoy closing its connection (GOAWAY) is an ordinary event; give a crash it causes a moment to show.
  await new Promise((resolve) => setTimeout(resolve, DISCONNECT_GRACE_MS));
  const early = await Promise.race([s.process.status, new Promise<null>((resolve) => setTimeout(resolve, 0, null))]);
  if (early) return { code: early.code, signal: early.signal, beforeSigterm: true, killed: false };
  s.process.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), SHUTDOWN_MS)));
  const status = await Promise.race([s.process.status, expired]);
  clearTimeout(timer);
  if (status) return { code: status.code, signal: status.signal, beforeSigterm: false, killed: false };
  s.process.kill("SIGKILL");
  const last = await s.process.status;
  return { code: last.code, signal: last.signal, beforeSigterm: false, killed: true };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]!;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * `--server baseline`: what a naive grpc-js + ts-proto ExtProc server costs on the same Deno with the same traffic.
 * It decodes each message, parses the request body for the model, answers CONTINUE with the headers Tollgate sets,
 * and closes the stream where Tollgate does; no actors, metrics or logs.
 */
async function serveBaseline(listen: string): Promise<number> {
  const server = new grpc.Server({
    "grpc.max_concurrent_streams": 100_000,
    "grpc.max_receive_message_length": 64 << 20,
  });
  server.addService(ExternalProcessorService, {
    process: (call: grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => {
      const upstream = call.metadata.get(ROLE_METADATA)[0] === "upstream";
      call.on("data", (req: ProcessingRequest) => {
        const r = req.request;
        if (r === undefined) return call.end();
        let mutation: Record<string, string> | undefined;
        if (r.$case === "requestBody") {
          const body = JSON.parse(utf8.decode(r.value.body)) as { model: string };
          mutation = { [MODEL_HEADER]: body.model, [REQUEST_ID_HEADER]: crypto.randomUUID() };
        }
        call.write(continueResponse(r.$case, mutation ? { headerMutation: headerMutation(mutation) } : {}));
        if (upstream || r.$case === "responseBody") call.end();
      });
      call.on("error", () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (e, p) => e ? reject(e) : resolve(p))
  );
  const address = listen.startsWith("unix:") ? listen : `127.0.0.1:${port}`;
  console.log(JSON.stringify({ level: 30, msg: "ExtProc server listening", address }));
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", resolve));
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  return 0;
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(Deno.args);
  } catch (e) {
    console.error(`extproc_bench: ${e instanceof Error ? e.message.split("\n")[0] : e}\n\n${USAGE}`);
    return 2;
  }
  if (o.serveBaseline !== undefined) return await serveBaseline(o.serveBaseline);
  const ticks = Number(await output("getconf", ["CLK_TCK"])) || 100;
  // Read before the sidecar starts: that is the code it runs. "dirty" covers only what the sidecar loads.
  const commit = await output("git", ["rev-parse", "--short", "HEAD"]) ?? "unknown";
  const status = ["--no-optional-locks", "status", "--porcelain", "--", "src", "bin", "deno.json", "package.json"];
  const changes = commit === "unknown" ? undefined : await output("git", status);
  const dirty = changes === undefined ? null : changes !== "";
  const dir = o.transport === "unix" ? await Deno.makeTempDir({ prefix: "tollgate-bench-" }) : undefined;
  let sidecar: Sidecar;
  try {
    sidecar = await startSidecar(serverCommand(o, dir ? `unix://${dir}/extproc.sock` : "127.0.0.1:0"));
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    return 1;
  }
  const pid = sidecar.process.pid;
  const relay = o.cpuProf === undefined ? undefined : startRelay(sidecar.target);
  const driver = new Driver(relay?.target ?? sidecar.target);
  let measured: PhaseResult, sidecarCpu: number, clientCpu: number, rss: number, exit: SidecarExit;
  let warm: PhaseResult | undefined;
  try {
    if (o.warmup > 0) warm = await runPhase(driver, o.warmup, o.concurrency);
    const [s0, c0] = [await cpuMicros(pid, ticks), await cpuMicros(Deno.pid, ticks)];
    measured = await runPhase(driver, o.requests, o.concurrency);
    const [s1, c1] = [await cpuMicros(pid, ticks), await cpuMicros(Deno.pid, ticks)];
    [sidecarCpu, clientCpu, rss] = [s1 - s0, c1 - c0, await rssMiB(pid)];
  } finally {
    relay?.close();
    driver.close();
    exit = await stopSidecar(sidecar);
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const exitText = `${exit.code}${exit.signal ? ` (${exit.signal})` : ""}` +
    (exit.beforeSigterm ? ", died after the client disconnected, before SIGTERM" : "") +
    (exit.killed ? `, killed: no exit ${SHUTDOWN_MS / 1000} s after SIGTERM` : "");

  const sorted = measured.latenciesMs.slice().sort();
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  const errors = (warm?.errors ?? 0) + measured.errors;
  const result = {
    bench: "extproc",
    date: new Date().toISOString(),
    commit,
    dirty,
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
    sidecarExitCode: exit.code,
    sidecarExitSignal: exit.signal,
    sidecarDiedBeforeSigterm: exit.beforeSigterm,
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
    ["sidecar warnings", String(sidecar.warnings.length)],
    ["sidecar exit", exitText],
  ];
  for (const [k, v] of rows) console.log(`${k.padEnd(26)}${v}`);
  for (const why of [...(warm?.samples ?? []), ...measured.samples]) console.error(`error: ${why}`);
  for (const line of sidecar.warnings.slice(0, 5)) console.error(`sidecar: ${line}`);
  if (exit.code !== 0) {
    console.error(`The sidecar exited with code ${exitText}; its last log lines:`);
    for (const line of sidecar.tail) console.error(`  ${line}`);
  }
  console.log(JSON.stringify(result));
  return errors > 0 ? 1 : exit.code !== 0 ? 3 : 0;
}

Deno.exit(await main());
