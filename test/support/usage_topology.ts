// Token rate limits across replicas, the production path on one machine: gateways (an edge, and an ExtProc sidecar
// publishing usage events to NATS JetStream through its spool) and aggregator replicas folding the same stream, on
// a real nats-server (one node or a cluster). Each edge asks the replica it is given for its rate limit checks.
//
//   await using upstream = await tokenUpstream();
//   await using topology = await startUsageTopology({ servers: ns.url, upstreamPort: upstream.port });
//
// A sidecar runs in the test process (its ExtProcServer and UsageSink are at hand) or as a `tollgate extproc`
// child process that can be SIGKILLed and restarted on the same socket and spool. Replicas can be killed and
// restarted on the same RLS port, from their KV snapshot. Every wait is bounded (pollUntil).
import { Registry } from "prom-client";
import { assert, assertEquals } from "./assert.ts";
import { freePorts, pollUntil } from "./nats_server.ts";
import { type FakeUpstream, startFakeUpstream } from "./fake_upstream.ts";
import { type Spawned, spawnTollgate } from "./process.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { systemClock } from "../../src/observability/clock.ts";
import { DEFAULT_RATE_LIMIT_DOMAIN, loadGatewayConfig } from "../../src/control/gateway_config.ts";
import { ExtProcServer } from "../../src/extproc/server.ts";
import { EdgeServer } from "../../src/edge/edge_server.ts";
import { type EdgeListener, listenEdge } from "../../src/edge/listen.ts";
import { RateLimitFilter } from "../../src/edge/rate_limit_filter.ts";
import { type AggregatorReplica, startAggregator } from "../../src/actors/aggregator/replica.ts";
import { loadRuleSources } from "../../src/actors/aggregator/rule_files.ts";
import { connectNats, type NatsLink, USAGE_STREAM } from "../../src/usage/nats_connection.ts";
import { startUsageSink, type UsageSink } from "../../src/usage/usage_sink.ts";
import { decodeUsageEvent, type UsageEvent } from "../../src/usage/usage_event.ts";
import type { ListenAddress } from "../../src/extproc/listen_address.ts";

export const MODEL = "rate-limit-funky-model";
export const ROUTE_KEY = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";
const EXAMPLE = new URL("../../testdata/resources/token_ratelimit/token_ratelimit.yaml", import.meta.url).pathname;

/** What the token upstream answered: requests, and total tokens per x-user-id. */
export interface TokenUpstream extends FakeUpstream {
  readonly answered: { count: number; readonly tokens: Map<string, number> };
}

/**
 * The upstream reports as many prompt tokens as the user message has characters, and 2 completion tokens; it
 * tallies what it reported per x-user-id, which is what the replicas' counters must add up to.
 */
export async function tokenUpstream(): Promise<TokenUpstream> {
  const answered = { count: 0, tokens: new Map<string, number>() };
  const upstream = await startFakeUpstream((r) => {
    const body = JSON.parse(r.body);
    const prompt = String(body.messages.at(-1).content).length;
    const user = r.headers.get("x-user-id") ?? "";
    answered.count++;
    answered.tokens.set(user, (answered.tokens.get(user) ?? 0) + prompt + 2);
    return Response.json({
      id: "c",
      object: "chat.completion",
      created: 1,
      model: body.model,
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
      usage: { prompt_tokens: prompt, completion_tokens: 2, total_tokens: prompt + 2 },
    });
  });
  return Object.assign(upstream, { answered });
}

export interface GatewaySpec {
  /** Index of the replica whose RLS this gateway's edge asks (default: the gateway's own index). */
  readonly replica?: number;
  /** The edge's ratelimit failure_mode_deny (default false: fail open, Envoy's default). */
  readonly failureModeDeny?: boolean;
  /** "process": the sidecar is a `tollgate extproc` child (default: in the test process). */
  readonly sidecar?: "in-process" | "process";
}

export interface TopologyOptions {
  /** NATS URL(s): every connection gets all of them, so it can move to another node of a cluster. */
  readonly servers: string | readonly string[];
  readonly upstreamPort: number;
  /** The example's first rule: input tokens an hour per x-user-id (default 1,000,000). */
  readonly inputLimit?: number;
  /** Every other rule of the example (output, total, cached and CEL tokens; default: the example's own 100 and
   * 1000 an hour). Load tests raise them so that a run of any length is never limited. */
  readonly otherLimits?: number;
  /** Default two replicas, r1 and r2. */
  readonly replicas?: readonly string[];
  /** Default one gateway per replica. */
  readonly gateways?: readonly GatewaySpec[];
  /** Replicas of the usage stream and snapshot bucket (3 on a 3-node cluster). */
  readonly streamReplicas?: number;
  readonly snapshotEveryRecords?: number;
}

