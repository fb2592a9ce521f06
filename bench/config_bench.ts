// Config propagation: the time from a change to a resource file until every subscriber has applied it, through the
// whole control plane — the controller's directory source (debounce), compiler (read, validate, compile, encode),
// publisher (gzip, chunks, head) on a real nats-server, and each subscriber's watch, fetch, checks and apply (two
// sidecars that materialise their snapshot with local secrets, one aggregator that rebuilds its rules).
//
//   deno run -A bench/config_bench.ts [--routes 10,2000] [--changes 30] [--layout files|single] [--debounce 50]
//                                     [--shape plain|rich] [--breakdown]
//
// --layout files (default): one file per route, the change rewrites one of them (a directory of manifests).
// --layout single: every route in one file, so each change re-reads and re-parses all of them.
// --shape plain (default): a route, its AIServiceBackend and its Backend per model.
// --shape rich: besides, an API key BackendSecurityPolicy with its Secret and two request costs (a token count and a
// CEL price) per route, and one token rate limit policy on the Gateway for all of them, so the sidecars resolve
// credentials and compile costs and the aggregator rebuilds usage-fed rules for every route on each change.
// --breakdown adds, per size, the median time of each stage: write → compile start (file events, debounce),
// compile (read, validate, compile, encode), compiled → head seen by the first subscriber (gzip, chunk and head
// puts, watch delivery), head seen → decoded (fetch, gunzip, checksum, parse; the slowest subscriber) and
// decoded → applied (materialise or rebuild the rules; the slowest subscriber).
// The controller runs in this process and each subscriber in a Worker of its own (its own thread and heap, as its
// own process would have), all on the same cores as nats-server: the figures include that contention.
import { parseArgs } from "node:util";
import { Registry } from "prom-client";
import { NatsServer } from "../test/support/nats_server.ts";
import { routeFile, routeYaml, writeAtomically } from "../test/support/control_plane.ts";
import { startController } from "../src/actors/controller/controller.ts";
import { startConfigSubscriber } from "../src/actors/config_subscriber.ts";
import { SidecarConfig } from "../src/control/bus/sidecar_config.ts";
import { aggregatorRuleSet } from "../src/control/bus/aggregator_rules.ts";
import { buildSnapshot } from "../src/control/snapshot.ts";
import { connectNats } from "../src/usage/nats_connection.ts";
import { createLogger, silentLogger } from "../src/observability/logger.ts";
import { ConfigStore } from "../src/control/bus/config_store.ts";
import { secretEnvName } from "../src/control/secrets.ts";
import { systemClock } from "../src/observability/clock.ts";
import { intFlag } from "./support/flags.ts";
import { RICH_GATEWAY, richRouteYaml } from "./support/config_shapes.ts";

/** What a subscriber worker says: it applied `revision` at `at` (epoch ms, comparable across threads), having seen
 * its head at `head` and had it fetched and checked at `decoded`. */
interface AppliedMessage {
  readonly name: string;
  readonly revision: number;
  readonly at: number;
  readonly head: number;
  readonly decoded: number;
}

const epochNow = () => performance.timeOrigin + performance.now();

/** The Worker side of `self` (this file type-checks against the main thread's globals). */
const workerScope = globalThis as unknown as {
  readonly name: string;
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent<WorkerStart>) => void) | null;
};

/** A Worker: one subscriber, as a sidecar ("sidecar-…") or an aggregator runs it. */
/** What a worker starts from: the NATS URL and the environment its sidecar resolves Secret keys from. */
interface WorkerStart {
  readonly url: string;
  readonly env: Readonly<Record<string, string>>;
}

