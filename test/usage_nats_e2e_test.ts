// Token rate limits across replicas, end to end through the edge: two gateways (edge + ExtProc sidecar publishing
// usage events to NATS JetStream through its spool) and two aggregator replicas folding the same stream, on a real
// nats-server. Each edge asks its own replica, yet both replicas hold the same counters and limit the same tenant.
import OpenAI from "openai";
import { Registry } from "prom-client";
import { assert, assertEquals } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { startFakeUpstream } from "./support/fake_upstream.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { systemClock } from "../src/observability/clock.ts";
import { DEFAULT_RATE_LIMIT_DOMAIN, loadGatewayConfig } from "../src/control/gateway_config.ts";
import { ExtProcServer } from "../src/extproc/server.ts";
import { EdgeServer } from "../src/edge/edge_server.ts";
import { listenEdge } from "../src/edge/listen.ts";
import { RateLimitFilter } from "../src/edge/rate_limit_filter.ts";
import { startAggregator } from "../src/actors/aggregator/replica.ts";
import { loadRuleSources } from "../src/actors/aggregator/rule_files.ts";
import { connectNats, type NatsLink, USAGE_STREAM } from "../src/usage/nats_connection.ts";
import { startUsageSink, type UsageSink } from "../src/usage/usage_sink.ts";
import { windowKey, windowOf } from "../src/usage/windows.ts";
import { formatListenAddress } from "../src/extproc/listen_address.ts";

const MODEL = "rate-limit-funky-model";
const ROUTE_KEY = "httproute/default/envoy-ai-gateway-token-ratelimit/rule/0/match/0/*";
const EXAMPLE = new URL("../testdata/resources/token_ratelimit/token_ratelimit.yaml", import.meta.url).pathname;

/** The upstream reports as many prompt tokens as the user message has characters, and 2 completion tokens. */
function tokenUpstream() {
  return startFakeUpstream((r) => {
    const body = JSON.parse(r.body);
    const prompt = String(body.messages.at(-1).content).length;
    return Response.json({
      id: "c",
      object: "chat.completion",
      created: 1,
      model: body.model,
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
      usage: { prompt_tokens: prompt, completion_tokens: 2, total_tokens: prompt + 2 },
    });
  });
}

interface Gateway {
  readonly url: string;
  readonly sink: UsageSink;
  close(): Promise<void>;
}

