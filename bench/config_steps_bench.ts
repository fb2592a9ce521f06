// Where config propagation spends its time, step by step, in one process and without NATS: the controller's
// compile of a directory in which one route file changed (read + parse, validate, compile, costs, encode + hash,
// gzip), then what each subscriber does with the bytes (gunzip, checksum + JSON.parse, envelope, materialise, the
// aggregator's rules). Each step is timed alone, `--rounds` times, on the same directory the config bench uses.
//
//   deno run -A bench/config_steps_bench.ts [--routes 2000] [--rounds 15] [--shape plain|rich]
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { routeFile, routeYaml, writeAtomically } from "../test/support/control_plane.ts";
import { type CompilerInput, compilerMemo, compileSources } from "../src/actors/controller/compiler.ts";
import { decodeSnapshot, type EncodedSnapshot } from "../src/control/bus/config_snapshot.ts";
import { gunzip, gzip } from "../src/control/bus/config_store.ts";
import { SidecarConfig } from "../src/control/bus/sidecar_config.ts";
import { aggregatorRuleSet } from "../src/control/bus/aggregator_rules.ts";
import { buildSnapshot } from "../src/control/snapshot.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { systemClock } from "../src/observability/clock.ts";
import { intFlag } from "./support/flags.ts";
import { RICH_GATEWAY, richRouteYaml } from "./support/config_shapes.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    routes: { type: "string", default: "2000" },
    rounds: { type: "string", default: "15" },
    shape: { type: "string", default: "plain" },
  },
});
const shape = values.shape;
if (shape !== "plain" && shape !== "rich") throw new Error(`--shape must be plain or rich, got "${shape}"`);
const yamlOf = (model: string, port: number) =>
  shape === "rich" ? richRouteYaml(model, port) : routeYaml({ model, port });
const routes = intFlag("routes", values.routes, 1);
const rounds = intFlag("rounds", values.rounds, 1);

const dir = await Deno.makeTempDir({ prefix: "tollgate-config-steps-" });
const times = new Map<string, number[]>();
const time = async <T>(step: string, fn: () => T | Promise<T>): Promise<T> => {
  const started = performance.now();
  const out = await fn();
  const list = times.get(step) ?? [];
  list.push(performance.now() - started);
  times.set(step, list);
  return out;
};

try {
  for (let i = 0; i < routes; i++) {
    await Deno.writeTextFile(routeFile(dir, `model-${i}`), yamlOf(`model-${i}`, 10_000));
  }
  if (shape === "rich") await Deno.writeTextFile(`${dir}/gateway.yaml`, RICH_GATEWAY);
  const input: CompilerInput = {
    paths: [dir],
    env: {},
    cache: new Map(),
    memo: compilerMemo(),
    compile: { extProcTarget: "unix:///run/tollgate/extproc.sock", rateLimitDomain: "ai-gateway" },
  };
  const first = await compileSources(input);
  if (!first.ok) throw new Error("The bench's resources do not compile");
  const sidecar = new SidecarConfig({
    initial: buildSnapshot(0, { models: [] }),
    env: {},
    clock: systemClock,
    log: silentLogger(),
    secretsPollMs: 0,
  });
  sidecar.apply(first.encoded.snapshot, { revision: 1 });
  for (let k = 1; k <= rounds; k++) {
    const changed = k % routes;
    await writeAtomically(
      routeFile(dir, `model-${changed}`),
      yamlOf(`model-${changed}`, 10_000 + k),
    );
    // As the controller's directory source reports it: the one file the change rewrote.
    const files = new Set([resolve(routeFile(dir, `model-${changed}`))]);
    const out = await time(
      "controller: compile (all steps)",
      () => compileSources({ ...input, changed: files }, { timings: record }),
    );
    if (!out.ok) throw new Error("A change did not compile");
    const packed = await time("controller: gzip", () => gzip(out.encoded.bytes));
    const bytes = await time("subscriber: gunzip", () => gunzip(packed));
    const decoded: EncodedSnapshot = await time(
      "subscriber: sha256 + JSON.parse + envelope",
      () => decodeSnapshot(bytes, out.encoded.hash),
    );
    await time("sidecar: materialise", () => sidecar.apply(decoded.snapshot, { revision: k + 1 }));
    await time("aggregator: rules", () => aggregatorRuleSet(decoded.snapshot));
  }
  sidecar[Symbol.dispose]();
  const first2 = first.encoded.bytes.length;
  console.log(
    `config steps: ${routes} routes (${shape}), ${rounds} rounds, snapshot ${(first2 / 1e6).toFixed(2)} MB canonical`,
  );
  console.log("| step | p50 ms | max ms |");
  console.log("| ---- | -----: | -----: |");
  for (const [step, list] of times) {
    const sorted = [...list].sort((a, b) => a - b);
    const p50 = sorted[Math.floor((sorted.length - 1) / 2)]!;
    console.log(`| ${step} | ${p50.toFixed(1)} | ${sorted.at(-1)!.toFixed(1)} |`);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

function record(step: string, ms: number): void {
  const list = times.get(`  compile: ${step}`) ?? [];
  list.push(ms);
  times.set(`  compile: ${step}`, list);
}
