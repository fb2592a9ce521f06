// The Kubernetes source actor, driven through its KubernetesWatcher interface by a scripted watcher (the cluster is the
// one thing these tests cannot have), and the compiler on what it produces.
import { createActor, createMachine } from "xstate";
import { assert, assertEquals } from "./support/assert.ts";
import { pollUntil } from "./support/nats_server.ts";
import {
  asDocument,
  type KubernetesKind,
  type KubernetesObject,
  kubernetesSourceActor,
  type KubernetesSourceEvent,
  type KubernetesWatcher,
  type KubernetesWatchEvent,
  WATCHED_KINDS,
} from "../src/actors/controller/kubernetes_source.ts";
import { compileSources } from "../src/actors/controller/compiler.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { systemClock } from "../src/observability/clock.ts";

const kind = (k: string): KubernetesKind => WATCHED_KINDS.find((w) => w.kind === k)!;

/** Live objects as the API server returns them: server-managed metadata, status, last-applied annotation. */
function live(k: string, name: string, spec: Record<string, unknown>): KubernetesObject {
  return {
    apiVersion: kind(k).apiVersion,
    kind: k,
    metadata: {
      name,
      namespace: "default",
      uid: crypto.randomUUID(),
      resourceVersion: "42",
      generation: 3,
      managedFields: [{ manager: "kubectl" }],
      ownerReferences: [],
      annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}", team: "ml" },
      creationTimestamp: new Date("2026-01-01T00:00:00Z"),
    },
    spec,
    status: { conditions: [] },
  };
}

const ROUTE = live("AIGatewayRoute", "chat", {
  rules: [{
    matches: [{ headers: [{ type: "Exact", name: "x-ai-eg-model", value: "gpt-4o-mini" }] }],
    backendRefs: [{ name: "openai" }],
  }],
});
const SERVICE = live("AIServiceBackend", "openai", {
  schema: { name: "OpenAI" },
  backendRef: { name: "openai", kind: "Backend", group: "gateway.envoyproxy.io" },
});
const BACKEND = live("Backend", "openai", { endpoints: [{ fqdn: { hostname: "api.openai.com", port: 443 } }] });
const POLICY = live("BackendSecurityPolicy", "openai-key", {
  targetRefs: [{ group: "aigateway.envoyproxy.io", kind: "AIServiceBackend", name: "openai" }],
  type: "APIKey",
  apiKey: { secretRef: { name: "openai-key" } },
});

class ScriptedWatcher implements KubernetesWatcher {
  onEvent: ((e: KubernetesWatchEvent) => void) | undefined;
  stopped = false;
  watch(_kinds: readonly KubernetesKind[], onEvent: (e: KubernetesWatchEvent) => void): () => void {
    this.onEvent = onEvent;
    return () => this.stopped = true;
  }
  sync(objects: Record<string, KubernetesObject[]>): void {
    for (const k of WATCHED_KINDS) this.onEvent!({ type: "SYNCED", kind: k, objects: objects[k.kind] ?? [] });
  }
}

function run(watcher: KubernetesWatcher) {
  const events: KubernetesSourceEvent[] = [];
  const parent = createMachine({
    invoke: {
      src: kubernetesSourceActor,
      input: { watcher, clock: systemClock, log: silentLogger(), debounceMs: 10 },
    },
    on: { "source.kubernetes": { actions: ({ event }) => void events.push(event as KubernetesSourceEvent) } },
  });
  const actor = createActor(parent).start();
  return { events, actor };
}

Deno.test("asDocument keeps what a user writes and drops server-managed metadata, status and Secret values", () => {
  const doc = asDocument(kind("AIGatewayRoute"), ROUTE);
  assertEquals(Object.keys(doc.metadata as object).sort(), [
    "annotations",
    "creationTimestamp",
    "name",
    "namespace",
    "resourceVersion",
    "uid",
  ]);
  assertEquals((doc.metadata as { annotations: unknown }).annotations, { team: "ml" });
  assertEquals((doc.metadata as { creationTimestamp: unknown }).creationTimestamp, "2026-01-01T00:00:00.000Z");
  assertEquals(doc.status, undefined);
  const secret = asDocument({ apiVersion: "v1", kind: "Secret", plural: "secrets" }, {
    metadata: { name: "k" },
    data: { apiKey: "c2stc2VjcmV0" },
  });
  assertEquals(secret.data, { apiKey: "" });
});