async function startTopology(natsUrl: string, upstreamPort: number, inputLimit: number) {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-usage-e2e-" });
  const text = (await Deno.readTextFile(EXAMPLE))
    .replace("port: 18080", `port: ${upstreamPort}`)
    .replace(/requests: 10\n/, `requests: ${inputLimit}\n`);
  await Deno.writeTextFile(`${dir}/gateway.yaml`, text);
  const rules = await loadRuleSources({ rules: [], resources: [`${dir}/gateway.yaml`] });
  assert(rules.ok, "the example's rules load");

  const links: NatsLink[] = [];
  const link = async () => {
    const l = await connectNats({ servers: natsUrl, reconnectWaitMs: 100, reconnectJitterMs: 50 });
    links.push(l);
    return l;
  };
  const replicas = await Promise.all(["r1", "r2"].map(async (name) =>
    startAggregator({
      link: await link(),
      replica: name,
      ruleSet: rules.ruleSet,
      log: silentLogger(),
      registry: new Registry(),
      listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
      consume: { expiresMs: 1000, maxMessages: 256, tipIntervalMs: 200 },
      retryMs: 100,
    })
  ));
  const rlsTargets = await Promise.all(replicas.map((r) => r.listening));

  const gateways: Gateway[] = [];
  for (const [i, rls] of rlsTargets.entries()) {
    const socket = `${dir}/extproc-${i}.sock`;
    const loaded = await loadGatewayConfig([`${dir}/gateway.yaml`], {
      extProcTarget: `unix://${socket}`,
      rateLimit: { target: formatListenAddress(rls!), domain: DEFAULT_RATE_LIMIT_DOMAIN },
    });
    assert(loaded.ok, "the example loads");
    const sink = startUsageSink({
      connect: async (signal) => {
        const l = await connectNats({ servers: natsUrl, reconnectWaitMs: 100, reconnectJitterMs: 50 }, { signal });
        links.push(l);
        return l;
      },
      spool: { path: `${dir}/usage-${i}.spool`, maxBytes: 1 << 20, maxRecords: 10_000, overflow: "reject-new" },
      registry: new Registry(),
      logger: silentLogger(),
      publisher: { probeIntervalMs: 100, publishTimeoutMs: 1000 },
    });
    const extproc = new ExtProcServer({
      listen: { kind: "unix", path: socket },
      snapshot: () => loaded.snapshot,
      logger: silentLogger(),
      registry: new Registry(),
      onUsage: (e) => sink.publish(e),
    });
    await extproc.start();
    const rateLimiter = new RateLimitFilter({
      domain: DEFAULT_RATE_LIMIT_DOMAIN,
      target: formatListenAddress(rls!),
      timeoutMs: 1000,
      failureModeDeny: false,
      enableXRateLimitHeaders: true,
    }, { clock: systemClock, logger: silentLogger() });
    const edge = new EdgeServer(loaded.edge, { clock: systemClock, logger: silentLogger(), rateLimiter });
    const http = await listenEdge(edge, "127.0.0.1", 0);
    gateways.push({
      url: `http://127.0.0.1:${http.port}`,
      sink,
      async close() {
        await http.shutdown();
        rateLimiter.close();
        await extproc.close();
        await sink.close();
      },
    });
  }
  return {
    gateways,
    replicas,
    /** The folded total-token counter of `user` in the current hour, on each replica. */
    totals(user: string, at = Date.now()): number[] {
      return replicas.map((r) => {
        const m = r.core.rules.matchDescriptor(DEFAULT_RATE_LIMIT_DOMAIN, [
          { key: ROUTE_KEY, value: ROUTE_KEY },
          { key: "rule-2-match-0", value: user },
        ])!;
        return r.core.store.get(windowKey(m.counterKey, windowOf("hour", at).id)) ?? 0;
      });
    },
    async folded(count: number): Promise<void> {
      const admin = await link();
      const jsm = await admin.nc.jetstreamManager();
      const state = await pollUntil(`${count} usage events in the stream`, async () => {
        const info = await jsm.streams.info(USAGE_STREAM);
        return info.state.messages >= count ? info.state : undefined;
      }, { timeoutMs: 20_000, intervalMs: 50 });
      assertEquals(state.messages, count, "each usage event stored once");
      await pollUntil(
        "both replicas to fold every event",
        () => replicas.every((r) => r.core.seq >= state.last_seq) || undefined,
        { timeoutMs: 20_000, intervalMs: 20 },
      );
    },
    async [Symbol.asyncDispose]() {
      for (const g of gateways) await g.close();
      for (const r of replicas) await r.stop().catch(() => {});
      for (const l of links) await l.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function ask(url: string, user: string, content: string): Promise<number> {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-user-id": user },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content }] }),
  }).then(async (r) => {
    await r.body?.cancel();
    return r.status;
  });
}

Deno.test("two sidecars and two aggregator replicas over NATS agree exactly on every tenant's token counter", async () => {
  await using ns = await NatsServer.start();
  await using upstream = await tokenUpstream();
  await using topology = await startTopology(ns.url, upstream.port, 1_000_000);
  const users = ["alice", "bob", "carol", "dave"];
  const expected = new Map<string, number>();
  const openais = topology.gateways.map((g) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: "k", maxRetries: 0 }));
  const requests = 48;
  await Promise.all(Array.from({ length: requests }, async (_, i) => {
    const user = users[i % users.length]!;
    const content = "x".repeat(1 + (i * 7) % 23);
    const res = await openais[i % 2]!.chat.completions.create(
      { model: MODEL, messages: [{ role: "user", content }] },
      { headers: { "x-user-id": user } },
    );
    expected.set(user, (expected.get(user) ?? 0) + res.usage!.total_tokens);
  }));
  await topology.folded(requests);
  for (const user of users) {
    assertEquals(topology.totals(user), [expected.get(user)!, expected.get(user)!], user);
  }
  assertEquals(
    topology.replicas[0]!.core.store.snapshot(),
    topology.replicas[1]!.core.store.snapshot(),
    "the replicas hold the same counters",
  );
});

Deno.test("a tenant whose token budget is spent through one gateway is limited (429) on both, another is not", async () => {
  await using ns = await NatsServer.start();
  await using upstream = await tokenUpstream();
  // The example's first rule: 10 input tokens an hour per x-user-id, checked before the upstream.
  await using topology = await startTopology(ns.url, upstream.port, 10);
  const [a, b] = topology.gateways.map((g) => g.url) as [string, string];
  assertEquals(await ask(a, "alice", "12345"), 200);
  assertEquals(await ask(b, "alice", "12345"), 200);
  await topology.folded(2);
  assertEquals(await ask(a, "alice", "hi"), 429);
  assertEquals(await ask(b, "alice", "hi"), 429);
  assertEquals(await ask(b, "bob", "hi"), 200);
  assertEquals(upstream.seen.length, 3, "refused requests never reach the provider");
});

Deno.test("usage sent while NATS is down is spooled, replayed when it returns, and counted exactly once", async () => {
  await using ns = await NatsServer.start();
  await using upstream = await tokenUpstream();
  await using topology = await startTopology(ns.url, upstream.port, 1_000_000);
  const [a, b] = topology.gateways.map((g) => g.url) as [string, string];
  assertEquals(await ask(a, "alice", "before"), 200);
  await topology.folded(1);
  await ns.stop();
  // The gateways keep serving: the replicas answer from their local counters, usage waits in the spools.
  const during = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(i % 2 ? b : a, "alice", "during")));
  assertEquals(during, Array(10).fill(200));
  await pollUntil(
    "both spools to hold the usage",
    () => topology.gateways.every((g) => g.sink.spooled === 5) || undefined,
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  await ns.restart();
  await topology.folded(11);
  await pollUntil("the spools to empty", () => topology.gateways.every((g) => g.sink.spooled === 0) || undefined, {
    timeoutMs: 10_000,
  });
  const expected = ("before".length + 2) + 10 * ("during".length + 2);
  assertEquals(topology.totals("alice"), [expected, expected]);
});