export interface Gateway {
  readonly url: string;
  readonly edge: EdgeServer;
  /** In-process sidecars only. */
  readonly extproc: ExtProcServer | undefined;
  readonly sink: UsageSink | undefined;
  /** Process sidecars only. */
  readonly process: SidecarProcess | undefined;
  /** Usage events the in-process sidecar handed to its sink. */
  readonly handed: number;
  /** The NATS links the in-process sink dialled (the last one is the live one). */
  readonly sinkLinks: readonly NatsLink[];
  close(): Promise<void>;
}

/**
 * A `tollgate extproc --nats … --usage-spool …` child: a supervisor and the worker process that serves (see
 * src/cli/supervisor.ts). The worker alone can be SIGKILLed (the supervisor restarts it on the same socket and
 * spool), or both (the test starts the sidecar again, as a container restart would).
 */
export class SidecarProcess {
  readonly socket: string;
  readonly spool: string;
  readonly adminPort: number;
  readonly #args: string[];
  #child: Spawned | undefined;

  constructor(o: { socket: string; spool: string; config: string; servers: readonly string[] }) {
    this.socket = o.socket;
    this.spool = o.spool;
    [this.adminPort] = freePorts(1) as [number];
    this.#args = [
      "extproc",
      ...["--listen", `unix://${o.socket}`, "--admin", `127.0.0.1:${this.adminPort}`, "--config", o.config],
      ...["--nats", o.servers.join(","), "--usage-spool", o.spool, "--config-cache", "off", "--grace", "1"],
    ];
  }

  /** Starts supervisor and worker; resolves with the time (epoch ms) the worker logged that it listens. */
  async start(): Promise<number> {
    if (this.#child) throw new Error("Cannot start the sidecar process: it is running");
    this.#child = spawnTollgate(this.#args);
    try {
      return await this.#listened(0);
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /**
   * SIGKILLs the worker only, as the OOM killer would; resolves with the time (epoch ms) the worker the supervisor
   * started in its place logged that it listens.
   */
  async killWorker(): Promise<number> {
    const child = this.#child;
    if (!child) throw new Error("Cannot kill the sidecar's worker: the sidecar is not running");
    const seen = child.lines.filter((l) => l.msg === LISTENING).length;
    Deno.kill(this.#workerPid(), "SIGKILL");
    return await this.#listened(seen);
  }

  /** SIGKILLs supervisor and worker: no drain, no final spool write; what the worker held in memory is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    let worker: number | undefined;
    try {
      worker = this.#workerPid(child);
    } catch { /* between two workers, or not started yet */ }
    // The supervisor first, so that nothing restarts the worker, then at once the worker, so that it does not
    // serve on as an orphan until it notices (it would exit within 500 ms).
    try {
      child.child.kill("SIGKILL");
    } catch { /* exited already */ }
    if (worker !== undefined) {
      try {
        Deno.kill(worker, "SIGKILL");
      } catch { /* gone already */ }
    }
    await child[Symbol.asyncDispose]();
    if (worker !== undefined) {
      await pollUntil("the worker to exit", () => !alive(worker) || undefined, { timeoutMs: 10_000 });
    }
  }

  /** tollgate_extproc_streams_active summed over roles, from the admin port. */
  async openStreams(): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}/metrics`);
    const text = await res.text();
    let open = 0;
    for (const m of text.matchAll(/^tollgate_extproc_streams_active\{[^}]*\} (\S+)$/gm)) open += Number(m[1]);
    return open;
  }

  #workerPid(child = this.#child): number {
    const pid = child?.child.pid;
    // Children are listed under the thread that spawned them: read every thread's list.
    const children: string[] = [];
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const list = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`);
      children.push(...list.trim().split(/\s+/).filter(Boolean));
    }
    if (children.length !== 1) throw new Error(`The sidecar's supervisor has ${children.length} workers`);
    return Number(children[0]);
  }

  async #listened(seen: number): Promise<number> {
    const child = this.#child!;
    const line = await pollUntil("the sidecar's worker to listen", () => {
      if (child.lines.some((l) => l.msg === "Worker crashed too often; giving up")) {
        throw new Error("The sidecar's supervisor gave up");
      }
      return child.lines.filter((l) => l.msg === LISTENING)[seen];
    }, { timeoutMs: 30_000, intervalMs: 10 });
    return Date.parse(String(line.time));
  }
}

