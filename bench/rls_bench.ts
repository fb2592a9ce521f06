// The rate limit service of `tollgate aggregator`, as Envoy's ratelimit filter sees it: ShouldRateLimit latency at a
// fixed offered load (target p99 < 1 ms at 5,000 checks/s) and the most checks/s it answers. Run:
// deno run -A bench/rls_bench.ts --help
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { connect } from "nats";
import { NatsServer } from "../test/support/nats_server.ts";
import { rateLimitServiceDefinition } from "../src/edge/rate_limit_filter.ts";
import type { RlsRequest } from "../src/edge/rate_limit_descriptors.ts";
import { type RateLimitResponse, RateLimitResponse_Code } from "../src/protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import { ensureUsageStream } from "../src/usage/nats_connection.ts";
import { encodeUsageEvent, usageEventId, usageEventSubject, usageEventTime } from "../src/usage/usage_event.ts";

const USAGE = `Usage: deno run -A bench/rls_bench.ts [flags]

  --rate N          offered load in checks/s for the fixed-load phase (default 5000)
  --seconds N       length of the fixed-load phase (default 10)
  --warmup N        seconds at that load before measuring (default 2)
  --concurrency N   checks in flight in the throughput phase (default 64)
  --max-seconds N   length of the throughput phase (default 5)
  --mix KIND        both (default), token (check-only token checks) or requests (request-count checks)
  --json            print the figures as one JSON line at the end
  -h, --help        show this help

It starts a nats-server and \`bin/tollgate aggregator\` (rules: testdata/resources/token_ratelimit, plus a
request-count rule), then sends, over one gRPC connection as Envoy does, half token checks (the five
descriptors of the token_ratelimit example, hits_addend 0, for 1,000 users) and half request-count checks
(one descriptor, one hit, which the aggregator applies and publishes as a hit event). Latency counts from when a
check was due, so a stalled client or server cannot hide its queue (no coordinated omission).
`;

const ROOT = new URL("..", import.meta.url).pathname;
const ROUTE_KEY = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";
const USERS = 1000;
const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    rate: { type: "string", default: "5000" },
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    concurrency: { type: "string", default: "64" },
    "max-seconds": { type: "string", default: "5" },
    mix: { type: "string", default: "both" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const RATE = Number(flags.rate);
const SECONDS = Number(flags.seconds);
const WARMUP = Number(flags.warmup);
const CONCURRENCY = Number(flags.concurrency);
const MAX_SECONDS = Number(flags["max-seconds"]);
const MIX = flags.mix;
if (!["both", "token", "requests"].includes(MIX)) {
  throw new Error(`--mix must be both, token or requests, got "${MIX}"`);
}

function check(i: number): RlsRequest {
  if (MIX === "requests" || (MIX === "both" && i % 2 === 1)) {
    return {
      domain: "requests",
      hitsAddend: 0,
      descriptors: [{ entries: [{ key: "tenant", value: `t-${i % USERS}` }] }],
    };
  }
  const user = `user-${(i >> 1) % USERS}`;
  return {
    domain: "ai-gateway",
    hitsAddend: 0,
    descriptors: [0, 1, 2, 3, 4].map((r) => ({
      entries: [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: `rule-${r}-match-0`, value: user }],
      hitsAddend: 0,
    })),
  };
}

async function cpuMicros(pid: number | "self"): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 1e4; // CLK_TCK 100
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

// The aggregator and its NATS.
await using ns = await NatsServer.start({ jetstream: true });
{
  const nc = await connect({ servers: ns.url });
  await ensureUsageStream(await nc.jetstreamManager());
  // Some history: every user has spent part of its token budgets.
  const js = nc.jetstream();
  const at = Date.now();
  await Promise.all(Array.from({ length: USERS }, (_, u) => {
    const e = {
      v: 1 as const,
      id: usageEventId(at + u / 1000),
      time: usageEventTime(at),
      route: "default/envoy-ai-gateway-token-ratelimit",
      models: { requested: "m" },
      tokens: { inputTokens: 3, outputTokens: 40, totalTokens: 43 },
      costs: { llm_input_token: 3, llm_output_token: 40, llm_total_token: 43 },
      descriptors: ["llm_input_token", "llm_output_token", "llm_total_token"].map((key, r) => ({
        domain: "ai-gateway",
        entries: [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: `rule-${r}-match-0`, value: `user-${u}` }],
        hitsAddendFrom: key,
      })),
      status: 200,
      latencyMs: 100,
      stream: false,
    };
    return js.publish(usageEventSubject("tollgate.usage", e), encodeUsageEvent(e), { msgID: e.id });
  }));
  await nc.close();
}
const rulesDir = await Deno.makeTempDir({ prefix: "tollgate-rls-bench-" });
await Deno.writeTextFile(
  `${rulesDir}/requests.yaml`,
  "domain: requests\ndescriptors:\n  - key: tenant\n    rate_limit: { unit: hour, requests_per_unit: 1000000000 }\n",
);
const child = new Deno.Command(`${ROOT}bin/tollgate`, {
  args: [
    "aggregator",
    "--nats",
    ns.url,
    "--listen",
    "127.0.0.1:0",
    "--admin",
    "off",
    "--resources",
    `${ROOT}testdata/resources/token_ratelimit`,
    "--rules",
    rulesDir,
    "--replica",
    "bench",
    "--log-level",
    "info",
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
let target = "";
let buffered = "";
const startDeadline = Date.now() + 60_000;
while (!target) {
  if (Date.now() > startDeadline) throw new Error("The aggregator did not start within 60 s");
  const { value, done } = await lines.read();
  if (done) throw new Error("The aggregator exited before listening");
  buffered += value;
  for (const line of buffered.split("\n").slice(0, -1)) {
    const log = JSON.parse(line);
    if (log.msg === "Rate limit service listening") target = log.address;
    if (log.msg === "Aggregator caught up") console.error(`aggregator caught up at ${log.seq}`);
  }
  buffered = buffered.slice(buffered.lastIndexOf("\n") + 1);
}
(async () => {
  for (;;) if ((await lines.read()).done) break;
})();

const client = new grpc.Client(target, grpc.credentials.createInsecure());
const method = rateLimitServiceDefinition.shouldRateLimit;
const codes = new Map<string, number>();
let errors = 0;
function call(req: RlsRequest): Promise<void> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, req, (err, res) => {
      if (err || !res) errors++;
      else {
        const code = RateLimitResponse_Code[(res as RateLimitResponse).overallCode] ?? "?";
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
      resolve();
    });
  });
}

