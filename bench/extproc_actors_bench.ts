// What Tollgate's own code costs per ExtProc request, without gRPC or HTTP/2: the same full non-streaming chat
// lifecycle as extproc_bench.ts (4 router messages, 1 attempt message, 2 streams), fed in process to the stream
// host the server uses (stream actors, metrics, usage accounting, the closing observer), with each message decoded
// and each answer encoded by the service definition grpc-js is given. Lifecycles are interleaved, --concurrency of
// them in flight, one message each in turn with a macrotask in between rounds, so that what a stream keeps between
// its messages lives as long as it does in the server (and is paid for by the garbage collector as there). Far less noisy than the gRPC bench on a
// shared machine (it counts the process's CPU time, not wall time), so it is the one to compare changes with; extproc_bench.ts stays the figure of record.
// Run: deno run -A bench/extproc_actors_bench.ts [--requests N] [--rounds R]
import { parseArgs } from "node:util";
import { cpuUsage } from "node:process";
import { EventEmitter } from "node:events";
import { Buffer } from "node:buffer";
import { Registry } from "prom-client";
import { ExternalProcessorService } from "../src/protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { ExtProcServiceDefinition } from "../src/protocol/ext_proc_codec.ts";
import { type ProcessingResponse, routerProcessingMode } from "../src/protocol/ext_proc.ts";
import { bodyRequest, headersRequest } from "../src/protocol/ext_proc_request.ts";
import { ProcessingRequest } from "../src/protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { type ExtProcCall, hostStream, type StreamHostDeps } from "../src/extproc/stream_host.ts";
import { fileCredentials } from "../src/extproc/server.ts";
import { routerStreamMachine } from "../src/actors/router_stream.ts";
import { attemptStreamMachine, type RouterStreamRef } from "../src/actors/attempt_stream.ts";
import { MODEL_HEADER, ORIGINAL_PATH_HEADER, REQUEST_ID_HEADER } from "../src/actors/router_stream.ts";
import { defaultSnapshot } from "../src/control/snapshot.ts";
import { ExtProcMetrics } from "../src/observability/extproc_metrics.ts";
import { RequestObserver } from "../src/observability/request_observer.ts";
import { createLogger } from "../src/observability/logger.ts";
import { systemClock } from "../src/observability/clock.ts";
import pino from "pino";
import { intFlag } from "./support/flags.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "16" },
    rounds: { type: "string", default: "7" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    "Usage: deno run -A bench/extproc_actors_bench.ts [--requests N (per round, default 20000)] " +
      "[--concurrency C (default 16)] [--rounds R (default 7; the first is warmup)]",
  );
  Deno.exit(0);
}
const REQUESTS = intFlag("requests", values.requests, 1);
const ROUNDS = intFlag("rounds", values.rounds, 2);
const CONCURRENCY = intFlag("concurrency", values.concurrency, 1);

