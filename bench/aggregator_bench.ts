// How fast one aggregator replica folds the usage stream: usage events consumed from JetStream and folded per second
// (target >= 100,000), and where the time goes (JSON decode, schema check, rule matching, transport). Run:
// deno run -A bench/aggregator_bench.ts --help
import { parseArgs } from "node:util";
import { AckPolicy, connect, createInbox, DeliverPolicy, nanos } from "nats";
import { Registry } from "prom-client";
import { NatsServer, pollUntil } from "../test/support/nats_server.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { AggregatorCore, type AggregatorRuleSet } from "../src/usage/aggregator_core.ts";
import { ensureUsageStream, USAGE_STREAM } from "../src/usage/nats_connection.ts";
import { connectNats } from "../src/usage/nats_connection.ts";
import {
  decodeUsageEvent,
  encodeUsageEvent,
  type UsageEvent,
  usageEventId,
  usageEventSubject,
  usageEventTime,
} from "../src/usage/usage_event.ts";
import { decodeRecord, readUsageEvent } from "../src/actors/aggregator/record_decoder.ts";
import { UsageEventReader } from "../src/usage/usage_event_reader.ts";
import { startAggregator } from "../src/actors/aggregator/replica.ts";
import { readAckReply } from "../src/actors/aggregator/consumer.ts";
import { loadRuleSources } from "../src/actors/aggregator/rule_files.ts";

const USAGE = `Usage: deno run -A bench/aggregator_bench.ts [flags]

  --events N       usage events pre-published to JetStream for the catch-up run (default 200000)
  --fold-events N  events for the in-memory runs (default 200000)
  --users N        distinct x-user-id values, one counter per rule each (default 1000)
  --descriptors N  descriptors per event, 1 to 5: that many of the example's token rules (default 5)
  --runs N         catch-up runs, each a fresh replica folding the whole stream (default 3)
  --in-memory      only the in-memory steps (no nats-server)
  --json           print the figures as one JSON line at the end
  -h, --help       show this help

The events are those of Envoy AI Gateway's token_ratelimit example (testdata/resources/token_ratelimit): five
token rules per x-user-id, so five descriptors per event (1.8 KB of JSON), as the sidecar publishes them.
`;

const ROOT = new URL("..", import.meta.url).pathname;
const ROUTE_KEY = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";
const COSTS = [
  "llm_input_token",
  "llm_output_token",
  "llm_total_token",
  "llm_cached_input_token",
  "llm_cel_calculated_token",
];
const HOUR = 3_600_000;

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    events: { type: "string", default: "200000" },
    "fold-events": { type: "string", default: "200000" },
    users: { type: "string", default: "1000" },
    descriptors: { type: "string", default: "5" },
    runs: { type: "string", default: "3" },
    "in-memory": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const EVENTS = Number(flags.events);
const FOLD_EVENTS = Number(flags["fold-events"]);
const USERS = Number(flags.users);
const RUNS = Number(flags.runs);
const DESCRIPTORS = Number(flags.descriptors);
if (!(DESCRIPTORS >= 1 && DESCRIPTORS <= 5)) throw new Error("--descriptors must be 1 to 5");

// Event times spread over an hour window in the future (nothing expires during the run).
const T0 = Math.floor(Date.now() / HOUR) * HOUR + 2 * HOUR;

function usageEvent(i: number): UsageEvent {
  const at = T0 + Math.floor((i / Math.max(EVENTS, FOLD_EVENTS)) * (HOUR - 1));
  const input = 100 + (i % 900);
  const output = 20 + (i % 300);
  const costs = {
    llm_input_token: input,
    llm_output_token: output,
    llm_total_token: input + output,
    llm_cached_input_token: i % 64,
    llm_cel_calculated_token: 0,
  };
  const user = `user-${i % USERS}`;
  return {
    v: 1,
    id: usageEventId(at),
    time: usageEventTime(at),
    route: "default/envoy-ai-gateway-token-ratelimit",
    backend: "default/envoy-ai-gateway-token-ratelimit-testupstream",
    models: { requested: "rate-limit-funky-model", responded: "rate-limit-funky-model-2025" },
    tokens: { inputTokens: input, outputTokens: output, totalTokens: input + output, cachedInputTokens: i % 64 },
    costs,
    descriptors: COSTS.slice(0, DESCRIPTORS).map((key, r) => ({
      domain: "ai-gateway",
      entries: [{ key: ROUTE_KEY, value: ROUTE_KEY }, { key: `rule-${r}-match-0`, value: user }],
      hitsAddend: costs[key as keyof typeof costs],
    })),
    status: 200,
    latencyMs: 812.4,
    stream: false,
  };
}

async function cpuMicros(pid: number | "self"): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 1e4; // CLK_TCK 100
}

