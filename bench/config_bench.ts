// Config propagation: the time from a change to a resource file until every subscriber has applied it, through the
// whole control plane — the controller's directory source (debounce), compiler (read, validate, compile, encode),
// publisher (gzip, chunks, head) on a real nats-server, and each subscriber's watch, fetch, checks and apply (two
// sidecars that materialise their snapshot with local secrets, one aggregator that rebuilds its rules).
//
//   deno run -A bench/config_bench.ts [--routes 10,2000] [--changes 30] [--layout files|single] [--debounce 50]
//
// --layout files (default): one file per route, the change rewrites one of them (a directory of manifests).
// --layout single: every route in one file, so each change re-reads and re-parses all of them.
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
import { silentLogger } from "../src/observability/logger.ts";
import { systemClock } from "../src/observability/clock.ts";
import { intFlag } from "./support/flags.ts";

/** What a subscriber worker says: it applied `revision` at `at` (epoch ms, comparable across threads). */
interface AppliedMessage {
  readonly name: string;
  readonly revision: number;
  readonly at: number;
}

const epochNow = () => performance.timeOrigin + performance.now();

/** The Worker side of `self` (this file type-checks against the main thread's globals). */
const workerScope = globalThis as unknown as {
  readonly name: string;
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent<{ url: string }>) => void) | null;
};

/** A Worker: one subscriber, as a sidecar ("sidecar-…") or an aggregator runs it. */
async function subscriber(name: string, url: string): Promise<void> {
  const log = silentLogger();
  const link = await connectNats({ servers: url, name });
  const sidecar = name.startsWith("sidecar")
    ? new SidecarConfig({
      initial: buildSnapshot(0, { models: [] }),
      env: {},
      clock: systemClock,
      log,
      secretsPollMs: 0,
    })
    : undefined;
  startConfigSubscriber({
    connect: () => Promise.resolve(link),
    apply: (snapshot, applied) => {
      if (sidecar) sidecar.apply(snapshot, applied);
      else aggregatorRuleSet(snapshot);
      const message: AppliedMessage = { name, revision: applied.revision, at: epochNow() };
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
      debounce: { type: "string", default: "50" },
    },
  });
  const routeCounts = values.routes.split(",").map((n) => intFlag("routes", n, 1));
  const changes = intFlag("changes", values.changes, 1);
  const debounceMs = intFlag("debounce", values.debounce, 0);
  const layout = values.layout;
  if (layout !== "files" && layout !== "single") throw new Error(`--layout must be files or single, got "${layout}"`);

  const writeAll = async (dir: string, n: number, port: (i: number) => number) => {
    if (layout === "single") {
      const docs = Array.from({ length: n }, (_, i) => routeYaml({ model: `model-${i}`, port: port(i) }));
      await writeAtomically(`${dir}/routes.yaml`, docs.join("---\n"));
      return;
    }
    for (let i = 0; i < n; i++) {
      await Deno.writeTextFile(routeFile(dir, `model-${i}`), routeYaml({ model: `model-${i}`, port: port(i) }));
    }
  };

  const run = async (routes: number) => {
    await using ns = await NatsServer.start();
    const dir = await Deno.makeTempDir({ prefix: "tollgate-config-bench-" });
    const link = await connectNats({ servers: ns.url, name: "controller" });
    const names = ["sidecar-1", "sidecar-2", "aggregator-1"];
    const workers = names.map((name) => new Worker(import.meta.url, { type: "module", name }));
    const applied = new Map<number, Map<string, number>>();
    const waiters: (() => void)[] = [];
    for (const w of workers) {
      w.onmessage = (e: MessageEvent<AppliedMessage>) => {
        const m = e.data;
        const byName = applied.get(m.revision) ?? new Map<string, number>();
        byName.set(m.name, m.at);
        applied.set(m.revision, byName);
        for (const wake of waiters.splice(0)) wake();
      };
      w.postMessage({ url: ns.url });
    }
    const allApplied = async (revision: number): Promise<number> => {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const byName = applied.get(revision);
        if (byName?.size === names.length) return Math.max(...byName.values());
        if (Date.now() > deadline) throw new Error(`Revision ${revision} not applied everywhere in time`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 1000);
        });
      }
    };
    try {
      await writeAll(dir, routes, () => 10_000);
      const controller = await startController({
        link,
        id: "bench",
        paths: [dir],
        compile: { extProcTarget: "unix:///run/tollgate/extproc.sock", rateLimitDomain: "ai-gateway" },
        log: silentLogger(),
        registry: new Registry(),
        debounceMs,
      });
      await allApplied(1);
      const ms: number[] = [];
      for (let k = 1; k <= changes; k++) {
        const changed = k % routes;
        const started = epochNow();
        if (layout === "single") await writeAll(dir, routes, (i) => i === changed ? 10_000 + k : 10_000);
        else {
          await writeAtomically(
            routeFile(dir, `model-${changed}`),
            routeYaml({ model: `model-${changed}`, port: 10_000 + k }),
          );
        }
        ms.push(await allApplied(k + 1) - started);
        await new Promise((r) => setTimeout(r, 200));
      }
      await controller.stop();
      return ms;
    } finally {
      for (const w of workers) w.terminate();
      await link.close();
      await Deno.remove(dir, { recursive: true });
    }
  };

  console.log(
    `config propagation: ${changes} changes per size, layout ${layout}, debounce ${debounceMs} ms, ` +
      `subscribers: 2 sidecars + 1 aggregator (one Worker each)`,
  );
  console.log("| routes | p50 ms | p99 ms | max ms | min ms |");
  console.log("| -----: | -----: | -----: | -----: | -----: |");
  for (const routes of routeCounts) {
    const sorted = (await run(routes)).sort((a, b) => a - b);
    const f = (n: number) => n.toFixed(0);
    console.log(
      `| ${routes.toLocaleString("en")} | ${f(percentile(sorted, 50))} | ${f(percentile(sorted, 99))} | ${
        f(sorted.at(-1)!)
      } | ${f(sorted[0]!)} |`,
    );
  }
}

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  workerScope.onmessage = (e) => void subscriber(workerScope.name, e.data.url);
} else {
  await main();
}
