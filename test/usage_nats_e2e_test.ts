// Token rate limits across replicas, end to end through the edge: two gateways (edge + ExtProc sidecar publishing
// usage events to NATS JetStream through its spool) and two aggregator replicas folding the same stream, on a real
// nats-server. Each edge asks its own replica, yet both replicas hold the same counters and limit the same tenant.
import OpenAI from "openai";
import { assertEquals } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { MODEL, startUsageTopology, tokenUpstream } from "./support/usage_topology.ts";

function startTopology(natsUrl: string, upstreamPort: number, inputLimit: number) {
  return startUsageTopology({ servers: natsUrl, upstreamPort, inputLimit });
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
    () => topology.gateways.every((g) => g.sink!.spooled === 5) || undefined,
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  await ns.restart();
  await topology.folded(11);
  await pollUntil("the spools to empty", () => topology.gateways.every((g) => g.sink!.spooled === 0) || undefined, {
    timeoutMs: 10_000,
  });
  const expected = ("before".length + 2) + 10 * ("during".length + 2);
  assertEquals(topology.totals("alice"), [expected, expected]);
});
