// The control plane with a real nats-server: controller actors (directory source, compiler, publisher, lease) and
// the config subscribers of two sidecars and an aggregator, in one process but each on its own NATS connection.
import { Registry } from "prom-client";
import { assert, assertEquals } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import {
  capturingLogger,
  compileDir,
  routeFile,
  routeYaml,
  startSubscribedSidecar,
  writeAtomicallySync,
  writeRoute,
  writeRoutes,
} from "./support/control_plane.ts";
import { type Controller, startController } from "../src/actors/controller/controller.ts";
import { connectNats, type NatsLink } from "../src/usage/nats_connection.ts";
import { startAggregator } from "../src/actors/aggregator/replica.ts";
import { emptyRuleSet } from "../src/actors/aggregator/rule_files.ts";
import { aggregatorRuleSet } from "../src/control/bus/aggregator_rules.ts";
import { startConfigSubscriber } from "../src/actors/config_subscriber.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { ConfigStore } from "../src/control/bus/config_store.ts";
import { CONFIG_SCHEMA_VERSION, configSnapshot, encodeSnapshot } from "../src/control/bus/config_snapshot.ts";
import { readConfigCache } from "../src/actors/config_subscriber_cache.ts";

const TOKEN_RATELIMIT = new URL("../testdata/resources/token_ratelimit/token_ratelimit.yaml", import.meta.url).pathname;

interface TestController extends AsyncDisposable {
  readonly controller: Controller;
  readonly link: NatsLink;
  readonly lines: Record<string, unknown>[];
  /** As a crash: no lease release, the connection dropped. */
  crash(): Promise<void>;
}

async function startTestController(
  url: string,
  paths: string[],
  id: string,
  { leaseTtlMs = 2000, maxChunkBytes }: { leaseTtlMs?: number; maxChunkBytes?: number } = {},
): Promise<TestController> {
  const { log, lines } = capturingLogger();
  const link = await connectNats({ servers: url, name: id });
  const controller = await startController({
    link,
    id,
    paths,
    compile: { extProcTarget: "unix:///run/tollgate/extproc.sock", rateLimitDomain: "ai-gateway" },
    log,
    registry: new Registry(),
    leaseTtlMs,
    ...(maxChunkBytes ? { maxChunkBytes } : {}),
    debounceMs: 50,
    retryMs: 200,
  });
  return {
    controller,
    link,
    lines,
    async crash() {
      controller.kill();
      await link.close();
    },
    async [Symbol.asyncDispose]() {
      await controller.stop();
      await link.close();
    },
  };
}

function leading(c: TestController): true | undefined {
  return c.controller.status().role === "leader" && c.controller.status().publishedRevision !== null || undefined;
}