const MODEL = "gpt-4o-mini";
const chatBody = JSON.stringify({
  model: MODEL,
  temperature: 0.2,
  max_tokens: 512,
  messages: [
    { role: "system", content: "You are a support assistant for Acme Cloud. ".repeat(6) },
    { role: "user", content: "Our nightly export job to object storage started failing yesterday. ".repeat(3) },
    { role: "assistant", content: "A sudden SignatureDoesNotMatch with unchanged code usually has one of ".repeat(4) },
    { role: "user", content: "The key was rotated two days ago by our security team. ".repeat(3) },
    { role: "assistant", content: "Update the Secret, then trigger a rolling restart." },
  ],
});
const chatCompletion = JSON.stringify({
  id: "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  object: "chat.completion",
  created: 1741570283,
  model: "gpt-4o-mini-2024-07-18",
  choices: [{
    index: 0,
    message: { role: "assistant", content: "kubectl rollout restart deployment/nightly-export ".repeat(12) },
    logprobs: null,
    finish_reason: "stop",
  }],
  usage: { prompt_tokens: 312, completion_tokens: 118, total_tokens: 430 },
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
const bytes = (r: ProcessingRequest) => Buffer.from(ProcessingRequest.encode(r).finish());
const MESSAGES = {
  requestHeaders: bytes(headersRequest("requestHeaders", requestHeaders)),
  requestBody: bytes(bodyRequest("requestBody", chatBody)),
  responseHeaders: bytes(headersRequest("responseHeaders", responseHeaders)),
  responseBody: bytes(bodyRequest("responseBody", chatCompletion)),
};
/** The router stream in slot i always has the same id, so each slot's attempt headers are encoded once. */
const routerId = (slot: number) => `bench-router-stream-${slot}`;
const ATTEMPT_HEADERS = Array.from({ length: CONCURRENCY }, (_, slot) =>
  bytes(headersRequest("requestHeaders", {
    ...requestHeaders,
    [MODEL_HEADER]: MODEL,
    [ORIGINAL_PATH_HEADER]: "/v1/chat/completions",
    [REQUEST_ID_HEADER]: routerId(slot),
  })));

const { requestDeserialize, responseSerialize } = ExtProcServiceDefinition.process;

/** Just enough of a grpc-js ServerDuplexStream for the stream host: events in, serialized answers out. */
class FakeCall extends EventEmitter {
  readonly metadata = { get: () => [] };
  cancelled = false;
  writableEnded = false;
  readonly written: Buffer[] = [];
  write(r: ProcessingResponse): boolean {
    this.written.push(responseSerialize(r));
    return true;
  }
  end(): void {
    this.writableEnded = true;
  }
  receive(b: Buffer): void {
    this.emit("data", requestDeserialize(b));
  }
}

const registry = new Registry();
const logger = createLogger({ level: "info", destination: pino.destination("/dev/null") });
const metrics = new ExtProcMetrics(registry);
const observer = new RequestObserver({ registry, extproc: metrics, logger });
const routers = new Map<string, RouterStreamRef>();
const snapshot = defaultSnapshot([MODEL]);
const credentials = fileCredentials();
const mode = routerProcessingMode();

function deps(streamId: string, router?: () => RouterStreamRef | undefined): StreamHostDeps {
  return {
    clock: systemClock,
    metrics,
    logger,
    onUsage: () => {},
    onClosed: () => {
      routers.delete(streamId);
      const r = router?.();
      if (r) observer.routerClosed(streamId, r);
    },
  };
}

const utf8 = new TextDecoder();
function requestIdOf(answer: Buffer): string {
  const r = ExternalProcessorService.process.responseDeserialize(answer);
  const v = r.response?.value as { response?: { headerMutation?: { setHeaders: { header?: { key: string } }[] } } };
  const h = v.response?.headerMutation?.setHeaders.find((s) => s.header?.key === REQUEST_ID_HEADER)?.header as
    | { rawValue: Uint8Array }
    | undefined;
  if (!h) throw new Error("The requestBody answer has no request id");
  return utf8.decode(h.rawValue);
}

let first = true;
/** One request, a message per step; the caller interleaves the steps of several requests. */
function* lifecycle(slot: number): Generator<void, void, void> {
  const routerCall = new FakeCall();
  const streamId = routerId(slot);
  let router: RouterStreamRef | undefined = undefined;
  const input = { streamId, snapshot, mode, maxBodyBytes: 32 << 20 };
  router = hostStream(
    routerCall as unknown as ExtProcCall,
    "router",
    streamId,
    routerStreamMachine,
    input,
    deps(streamId, () => router),
  );
  routers.set(streamId, router);
  routerCall.receive(MESSAGES.requestHeaders);
  yield;
  routerCall.receive(MESSAGES.requestBody);
  if (first) {
    const id = requestIdOf(routerCall.written[1]!);
    if (id !== streamId) throw new Error(`The requestBody answer set ${REQUEST_ID_HEADER} to ${id}`);
    first = false;
  }
  yield;
  const attemptCall = new FakeCall();
  const attemptId = crypto.randomUUID();
  const attempt = hostStream(
    attemptCall as unknown as ExtProcCall,
    "attempt",
    attemptId,
    attemptStreamMachine,
    { streamId: attemptId, findRouter: (rid: string) => routers.get(rid), credentials },
    deps(attemptId),
  );
  attemptCall.receive(ATTEMPT_HEADERS[slot]!);
  while (!attemptCall.writableEnded) yield;
  if (attempt.getSnapshot().status !== "done") throw new Error("The attempt did not finish");
  yield;
  routerCall.receive(MESSAGES.responseHeaders);
  yield;
  routerCall.receive(MESSAGES.responseBody);
  if (!routerCall.writableEnded || routerCall.written.length !== 4) throw new Error("The router did not finish");
}

/** `total` lifecycles, `CONCURRENCY` in flight; a macrotask between rounds lets promises and timers run. */
async function run(total: number): Promise<void> {
  const slots: (Generator<void, void, void> | undefined)[] = new Array(CONCURRENCY).fill(undefined);
  let started = 0;
  let finished = 0;
  while (finished < total) {
    for (let slot = 0; slot < CONCURRENCY; slot++) {
      let g = slots[slot];
      if (g === undefined) {
        if (started === total) continue;
        started++;
        g = slots[slot] = lifecycle(slot);
      }
      if (g.next().done) {
        slots[slot] = undefined;
        finished++;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

const perRequest: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const c0 = cpuUsage();
  await run(REQUESTS);
  const c = cpuUsage(c0);
  const us = (c.user + c.system) / REQUESTS;
  if (round > 0) perRequest.push(us);
  console.log(`round ${round}${round === 0 ? " (warmup)" : ""}: ${us.toFixed(1)} µs/request`);
}
const sorted = perRequest.toSorted((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)]!;
console.log(JSON.stringify({
  bench: "extproc_actors",
  requests: REQUESTS,
  concurrency: CONCURRENCY,
  rounds: ROUNDS - 1,
  medianUs: median,
}));