async function subscriber(name: string, { url, env }: WorkerStart): Promise<void> {
  const log = silentLogger();
  const link = await connectNats({ servers: url, name });
  // A second watch of the head, beside the subscriber's own: when each head arrived.
  const heads = new Map<number, number>();
  const store = await ConfigStore.open(link.nc.jetstream(), await link.nc.jetstreamManager());
  void store.watch((e) => heads.set(e.head.revision, epochNow()), {
    signal: new AbortController().signal,
    onError: () => {},
  });
  const sidecar = name.startsWith("sidecar")
    ? new SidecarConfig({
      initial: buildSnapshot(0, { models: [] }),
      env,
      clock: systemClock,
      log,
      secretsPollMs: 0,
    })
    : undefined;
  startConfigSubscriber({
    connect: () => Promise.resolve(link),
    apply: (snapshot, applied) => {
      const decoded = epochNow();
      if (sidecar) sidecar.apply(snapshot, applied);
      else aggregatorRuleSet(snapshot);
      const at = epochNow();
      const message: AppliedMessage = {
        name,
        revision: applied.revision,
        at,
        head: heads.get(applied.revision) ?? decoded,
        decoded,
      };
      workerScope.postMessage(message);
    },
    log,
    registry: new Registry(),
  });
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      routes: { type: "string", default: "10,2000" },
      changes: { type: "string", default: "30" },
      layout: { type: "string", default: "files" },
      shape: { type: "string", default: "plain" },
      debounce: { type: "string", default: "50" },
      breakdown: { type: "boolean", default: false },
    },
  });
  const routeCounts = values.routes.split(",").map((n) => intFlag("routes", n, 1));
  const changes = intFlag("changes", values.changes, 1);
  const debounceMs = intFlag("debounce", values.debounce, 0);
  const layout = values.layout;
  if (layout !== "files" && layout !== "single") throw new Error(`--layout must be files or single, got "${layout}"`);
  const shape = values.shape;
  if (shape !== "plain" && shape !== "rich") throw new Error(`--shape must be plain or rich, got "${shape}"`);
  const yamlOf = (model: string, port: number) =>
    shape === "rich" ? richRouteYaml(model, port) : routeYaml({ model, port });

  const writeAll = async (dir: string, n: number, port: (i: number) => number) => {
    if (layout === "single") {
      const docs = Array.from({ length: n }, (_, i) => yamlOf(`model-${i}`, port(i)));
      await writeAtomically(`${dir}/routes.yaml`, docs.join("---\n"));
      return;
    }
    for (let i = 0; i < n; i++) {
      await Deno.writeTextFile(routeFile(dir, `model-${i}`), yamlOf(`model-${i}`, port(i)));
    }
  };

  const run = async (routes: number) => {
    await using ns = await NatsServer.start();
    const dir = await Deno.makeTempDir({ prefix: "tollgate-config-bench-" });
    const link = await connectNats({ servers: ns.url, name: "controller" });
    const names = ["sidecar-1", "sidecar-2", "aggregator-1"];
    const workers = names.map((name) => new Worker(import.meta.url, { type: "module", name }));
    const applied = new Map<number, Map<string, AppliedMessage>>();
    const waiters: (() => void)[] = [];
    for (const w of workers) {
      w.onmessage = (e: MessageEvent<AppliedMessage>) => {
        const m = e.data;
        const byName = applied.get(m.revision) ?? new Map<string, AppliedMessage>();
        byName.set(m.name, m);
        applied.set(m.revision, byName);
        for (const wake of waiters.splice(0)) wake();
      };
      // The API keys of the rich shape, as each sidecar's pod would have them.
      const env = shape === "rich"
        ? Object.fromEntries(
          Array.from(
            { length: routes },
            (_, i) => [secretEnvName({ namespace: "default", name: `model-${i}-key`, key: "apiKey" }), "sk-bench"],
          ),
        )
        : {};
      const start: WorkerStart = { url: ns.url, env };
      w.postMessage(start);
    }
    const allApplied = async (revision: number): Promise<AppliedMessage[]> => {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const byName = applied.get(revision);
        if (byName?.size === names.length) return [...byName.values()];
        if (Date.now() > deadline) throw new Error(`Revision ${revision} not applied everywhere in time`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 1000);
        });
      }
    };
    try {
      await writeAll(dir, routes, () => 10_000);
      if (shape === "rich") await Deno.writeTextFile(`${dir}/gateway.yaml`, RICH_GATEWAY);
      // When the controller finished each compile, and how long it took (its "Compiled the resources" line).
      const compiles: { at: number; ms: number }[] = [];
      const log = createLogger({
        level: "info",
        destination: {
          write: (line: string) => {
            const at = epochNow();
            const entry = JSON.parse(line) as { msg?: string; ms?: number };
            if (entry.msg === "Compiled the resources") compiles.push({ at, ms: entry.ms ?? 0 });
          },
        },
      });
      const controller = await startController({
        link,
        id: "bench",
        paths: [dir],
        compile: { extProcTarget: "unix:///run/tollgate/extproc.sock", rateLimitDomain: "ai-gateway" },
        log,
        registry: new Registry(),
        debounceMs,
      });
      await allApplied(1);
      const ms: number[] = [];
      const stages: Stages = { event: [], compile: [], publish: [], fetch: [], apply: [] };
      for (let k = 1; k <= changes; k++) {
        const changed = k % routes;
        const compiled = compiles.length;
        const started = epochNow();
        if (layout === "single") await writeAll(dir, routes, (i) => i === changed ? 10_000 + k : 10_000);
        else {
          await writeAtomically(
            routeFile(dir, `model-${changed}`),
            yamlOf(`model-${changed}`, 10_000 + k),
          );
        }
        const done = await allApplied(k + 1);
        ms.push(Math.max(...done.map((m) => m.at)) - started);
        const compile = compiles.at(-1)!;
        if (compiles.length > compiled) {
          stages.event.push(compile.at - compile.ms - started);
          stages.compile.push(compile.ms);
          stages.publish.push(Math.min(...done.map((m) => m.head)) - compile.at);
        }
        stages.fetch.push(Math.max(...done.map((m) => m.decoded - m.head)));
        stages.apply.push(Math.max(...done.map((m) => m.at - m.decoded)));
        if (Deno.env.get("CONFIG_BENCH_TRACE")) {
          const f = (n: number | undefined) => (n ?? NaN).toFixed(0);
          console.error(
            `change ${k}: total ${f(ms.at(-1))} event ${f(stages.event.at(-1))} compile ${f(stages.compile.at(-1))} ` +
              `publish ${f(stages.publish.at(-1))} ` +
              done.map((m) =>
                `${m.name} head ${f(m.head - started)} fetch ${f(m.decoded - m.head)} apply ${f(m.at - m.decoded)}`
              )
                .join(" | "),
          );
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      await controller.stop();
      return { ms, stages };
    } finally {
      for (const w of workers) w.terminate();
      await link.close();
      await Deno.remove(dir, { recursive: true });
    }
  };

  console.log(
    `config propagation: ${changes} changes per size, layout ${layout}, shape ${shape}, debounce ${debounceMs} ms, ` +
      `subscribers: 2 sidecars + 1 aggregator (one Worker each)`,
  );
  console.log("| routes | p50 ms | p99 ms | max ms | min ms |");
  console.log("| -----: | -----: | -----: | -----: | -----: |");
  const breakdowns: string[] = [];
  for (const routes of routeCounts) {
    const { ms, stages } = await run(routes);
    const sorted = ms.sort((a, b) => a - b);
    const median = (list: number[]) => list.length === 0 ? NaN : percentile([...list].sort((a, b) => a - b), 50);
    breakdowns.push(
      `| ${routes.toLocaleString("en")} | ${
        [stages.event, stages.compile, stages.publish, stages.fetch, stages.apply].map((l) => median(l).toFixed(0))
          .join(" | ")
      } |`,
    );
    const f = (n: number) => n.toFixed(0);
    console.log(
      `| ${routes.toLocaleString("en")} | ${f(percentile(sorted, 50))} | ${f(percentile(sorted, 99))} | ${
        f(sorted.at(-1)!)
      } | ${f(sorted[0]!)} |`,
    );
  }
  if (values.breakdown) {
    console.log("\nmedian ms per stage (fetch and apply: the slowest subscriber of each change)\n");
    console.log("| routes | event + debounce | compile | gzip + puts + watch | fetch + check + parse | apply |");
    console.log("| -----: | ---------------: | ------: | ------------------: | --------------------: | ----: |");
    for (const line of breakdowns) console.log(line);
  }
}

interface Stages {
  readonly event: number[];
  readonly compile: number[];
  readonly publish: number[];
  readonly fetch: number[];
  readonly apply: number[];
}

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  workerScope.onmessage = (e) => void subscriber(workerScope.name, e.data);
} else {
  await main();
}
