// What publishing usage costs the sidecar per request: CPU µs and wall time per event through the usage sink (encode,
// publisher actor, JetStream publish with Nats-Msg-Id and its acknowledgement), against a real nats-server, in three
// modes: NATS up (direct), NATS down (every event goes to the spool file), and the replay of that spool when NATS
// comes back. Run: deno run -A bench/usage_publisher_bench.ts --help
import { parseArgs } from "node:util";
import { connect } from "nats";
import { Registry } from "prom-client";
import { NatsServer, pollUntil } from "../test/support/nats_server.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { connectNats, ensureUsageStream, type NatsLink, USAGE_STREAM } from "../src/usage/nats_connection.ts";
import { startUsageSink, type UsageSink } from "../src/usage/usage_sink.ts";
import { type UsageEvent, usageEventId, usageEventTime } from "../src/usage/usage_event.ts";
import { intFlag } from "./support/flags.ts";

const USAGE = `Usage: deno run -A bench/usage_publisher_bench.ts [flags]

  --events N   usage events per run (default 20000)
  --runs N     runs per mode; the median is printed (default 5)
  --json       print the figures as one JSON line at the end
  -h, --help   show this help

Events are those of the token_ratelimit example: five descriptors, ~1.8 KB of JSON each.
`;

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    events: { type: "string", default: "20000" },
    runs: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const EVENTS = intFlag("events", flags.events, 1);
const RUNS = intFlag("runs", flags.runs, 1);
const ROUTE_KEY = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";
const COSTS = ["llm_input_token", "llm_output_token", "llm_total_token", "llm_cached_input_token", "llm_cel"];

function usageEvent(i: number): UsageEvent {
  const at = Date.now();
  const input = 100 + (i % 900);
  const output = 20 + (i % 300);
  const user = `user-${i % 1000}`;
  return {
    v: 1,
    id: usageEventId(at),
    time: usageEventTime(at),
    route: "default/envoy-ai-gateway-token-ratelimit",
    backend: "default/envoy-ai-gateway-token-ratelimit-testupstream",
    models: { requested: "rate-limit-funky-model", responded: "rate-limit-funky-model-2025" },
    tokens: { inputTokens: input, outputTokens: output, totalTokens: input + output },
    costs: { llm_input_token: input, llm_output_token: output, llm_total_token: input + output },
    descriptors: COSTS.map((key, r) => ({
      domain: "ai-gateway",
      entries: [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: `rule-${r}-match-0`, value: user }],
      hitsAddendFrom: key,
    })),
    status: 200,
    latencyMs: 812.4,
    stream: false,
  };
}

async function cpuMicros(): Promise<number> {
  const stat = await Deno.readTextFile("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 1e4; // CLK_TCK 100
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Figures {
  cpuMicrosPerEvent: number;
  eventsPerSecond: number;
}

async function measure(body: () => Promise<void>): Promise<Figures> {
  const cpu0 = await cpuMicros();
  const t0 = performance.now();
  await body();
  const ms = performance.now() - t0;
  return {
    cpuMicrosPerEvent: Math.round((await cpuMicros() - cpu0) / EVENTS * 10) / 10,
    eventsPerSecond: Math.round(EVENTS / (ms / 1000)),
  };
}

/** Fresh ids every time: JetStream would drop a second copy of an id as a duplicate (that is the point of it). */
const batch = () => Array.from({ length: EVENTS }, (_, i) => usageEvent(i));
await using ns = await NatsServer.start();
const admin = await connect({ servers: ns.url });
const jsm = await admin.jetstreamManager();
await ensureUsageStream(jsm);
const dir = await Deno.makeTempDir({ prefix: "tollgate-usage-bench-" });

async function stored(): Promise<number> {
  return (await jsm.streams.info(USAGE_STREAM)).state.messages;
}

function sinkOn(url: string, path: string, links: NatsLink[]): UsageSink {
  return startUsageSink({
    connect: async (signal) => {
      const l = await connectNats({ servers: url, reconnectWaitMs: 100, reconnectJitterMs: 10 }, { signal });
      links.push(l);
      return l;
    },
    spool: { path, maxBytes: 1 << 30, maxRecords: 10_000_000, overflow: "reject-new" },
    registry: new Registry(),
    logger: silentLogger(),
    publisher: { probeIntervalMs: 50 },
  });
}

const direct: Figures[] = [];
const spooling: Figures[] = [];
const replay: Figures[] = [];
for (let run = 0; run < RUNS; run++) {
  const links: NatsLink[] = [];
  // NATS up: publish every event and wait for JetStream to have stored them all.
  const sink = sinkOn(ns.url, `${dir}/direct-${run}.spool`, links);
  await pollUntil("the sink to connect", () => links.length > 0 || undefined, { timeoutMs: 10_000, intervalMs: 5 });
  const before = await stored();
  let events = batch();
  direct.push(
    await measure(async () => {
      for (const e of events) sink.publish(e);
      await pollUntil("every event stored", async () => (await stored()) - before >= EVENTS || undefined, {
        timeoutMs: 120_000,
        intervalMs: 5,
      });
    }),
  );
  await sink.close();
  for (const l of links.splice(0)) await l.close();

  // NATS unreachable (a port nobody listens on): every event goes to the spool file.
  const deadPort = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    return port;
  })();
  const path = `${dir}/outage-${run}.spool`;
  events = batch();
  const down = sinkOn(`nats://127.0.0.1:${deadPort}`, path, links);
  spooling.push(
    await measure(async () => {
      for (const e of events) down.publish(e);
      await pollUntil("every event spooled", () => down.spooled >= EVENTS || undefined, {
        timeoutMs: 120_000,
        intervalMs: 5,
      });
    }),
  );
  await down.close();

  // NATS back: a new sink on the same spool replays it.
  const replayBefore = await stored();
  let back: UsageSink | undefined;
  replay.push(
    await measure(async () => {
      back = sinkOn(ns.url, path, links);
      await pollUntil("the spool replayed", async () => (await stored()) - replayBefore >= EVENTS || undefined, {
        timeoutMs: 120_000,
        intervalMs: 5,
      });
    }),
  );
  await back!.close();
  for (const l of links.splice(0)) await l.close();
}
await admin.close();
await Deno.remove(dir, { recursive: true });

const summary = (xs: Figures[]) => ({
  cpuMicrosPerEvent: median(xs.map((x) => x.cpuMicrosPerEvent)),
  eventsPerSecond: median(xs.map((x) => x.eventsPerSecond)),
});
const result = {
  events: EVENTS,
  runs: RUNS,
  direct: summary(direct),
  spooling: summary(spooling),
  replay: summary(replay),
};
console.log(`usage publisher, ${EVENTS} events x ${RUNS} runs (medians; CPU is the whole bench process's)`);
for (const mode of ["direct", "spooling", "replay"] as const) {
  const f = result[mode];
  console.log(
    `  ${mode.padEnd(9)} ${String(f.cpuMicrosPerEvent).padStart(7)} µs CPU/event  ${f.eventsPerSecond} events/s`,
  );
}
if (flags.json) console.log(JSON.stringify(result));