const LISTENING = "ExtProc server listening";

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie has exited
  } catch {
    return false;
  }
}

export interface UsageTopology extends AsyncDisposable {
  readonly dir: string;
  readonly gateways: readonly Gateway[];
  /** The replicas as they are now (a restarted one replaces the killed one at the same index). */
  readonly replicas: readonly AggregatorReplica[];
  /** Kills replica i as a crash would (no drain, no final snapshot) and waits for its actors to stop. */
  killReplica(i: number): Promise<AggregatorReplica>;
  /** Starts replica i again, same name and RLS port: it restores its newest KV snapshot and folds the tail. */
  restartReplica(i: number): Promise<AggregatorReplica>;
  /** A user's total-token counter on each replica, summed over every hour window it has. */
  totals(user: string): number[];
  /** The usage stream's state. */
  streamState(): Promise<{ messages: number; last_seq: number }>;
  /** Every usage event the stream holds, in order. */
  streamEvents(): Promise<UsageEvent[]>;
  /**
   * Waits until the stream holds `count` usage events and every replica folded them, then asserts it holds
   * exactly `count` (nothing stored twice).
   */
  folded(count: number, timeoutMs?: number): Promise<void>;
  /** A NATS link for the test's own use (closed with the topology). */
  link(): Promise<NatsLink>;
}