Deno.test("the Kubernetes source reports nothing until every kind has synced, then every change", async () => {
  const watcher = new ScriptedWatcher();
  const { events, actor } = run(watcher);
  watcher.onEvent!({ type: "SYNCED", kind: kind("AIGatewayRoute"), objects: [ROUTE] });
  await new Promise((r) => setTimeout(r, 50));
  assertEquals(events.length, 0);
  watcher.sync({
    AIGatewayRoute: [ROUTE],
    AIServiceBackend: [SERVICE],
    Backend: [BACKEND],
    BackendSecurityPolicy: [POLICY],
  });
  const first = await pollUntil("the first report", () => events[0]);
  assertEquals(first.errors, []);
  assertEquals(first.resources.map((r) => `${r.kind}/${r.metadata.name}`).sort(), [
    "AIGatewayRoute/chat",
    "AIServiceBackend/openai",
    "Backend/openai",
    "BackendSecurityPolicy/openai-key",
  ]);

  // A watch event: the route gains a second model; the source reports the whole set again.
  const changed = structuredClone(ROUTE) as { spec: { rules: { matches: unknown[] }[] } };
  changed.spec.rules[0]!.matches.push({ headers: [{ type: "Exact", name: "x-ai-eg-model", value: "gpt-4o" }] });
  watcher.onEvent!({ type: "MODIFIED", kind: kind("AIGatewayRoute"), object: changed as unknown as KubernetesObject });
  const second = await pollUntil("the second report", () => events[1]);
  const route = second.resources.find((r) => r.kind === "AIGatewayRoute")!;
  assertEquals((route.spec as { rules: { matches: unknown[] }[] }).rules[0]!.matches.length, 2);
  // Objects that did not change are the same resources as before (what lets the compiler reuse their results).
  const backend = (e: KubernetesSourceEvent) => e.resources.find((r) => r.kind === "Backend");
  assert(backend(second) === backend(first), "an unchanged object was parsed again");
  assert(route !== first.resources.find((r) => r.kind === "AIGatewayRoute"), "a changed object was kept");

  actor.stop();
  assert(watcher.stopped);
});

Deno.test("the compiler checks references across files and the cluster, and leaves Secrets to the sidecars", async () => {
  const watcher = new ScriptedWatcher();
  const { events, actor } = run(watcher);
  // The route lives in a file; its backends and the policy naming a Secret come from the cluster.
  const dir = await Deno.makeTempDir({ prefix: "tollgate-k8s-" });
  try {
    await Deno.writeTextFile(`${dir}/route.yaml`, JSON.stringify(asDocument(kind("AIGatewayRoute"), ROUTE)));
    watcher.sync({ AIServiceBackend: [SERVICE], Backend: [BACKEND], BackendSecurityPolicy: [POLICY] });
    const kubernetes = await pollUntil("the report", () => events[0]);
    const input = {
      paths: [dir],
      kubernetes,
      env: {},
      cache: new Map(),
      compile: { extProcTarget: "unix:///run/tollgate/extproc.sock", rateLimitDomain: "ai-gateway" },
    };
    const ok = await compileSources(input);
    assert(ok.ok, JSON.stringify(ok));
    assertEquals(ok.routes, 1);
    const text = new TextDecoder().decode(ok.encoded.bytes);
    assert(text.includes('"secret":{"key":"apiKey","name":"openai-key","namespace":"default"}'), text.slice(0, 300));

    // Without the cluster's backends, the file's route points at nothing.
    const alone = await compileSources({ ...input, kubernetes: { resources: [], errors: [] } });
    assert(!alone.ok);
    assert(alone.errors.some((e) => e.message === 'AIServiceBackend "default/openai" is not defined'));
  } finally {
    actor.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