Deno.test("a file change reaches two sidecars and an aggregator", async () => {
  await using ns = await NatsServer.start();
  const dir = await Deno.makeTempDir({ prefix: "tollgate-cp-" });
  try {
    await writeRoute(dir, { model: "model-a", port: 9 });
    await using c = await startTestController(ns.url, [dir], "controller-1");
    await using one = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar-1" });
    await using two = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar-2" });
    const link = await connectNats({ servers: ns.url, name: "aggregator" });
    const replica = startAggregator({
      link,
      replica: "agg-1",
      ruleSet: emptyRuleSet(),
      log: silentLogger(),
      registry: new Registry(),
      retryMs: 100,
    });
    const aggregatorConfig = startConfigSubscriber({
      connect: () => Promise.resolve(link),
      apply: (snapshot) => replica.setRules(aggregatorRuleSet(snapshot)),
      log: silentLogger(),
      registry: new Registry(),
    });
    try {
      const first = await one.subscriber.applied(1, 10_000);
      assertEquals((await two.subscriber.applied(1, 10_000)).hash, first.hash);
      await aggregatorConfig.applied(1, 10_000);
      assert(one.config.current().modelIds.has("model-a"));
      const domains = () => replica.core.rules.domains.map((d) => d.domain);
      assertEquals(domains(), []);

      // One change: a second route and Envoy AI Gateway's token rate limit example (a route and its policy),
      // written back to back.
      writeAtomicallySync(routeFile(dir, "model-b"), routeYaml({ model: "model-b", port: 9 }));
      Deno.copyFileSync(TOKEN_RATELIMIT, `${dir}/token_ratelimit.yaml`);
      const next = await pollUntil("the change to be published", () => {
        const s = c.controller.status();
        return (s.publishedRevision ?? 0) > first.revision && s.compiledHash === s.publishedHash
          ? s.publishedRevision!
          : undefined;
      }, { timeoutMs: 10_000 });
      for (const sidecar of [one, two]) {
        const applied = await sidecar.subscriber.applied(next, 10_000);
        assertEquals(applied.hash, c.controller.status().publishedHash);
        const models = sidecar.config.current().modelIds;
        assert(
          models.has("model-a") && models.has("model-b") && models.has("rate-limit-funky-model"),
          [...models].join(),
        );
      }
      await aggregatorConfig.applied(next, 10_000);
      assertEquals(domains(), ["ai-gateway"]);
      assertEquals(one.subscriber.status().configRevision, two.subscriber.status().configRevision);
    } finally {
      await aggregatorConfig.stop();
      await replica.stop();
      await link.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rules an aggregator is given while it still connects are the rules it serves", async () => {
  await using ns = await NatsServer.start();
  const link = await connectNats({ servers: ns.url, name: "aggregator" });
  const replica = startAggregator({
    link,
    replica: "agg-1",
    ruleSet: emptyRuleSet(),
    log: silentLogger(),
    registry: new Registry(),
    retryMs: 100,
  });
  try {
    // As a config subscriber does with its cached snapshot at start, before JetStream is reached.
    assertEquals(replica.notReadyReason(), "connecting to NATS JetStream");
    const compiled = await compileDir([new URL(".", `file://${TOKEN_RATELIMIT}`).pathname]);
    replica.setRules(aggregatorRuleSet(configSnapshot(compiled, { rateLimitDomain: "ai-gateway" })));
    await pollUntil("the replica to run", () => replica.notReadyReason() === null || undefined);
    assertEquals(replica.core.rules.domains.map((d) => d.domain), ["ai-gateway"]);
  } finally {
    await replica.stop();
    await link.close();
  }
});

Deno.test("a bad change is rejected with its file and path, and the running config stays", async () => {
  await using ns = await NatsServer.start();
  const dir = await Deno.makeTempDir({ prefix: "tollgate-cp-" });
  try {
    await writeRoute(dir, { model: "model-a", port: 9 });
    await using c = await startTestController(ns.url, [dir], "controller-1");
    await using sidecar = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar-1" });
    const good = await sidecar.subscriber.applied(1, 10_000);

    // A typo in a field name and a route pointing at a backend that does not exist.
    // Written back to back: one change.
    const original = await Deno.readTextFile(routeFile(dir, "model-a"));
    writeAtomicallySync(routeFile(dir, "model-a"), original.replace("port: 9", "prot: 9"));
    writeAtomicallySync(`${dir}/dangling.yaml`, original.split("---")[0]!.replaceAll("model-a", "model-x"));
    const rejected = await pollUntil(
      "the change to be rejected",
      () => c.lines.find((l) => l.msg === "Rejected a configuration change; keeping the last good snapshot"),
      { timeoutMs: 10_000 },
    );
    const errors = (rejected.errors as string[]).join("\n");
    assert(errors.includes(`${routeFile(dir, "model-a")}#2`) && errors.includes("spec.endpoints[0].ip.prot"), errors);
    assert(errors.includes(`${dir}/dangling.yaml#0`) && errors.includes('AIServiceBackend "default/model-x"'), errors);
    assertEquals(c.controller.status().publishedRevision, good.revision);
    assert(c.controller.status().rejected.length >= 2);

    // Nothing reached the sidecar; fixing the files publishes again.
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(sidecar.subscriber.status().configRevision, good.revision);
    assert(sidecar.config.current().modelIds.has("model-a"));
    await Deno.remove(`${dir}/dangling.yaml`);
    await writeRoute(dir, { model: "model-a", port: 10 });
    const fixed = await sidecar.subscriber.applied(good.revision + 1, 10_000);
    assert(fixed.hash !== good.hash);
    assertEquals(c.controller.status().rejected, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a sidecar restarted while NATS is down serves its cached snapshot", async () => {
  await using ns = await NatsServer.start();
  const dir = await Deno.makeTempDir({ prefix: "tollgate-cp-" });
  const cacheFile = `${dir}/cache/config.snapshot`;
  try {
    await writeRoute(dir, { model: "model-a", port: 9 });
    const applied = await (async () => {
      await using _c = await startTestController(ns.url, [dir], "controller-1");
      await using sidecar = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar-1", cacheFile });
      const applied = await sidecar.subscriber.applied(1, 10_000);
      await pollUntil("the cache to be written", async () => (await readConfigCache(cacheFile))?.revision);
      return applied;
    })();
    await ns.stop();

    await using restarted = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar-1b", cacheFile });
    const fromCache = await restarted.subscriber.applied(undefined, 5_000);
    assertEquals(fromCache, { revision: applied.revision, hash: applied.hash, source: "cache" });
    assert(restarted.config.current().modelIds.has("model-a"));
    assertEquals(restarted.subscriber.status().natsConnected, false);

    // NATS back: the same revision is not applied twice, and a later one is.
    await ns.restart();
    await pollUntil("the subscriber to connect", () => restarted.subscriber.status().natsConnected || undefined, {
      timeoutMs: 10_000,
    });
    assertEquals(restarted.subscriber.status().configSource, "cache");
    await using _c = await startTestController(ns.url, [dir], "controller-2");
    await writeRoute(dir, { model: "model-b", port: 9 });
    const next = await restarted.subscriber.applied(applied.revision + 1, 10_000);
    assertEquals(next.source, "nats");
    assert(restarted.config.current().modelIds.has("model-b"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a snapshot of another schema version is refused and the running config stays", async () => {
  await using ns = await NatsServer.start();
  const dir = await Deno.makeTempDir({ prefix: "tollgate-cp-" });
  try {
    await writeRoute(dir, { model: "model-a", port: 9 });
    const good = await (async () => {
      await using _c = await startTestController(ns.url, [dir], "controller-1");
      await using probe = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "probe" });
      return await probe.subscriber.applied(1, 10_000);
    })();
    await using sidecar = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar-1" });
    await sidecar.subscriber.applied(good.revision, 10_000);

    // A newer controller writes schema version 2.
    const link = await connectNats({ servers: ns.url });
    try {
      const store = await ConfigStore.open(link.nc.jetstream(), await link.nc.jetstreamManager());
      const head = await store.readHead();
      const current = await store.fetch(head!.head);
      const future = await encodeSnapshot({ ...current.snapshot, schemaVersion: CONFIG_SCHEMA_VERSION + 1 });
      await store.publish(future, head, "controller-from-the-future");
    } finally {
      await link.close();
    }
    const refusal = await pollUntil(
      "the refusal",
      () => sidecar.lines.find((l) => l.msg === "Refused a config snapshot from NATS; keeping the running config"),
    );
    assert(String((refusal.err as { message: string }).message).includes("schema version 2"), JSON.stringify(refusal));
    assertEquals(sidecar.subscriber.status().configRevision, good.revision);
    assert(sidecar.subscriber.status().configRefusal?.includes("schema version 2"));
    assert(sidecar.config.current().modelIds.has("model-a"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("when the leading controller dies, the standby takes the lease and publishes the next change", async () => {
  await using ns = await NatsServer.start();
  const dir = await Deno.makeTempDir({ prefix: "tollgate-cp-" });
  try {
    await writeRoute(dir, { model: "model-a", port: 9 });
    const a = await startTestController(ns.url, [dir], "controller-a", { leaseTtlMs: 1500 });
    await pollUntil("controller-a to lead", () => leading(a), { timeoutMs: 10_000 });
    await using b = await startTestController(ns.url, [dir], "controller-b", { leaseTtlMs: 1500 });
    await pollUntil("controller-b to stand by", () => b.lines.find((l) => l.msg === "Controller standing by"));
    await using sidecar = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar-1" });
    const first = await sidecar.subscriber.applied(1, 10_000);
    assertEquals(b.controller.status().role, "standby");
    // Same resources, same hash: the standby compiled too, and nothing was published twice.
    assertEquals(b.controller.status().compiledHash, first.hash);
    assertEquals(first.revision, 1);

    await a.crash();
    await writeRoute(dir, { model: "model-b", port: 9 });
    const next = await sidecar.subscriber.applied(2, 15_000);
    assertEquals(b.controller.status().role, "leader");
    assertEquals(next.revision, 2);
    assert(sidecar.config.current().modelIds.has("model-b"));
    assert(b.lines.some((l) => l.msg === "Controller leading"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("2,000 routes go through NATS in chunks and apply whole", async () => {
  await using ns = await NatsServer.start();
  const dir = await Deno.makeTempDir({ prefix: "tollgate-cp-" });
  try {
    await writeRoutes(dir, 2000, 9);
    // 2.6 MB of JSON gzips to ~90 KB: small chunks make this one go in several, as a bigger config would.
    await using c = await startTestController(ns.url, [dir], "controller-1", { maxChunkBytes: 16 << 10 });
    await using sidecar = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar-1" });
    await sidecar.subscriber.applied(1, 30_000);
    const published = await pollUntil("the publication", () => c.lines.find((l) => l.msg === "Published config"));
    const compiled = c.lines.find((l) => l.msg === "Compiled the resources")!;
    assert((compiled.bytes as number) > 1 << 20, `snapshot of ${compiled.bytes} bytes`);
    assert((published.chunks as number) > 1, `${published.chunks} chunk(s)`);
    assertEquals(sidecar.config.current().models.length, 2000);
    assertEquals(sidecar.config.current().backends.size, 2000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
