// The control plane end to end, through the edge with the official OpenAI client: resources in a directory →
// controller → NATS KV → the sidecar's and the edge's config subscribers → requests to a fake provider.
import OpenAI from "openai";
import { Registry } from "prom-client";
import { assert, assertEquals } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { chatCompletion, type FakeUpstream, startFakeUpstream } from "./support/fake_upstream.ts";
import { startSubscribedSidecar, writeAtomically, writeRoute } from "./support/control_plane.ts";
import { startController } from "../src/actors/controller/controller.ts";
import { type ConfigSubscriber, startConfigSubscriber } from "../src/actors/config_subscriber.ts";
import { connectNats, type NatsLink } from "../src/usage/nats_connection.ts";
import { EdgeServer } from "../src/edge/edge_server.ts";
import { listenEdge } from "../src/edge/listen.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { systemClock } from "../src/observability/clock.ts";

interface Plane extends AsyncDisposable {
  readonly openai: OpenAI;
  readonly sidecar: Awaited<ReturnType<typeof startSubscribedSidecar>>;
  readonly edgeConfig: ConfigSubscriber;
  readonly resources: string;
  readonly secrets: string;
  readonly upstream: FakeUpstream;
  /** Waits until the sidecar and the edge both run at least `revision`. */
  applied(revision: number): Promise<void>;
}

/** A controller on a resource directory, one sidecar and one edge fed over NATS, a fake provider. */
async function startPlane(ns: NatsServer): Promise<Plane> {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-cp-e2e-" });
  const resources = `${dir}/resources`;
  const secrets = `${dir}/secrets`;
  await Deno.mkdir(resources);
  await Deno.mkdir(`${secrets}/default/model-a-key`, { recursive: true });
  await Deno.writeTextFile(`${secrets}/default/model-a-key/apiKey`, "sk-one");
  const upstream = await startFakeUpstream((r) => chatCompletion(JSON.parse(r.body).model, "hi"));
  // The Secret in the resources holds a placeholder: the sidecar must use its own mounted key, never this.
  await writeRoute(resources, { model: "model-a", port: upstream.port, apiKey: { placeholder: "not-the-key" } });

  const links: NatsLink[] = [];
  const link = async (name: string) => {
    const l = await connectNats({ servers: ns.url, name, reconnectWaitMs: 200 });
    links.push(l);
    return l;
  };
  const controller = await startController({
    link: await link("controller"),
    id: "controller-1",
    paths: [resources],
    compile: { extProcTarget: `unix://${dir}/sidecar.sock`, rateLimitDomain: "ai-gateway" },
    log: silentLogger(),
    registry: new Registry(),
    debounceMs: 50,
  });
  const sidecar = await startSubscribedSidecar({ natsUrl: ns.url, dir, name: "sidecar", secretsDir: secrets });
  const edge = new EdgeServer({
    listener: { host: "127.0.0.1", port: 0 },
    maxRequestBodyBytes: 1 << 20,
    routes: [],
    clusters: [],
  }, { clock: systemClock, logger: silentLogger() });
  // The edge stands in for Envoy: it takes the compiled topology of each revision (Envoy would get it rendered).
  const edgeConfig = startConfigSubscriber({
    connect: () => link("edge"),
    apply: (snapshot) => edge.setConfig(snapshot.gateway.edge),
    log: silentLogger(),
    registry: new Registry(),
  });
  const http = await listenEdge(edge, "127.0.0.1", 0);
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${http.port}/v1`, apiKey: "client-key", maxRetries: 0 });
  return {
    openai,
    sidecar,
    edgeConfig,
    resources,
    secrets,
    upstream,
    async applied(revision) {
      await sidecar.subscriber.applied(revision, 10_000);
      await edgeConfig.applied(revision, 10_000);
    },
    async [Symbol.asyncDispose]() {
      await http.shutdown();
      edge.close();
      await edgeConfig.stop();
      await sidecar.close();
      await controller.stop();
      for (const l of links) await l.close();
      await upstream.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function chat(openai: OpenAI, model: string): Promise<string> {
  const res = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });
  return res.choices[0]!.message.content ?? "";
}

Deno.test("a route added while traffic flows starts answering, and no request fails", async () => {
  await using ns = await NatsServer.start();
  await using plane = await startPlane(ns);
  await plane.applied(1);
  assertEquals(await chat(plane.openai, "model-a"), "hi");

  let running = true;
  const outcomes = { ok: 0, failed: [] as string[] };
  const traffic = (async () => {
    while (running) {
      try {
        await chat(plane.openai, "model-a");
        outcomes.ok++;
      } catch (e) {
        outcomes.failed.push((e as Error).message);
      }
    }
  })();
  try {
    await pollUntil("traffic to flow", () => outcomes.ok >= 5 || undefined);
    const before = outcomes.ok;
    await writeRoute(plane.resources, { model: "model-b", port: plane.upstream.port });
    await plane.applied(2);
    assertEquals(await chat(plane.openai, "model-b"), "hi");
    await pollUntil("more traffic after the change", () => outcomes.ok >= before + 20 || undefined);
  } finally {
    running = false;
    await traffic;
  }
  assertEquals(outcomes.failed, []);
  assert(plane.upstream.seen.some((r) => JSON.parse(r.body).model === "model-b"));
});

Deno.test("a rotated key file is used upstream without a restart or a new revision", async () => {
  await using ns = await NatsServer.start();
  await using plane = await startPlane(ns);
  await plane.applied(1);
  await chat(plane.openai, "model-a");
  assertEquals(plane.upstream.seen.at(-1)!.headers.get("authorization"), "Bearer sk-one");

  await writeAtomically(`${plane.secrets}/default/model-a-key/apiKey`, "sk-two");
  await pollUntil("the rotated key to reach the provider", async () => {
    await chat(plane.openai, "model-a");
    return plane.upstream.seen.at(-1)!.headers.get("authorization") === "Bearer sk-two" || undefined;
  }, { timeoutMs: 10_000, intervalMs: 50 });
  assertEquals(plane.sidecar.subscriber.status().configRevision, 1);
  assert(plane.sidecar.lines.some((l) => l.msg === "Re-read rotated credentials"));
  assert(!plane.upstream.seen.some((r) => r.headers.get("authorization")?.includes("not-the-key")));
});