export async function startUsageTopology(o: TopologyOptions): Promise<UsageTopology> {
  const servers = typeof o.servers === "string" ? [o.servers] : [...o.servers];
  const dir = await Deno.makeTempDir({ prefix: "tollgate-usage-topology-" });
  const text = (await Deno.readTextFile(EXAMPLE))
    .replace("port: 18080", `port: ${o.upstreamPort}`)
    .replace(/requests: 10\n/, `requests: ${o.inputLimit ?? 1_000_000}\n`)
    .replace(/requests: (100|1000)\n/g, (_, n) => `requests: ${o.otherLimits ?? n}\n`);
  const config = `${dir}/gateway.yaml`;
  await Deno.writeTextFile(config, text);
  const rules = await loadRuleSources({ rules: [], resources: [config] });
  assert(rules.ok, "the example's rules load");

  const links: NatsLink[] = [];
  const link = async (signal?: AbortSignal) => {
    const l = await connectNats(
      { servers, reconnectWaitMs: 100, reconnectJitterMs: 50, connectTimeoutMs: 2000, pingIntervalMs: 2000 },
      signal ? { signal } : {},
    );
    links.push(l);
    return l;
  };

  const names = o.replicas ?? ["r1", "r2"];
  const replicas: AggregatorReplica[] = [];
  const rlsPorts: number[] = [];
  const startReplica = async (i: number, port: number) => {
    const replica = startAggregator({
      link: await link(),
      replica: names[i]!,
      ruleSet: rules.ruleSet,
      log: silentLogger(),
      registry: new Registry(),
      listen: { kind: "tcp", host: "127.0.0.1", port },
      replicas: o.streamReplicas ?? 1,
      snapshotEveryRecords: o.snapshotEveryRecords ?? 100_000,
      consume: { heartbeatMs: 500, tipIntervalMs: 200 },
      retryMs: 100,
    });
    const rls = await replica.listening as ListenAddress & { kind: "tcp" };
    replicas[i] = replica;
    rlsPorts[i] = rls.port;
    return replica;
  };
  for (const i of names.keys()) await startReplica(i, 0);

  const specs = o.gateways ?? names.map((_, i) => ({ replica: i }));
  const gateways: Gateway[] = [];
  try {
    for (const [i, spec] of specs.entries()) gateways.push(await startGateway(i, spec));
  } catch (err) {
    for (const g of gateways) await g.close();
    for (const r of replicas) r.kill();
    for (const l of links) await l.close().catch(() => {});
    throw err;
  }

  async function startGateway(i: number, spec: GatewaySpec): Promise<Gateway> {
    const socket = `${dir}/extproc-${i}.sock`;
    const spool = `${dir}/usage-${i}.spool`;
    const rls = `127.0.0.1:${rlsPorts[spec.replica ?? i]}`;
    const loaded = await loadGatewayConfig([config], {
      extProcTarget: `unix://${socket}`,
      rateLimit: { target: rls, domain: DEFAULT_RATE_LIMIT_DOMAIN },
    });
    assert(loaded.ok, "the example loads");
    let extproc: ExtProcServer | undefined;
    let sink: UsageSink | undefined;
    let process: SidecarProcess | undefined;
    let handed = 0;
    const sinkLinks: NatsLink[] = [];
    if (spec.sidecar === "process") {
      process = new SidecarProcess({ socket, spool, config, servers });
      await process.start();
    } else {
      sink = startUsageSink({
        connect: async (signal) => {
          const l = await link(signal);
          sinkLinks.push(l);
          return l;
        },
        spool: { path: spool, maxBytes: 1 << 20, maxRecords: 10_000, overflow: "reject-new" },
        registry: new Registry(),
        logger: silentLogger(),
        publisher: { probeIntervalMs: 100, publishTimeoutMs: 1000 },
      });
      extproc = new ExtProcServer({
        listen: { kind: "unix", path: socket },
        snapshot: () => loaded.snapshot,
        logger: silentLogger(),
        registry: new Registry(),
        onUsage: (e) => {
          handed++;
          sink!.publish(e);
        },
      });
      await extproc.start();
    }
    const rateLimiter = new RateLimitFilter({
      domain: DEFAULT_RATE_LIMIT_DOMAIN,
      target: rls,
      timeoutMs: 1000,
      failureModeDeny: spec.failureModeDeny ?? false,
      enableXRateLimitHeaders: true,
    }, { clock: systemClock, logger: silentLogger() });
    const edge = new EdgeServer(loaded.edge, { clock: systemClock, logger: silentLogger(), rateLimiter });
    let http: EdgeListener;
    try {
      http = await listenEdge(edge, "127.0.0.1", 0);
    } catch (err) {
      rateLimiter.close();
      await extproc?.close();
      await sink?.close();
      await process?.kill();
      throw err;
    }
    return {
      url: `http://127.0.0.1:${http.port}`,
      edge,
      extproc,
      sink,
      process,
      get handed() {
        return handed;
      },
      sinkLinks,
      async close() {
        await http.shutdown();
        rateLimiter.close();
        await extproc?.close();
        await sink?.close();
        await process?.kill();
      },
    };
  }

  let admin: Promise<NatsLink> | undefined;
  const jsm = async () => (await (admin ??= link())).nc.jetstreamManager({ timeout: 1000 });
  const streamState = async () => {
    const info = await (await jsm()).streams.info(USAGE_STREAM);
    return { messages: info.state.messages, last_seq: info.state.last_seq };
  };

  return {
    dir,
    gateways,
    replicas,
    link: () => link(),
    async killReplica(i) {
      const r = replicas[i]!;
      r.kill();
      await r.done.catch(() => {});
      return r;
    },
    restartReplica: (i) => startReplica(i, rlsPorts[i]!),
    totals(user) {
      return replicas.map((r) => {
        const m = r.core.rules.matchDescriptor(DEFAULT_RATE_LIMIT_DOMAIN, [
          { key: ROUTE_KEY, value: ROUTE_KEY },
          { key: "rule-2-match-0", value: user },
        ]);
        assert(m, "the total-token rule matches");
        let sum = 0;
        for (const [key, c] of r.core.store.entries()) if (key.startsWith(`${m.counterKey}#`)) sum += c.count;
        return sum;
      });
    },
    streamState,
    async streamEvents() {
      const manager = await jsm();
      const { last_seq: last, first_seq: first } = (await manager.streams.info(USAGE_STREAM)).state;
      const events: UsageEvent[] = [];
      for (let seq = first; seq <= last && last > 0; seq++) {
        const m = await manager.streams.getMessage(USAGE_STREAM, { seq }).catch(() => undefined);
        if (!m || !m.subject.startsWith("tollgate.usage.")) continue;
        const event = decodeUsageEvent(m.data);
        if (event instanceof Error) throw event;
        events.push(event);
      }
      return events;
    },
    async folded(count, timeoutMs = 20_000) {
      const state = await pollUntil(`${count} usage events in the stream`, async () => {
        const s = await streamState();
        return s.messages >= count ? s : undefined;
      }, { timeoutMs, intervalMs: 50 });
      await pollUntil(
        "every replica to fold every event",
        () => replicas.every((r) => r.core.seq >= state.last_seq) || undefined,
        { timeoutMs, intervalMs: 20 },
      );
      assertEquals(state.messages, count, "each usage event stored once");
    },
    async [Symbol.asyncDispose]() {
      for (const g of gateways) await g.close();
      for (const r of replicas) await r.stop().catch(() => {});
      for (const l of links) await l.close().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}