function rate(n: number, ms: number): number {
  return Math.round(n / (ms / 1000));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs `body` 5 times over the same input, returns the median events/s and CPU µs per event. */
async function timed(n: number, body: () => void): Promise<{ perSecond: number; cpuMicros: number }> {
  body(); // warm-up
  const rates: number[] = [];
  const cpus: number[] = [];
  for (let r = 0; r < 5; r++) {
    const cpu0 = await cpuMicros("self");
    const t0 = performance.now();
    body();
    const ms = performance.now() - t0;
    cpus.push((await cpuMicros("self") - cpu0) / n);
    rates.push(rate(n, ms));
  }
  return { perSecond: median(rates), cpuMicros: median(cpus) };
}

const loaded = await loadRuleSources({ rules: [], resources: [`${ROOT}testdata/resources/token_ratelimit`] });
if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
const ruleSet: AggregatorRuleSet = loaded.ruleSet;

// 1. In memory: the pieces of one record's fold.
const events = Array.from({ length: FOLD_EVENTS }, (_, i) => usageEvent(i));
const bytes = events.map(encodeUsageEvent);
const subject = usageEventSubject("tollgate.usage", events[0]!);
const meanBytes = Math.round(bytes.reduce((n, b) => n + b.length, 0) / bytes.length);
const text = new TextDecoder();
const memory: Record<string, { perSecond: number; cpuMicros: number }> = {};
memory["JSON.parse only"] = await timed(FOLD_EVENTS, () => {
  for (const b of bytes) JSON.parse(text.decode(b));
});
memory["JSON.parse + hand check (readUsageEvent, no reader)"] = await timed(FOLD_EVENTS, () => {
  for (const b of bytes) readUsageEvent(b, null);
});
memory["UsageEventReader (bytes to event, one pass)"] = await timed(FOLD_EVENTS, () => {
  const reader = new UsageEventReader();
  for (const b of bytes) reader.read(b);
});
const zodN = Math.min(FOLD_EVENTS, 20_000);
memory["decodeUsageEvent (parse + zod)"] = await timed(zodN, () => {
  for (let i = 0; i < zodN; i++) decodeUsageEvent(bytes[i]!);
});
memory["fold only (AggregatorCore.applyUsage)"] = await timed(FOLD_EVENTS, () => {
  const core = new AggregatorCore({ replica: "bench", ...ruleSet });
  for (const e of events) core.applyUsage(e);
});
memory["decode + fold (the folder's work)"] = await timed(FOLD_EVENTS, () => {
  const core = new AggregatorCore({ replica: "bench", ...ruleSet });
  const reader = new UsageEventReader();
  let seq = 0;
  for (const b of bytes) {
    const r = decodeRecord(subject, b, reader);
    if (r.kind === "usage") core.applyUsage(r.event, { seq: ++seq, logTimeMs: T0 }, r.timeMs);
  }
});
function printMemory(): void {
  console.log(`\nIn memory, ${FOLD_EVENTS} events (zod: ${zodN}), median of 5:`);
  console.log("| step | events/s | CPU µs/event |\n| --- | ---: | ---: |");
  for (const [name, m] of Object.entries(memory)) {
    console.log(`| ${name} | ${m.perSecond.toLocaleString("en-US")} | ${m.cpuMicros.toFixed(2)} |`);
  }
}
if (flags["in-memory"]) {
  const loadavg = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(`aggregator_bench: ${meanBytes} bytes (${DESCRIPTORS} descriptors), ${USERS} users; load ${loadavg}`);
  printMemory();
  Deno.exit(0);
}

// 2. From JetStream: a real nats-server, the stream pre-filled, then fresh replicas catching up.
await using ns = await NatsServer.start({ jetstream: true });
const nc = await connect({ servers: ns.url });
const jsm = await nc.jetstreamManager();
await ensureUsageStream(jsm);
const js = nc.jetstream();
const publishStarted = performance.now();
const WINDOW = 2000;
for (let i = 0; i < EVENTS; i += WINDOW) {
  const batch = [];
  for (let j = i; j < Math.min(EVENTS, i + WINDOW); j++) {
    const e = j < FOLD_EVENTS ? events[j]! : usageEvent(j);
    batch.push(js.publish(subject, j < FOLD_EVENTS ? bytes[j]! : encodeUsageEvent(e), { msgID: e.id }));
  }
  await Promise.all(batch);
}
const publishMs = performance.now() - publishStarted;
const stream = (await jsm.streams.info(USAGE_STREAM)).state;
if (stream.messages !== EVENTS) throw new Error(`Stream holds ${stream.messages} events, expected ${EVENTS}`);

// The transport floors: nats.js's ordered consumer that only counts, and a push consumer on a plain subscription (as
// the replica's consumer reads the stream) that only reads each delivery's reply subject.
interface Floor {
  perSecond: number;
  cpuMicros: number;
}
const raw: Floor[] = [];
const push: Floor[] = [];
for (let r = 0; r < RUNS; r++) {
  const consumer = await js.consumers.get(USAGE_STREAM, { opt_start_seq: 1 });
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => done = resolve);
  const cpu0 = await cpuMicros("self");
  const t0 = performance.now();
  const messages = await consumer.consume({
    max_messages: 4096,
    callback: (m) => {
      if (++seen === EVENTS || m.info.pending === 0) done();
    },
  });
  await finished;
  raw.push({ perSecond: rate(seen, performance.now() - t0), cpuMicros: (await cpuMicros("self") - cpu0) / seen });
  messages.stop();
}
for (let r = 0; r < RUNS; r++) {
  const inbox = createInbox();
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => done = resolve);
  const sub = nc.subscribe(inbox, {
    callback: (_err, m) => {
      if (m.data.length === 0) return void (m.reply && m.respond()); // flow control, heartbeats
      if (++seen === EVENTS || readAckReply(m.reply!)?.pending === 0) done();
    },
  });
  const name = `tollgate_bench_${r}`;
  const cpu0 = await cpuMicros("self");
  const t0 = performance.now();
  await jsm.consumers.add(USAGE_STREAM, {
    name,
    deliver_subject: inbox,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.None,
    flow_control: true,
    idle_heartbeat: nanos(5000),
    mem_storage: true,
  });
  await finished;
  push.push({ perSecond: rate(seen, performance.now() - t0), cpuMicros: (await cpuMicros("self") - cpu0) / seen });
  sub.unsubscribe();
  await jsm.consumers.delete(USAGE_STREAM, name);
}