/** Open loop: check i is due at start + i / rate; returns latencies from due time, in ms. */
async function fixedLoad(seconds: number): Promise<{ latencies: number[]; late: number }> {
  const total = Math.round(RATE * seconds);
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const start = performance.now();
  let next = 0;
  let late = 0;
  while (next < total) {
    const now = performance.now();
    while (next < total && start + (next * 1000) / RATE <= now) {
      const due = start + (next * 1000) / RATE;
      if (now - due > 1) late++;
      const i = next++;
      pending.push(call(check(i)).then(() => void latencies.push(performance.now() - due)));
    }
    await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(pending);
  return { latencies, late };
}

/** Closed loop: `CONCURRENCY` checks always in flight for `seconds`. */
async function throughput(seconds: number): Promise<number> {
  let done = 0;
  let i = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      await call(check(i++));
      done++;
    }
  }));
  return done / seconds;
}

await fixedLoad(WARMUP);
codes.clear();
const [server0, client0] = [await cpuMicros(child.pid), await cpuMicros("self")];
const measured = await fixedLoad(SECONDS);
const [server1, client1] = [await cpuMicros(child.pid), await cpuMicros("self")];
const sorted = [...measured.latencies].sort((a, b) => a - b);
const checks = sorted.length;
const fixed = {
  rate: RATE,
  checks,
  p50: percentile(sorted, 0.5),
  p90: percentile(sorted, 0.9),
  p99: percentile(sorted, 0.99),
  p999: percentile(sorted, 0.999),
  max: sorted.at(-1)!,
  late: measured.late,
  serverCpuMicros: (server1 - server0) / checks,
  clientCpuMicros: (client1 - client0) / checks,
  codes: Object.fromEntries(codes),
  errors,
};
const [server2] = [await cpuMicros(child.pid)];
const maxRate = await throughput(MAX_SECONDS);
const [server3] = [await cpuMicros(child.pid)];

client.close();
child.kill("SIGTERM");
const status = await child.status;
await Deno.remove(rulesDir, { recursive: true });
const loadavg = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
const ms = (x: number) => x.toFixed(3);
console.log(`rls_bench: ${target}, mix ${MIX}, load ${loadavg}, aggregator exit ${status.code}`);
console.log(`\nFixed load ${RATE}/s for ${SECONDS} s (${checks} checks; ${measured.late} sent > 1 ms late):`);
console.log("| p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU µs/check | client CPU µs/check | errors |");
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
console.log(
  `| ${ms(fixed.p50)} | ${ms(fixed.p90)} | ${ms(fixed.p99)} | ${ms(fixed.p999)} | ${ms(fixed.max)} | ${
    fixed.serverCpuMicros.toFixed(1)
  } | ${fixed.clientCpuMicros.toFixed(1)} | ${errors} |`,
);
console.log(`codes: ${JSON.stringify(fixed.codes)}`);
console.log(
  `\nThroughput, ${CONCURRENCY} in flight for ${MAX_SECONDS} s: ${
    Math.round(maxRate).toLocaleString("en-US")
  } checks/s ` +
    `(server CPU ${((server3 - server2) / (maxRate * MAX_SECONDS)).toFixed(1)} µs/check)`,
);
console.log(`p99 target < 1 ms at 5,000/s: ${fixed.p99 < 1 ? "met" : "not met"}`);
if (flags.json) console.log(JSON.stringify({ loadavg, fixed, maxRate }));