interface CatchUp {
  eventsPerSecond: number;
  bootMs: number;
  foldMs: number;
  cpuMicrosPerEvent: number;
  serverCpuMicrosPerEvent: number;
}
const catchUps: CatchUp[] = [];
for (let r = 0; r < RUNS; r++) {
  const link = await connectNats({ servers: ns.url });
  const [cpu0, server0] = [await cpuMicros("self"), await cpuMicros(ns.pid!)];
  const t0 = performance.now();
  // No snapshot is ever written (killed, not stopped): every run replays the whole stream.
  const replica = startAggregator({
    link,
    replica: `bench-${r}`,
    ruleSet,
    log: silentLogger(),
    registry: new Registry(),
    snapshotIntervalMs: 3_600_000,
    snapshotEveryRecords: Number.MAX_SAFE_INTEGER,
  });
  await pollUntil("the replica to boot", () => replica.notReadyReason()?.startsWith("catching up") || undefined, {
    timeoutMs: 60_000,
    intervalMs: 1,
  });
  const booted = performance.now();
  await pollUntil("the replica to catch up", () => replica.core.seq >= stream.last_seq || undefined, {
    timeoutMs: 600_000,
    intervalMs: 5,
  });
  const caughtUp = performance.now();
  const [cpu1, server1] = [await cpuMicros("self"), await cpuMicros(ns.pid!)];
  replica.kill();
  await replica.done;
  await link.close();
  catchUps.push({
    eventsPerSecond: rate(EVENTS, caughtUp - booted),
    bootMs: Math.round(booted - t0),
    foldMs: Math.round(caughtUp - booted),
    cpuMicrosPerEvent: Math.round((cpu1 - cpu0) / EVENTS * 100) / 100,
    serverCpuMicrosPerEvent: Math.round((server1 - server0) / EVENTS * 100) / 100,
  });
}
await nc.close();

const loadavg = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
console.log(
  `aggregator_bench: ${EVENTS} events of ${meanBytes} bytes (${DESCRIPTORS} descriptors), ${USERS} users; load ${loadavg}`,
);
printMemory();
console.log(`\nFrom JetStream (published at ${rate(EVENTS, publishMs).toLocaleString("en-US")}/s):`);
console.log(
  "| run | ordered consumer only, events/s (CPU µs) | push consumer only, events/s (CPU µs) | replica catch-up, events/s | boot ms | fold ms | replica CPU µs/event | nats-server CPU µs/event |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
const floor = (f: Floor) => `${f.perSecond.toLocaleString("en-US")} (${f.cpuMicros.toFixed(1)})`;
catchUps.forEach((c, i) =>
  console.log(
    `| ${i + 1} | ${floor(raw[i]!)} | ${floor(push[i]!)} | ${
      c.eventsPerSecond.toLocaleString("en-US")
    } | ${c.bootMs} | ${c.foldMs} | ${c.cpuMicrosPerEvent} | ${c.serverCpuMicrosPerEvent} |`,
  )
);
const best = Math.max(...catchUps.map((c) => c.eventsPerSecond));
const med = median(catchUps.map((c) => c.eventsPerSecond));
const medCpu = median(catchUps.map((c) => c.cpuMicrosPerEvent));
console.log(
  `\nreplica catch-up: median ${med.toLocaleString("en-US")} events/s, best ${
    best.toLocaleString("en-US")
  } (target 100,000); median replica CPU ${medCpu} µs/event, so ${
    Math.round(1e6 / medCpu).toLocaleString("en-US")
  } events/s on a core of its own`,
);
if (flags.json) {
  console.log(
    JSON.stringify({
      events: EVENTS,
      bytes: meanBytes,
      loadavg,
      memory,
      rawConsume: raw,
      push,
      catchUps,
      median: med,
      medCpu,
    }),
  );
}
