// `tollgate controller` and `tollgate extproc --nats` as an operator runs them: separate processes, a real
// nats-server, and a leader killed with SIGKILL.
import { assert, assertEquals } from "./support/assert.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { runTollgate, type Spawned, spawnTollgate } from "./support/process.ts";
import { writeRoute } from "./support/control_plane.ts";

async function readyz(admin: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${admin}/readyz`);
  return { status: res.status, body: await res.json() };
}

function controller(url: string, dir: string, id: string): Spawned {
  return spawnTollgate([
    "controller",
    "--watch",
    dir,
    "--nats",
    url,
    "--id",
    id,
    "--lease-ttl",
    "2",
    "--admin",
    "127.0.0.1:0",
  ]);
}

Deno.test("tollgate controller needs --nats and a source", async () => {
  const noNats = await runTollgate(["controller", "--watch", "/tmp"]);
  assertEquals(noNats.code, 2);
  assert(noNats.stderr.includes("--nats is required"), noNats.stderr);
  const noSource = await runTollgate(["controller", "--nats", "nats://127.0.0.1:1"]);
  assertEquals(noSource.code, 2);
  assert(noSource.stderr.includes("--watch"), noSource.stderr);
});

Deno.test("two controllers and a sidecar: the sidecar follows the files, and the standby takes over when the leader is killed", async () => {
  await using ns = await NatsServer.start();
  const dir = await Deno.makeTempDir({ prefix: "tollgate-controller-cli-" });
  const cache = await Deno.makeTempDir({ prefix: "tollgate-controller-cli-cache-" });
  try {
    await writeRoute(dir, { model: "model-a", port: 9 });
    await using a = controller(ns.url, dir, "controller-a");
    await a.waitForLog("Published config");
    await using b = controller(ns.url, dir, "controller-b");
    await b.waitForLog("Controller standing by");

    await using sidecar = spawnTollgate([
      "extproc",
      "--listen",
      "127.0.0.1:0",
      "--admin",
      "127.0.0.1:0",
      "--nats",
      ns.url,
      "--config-cache",
      `${cache}/config.snapshot`,
      "--secrets-dir",
      `${dir}/secrets`,
      "--usage-spool",
      `${cache}/usage.spool`,
    ]);
    const listening = await sidecar.waitForLog("ExtProc server listening");
    const admin = String(listening.admin);
    const first = await pollUntil("the sidecar to apply revision 1", async () => {
      const r = await readyz(admin);
      return r.status === 200 && r.body.configRevision === 1 ? r.body : undefined;
    }, { timeoutMs: 15_000 });
    assertEquals(first.configSource, "nats");

    a.child.kill("SIGKILL");
    await a.child.status;
    await writeRoute(dir, { model: "model-b", port: 9 });
    const leading = await b.waitForLog("Controller leading");
    assertEquals(leading.id, "controller-b");
    await pollUntil("the sidecar to apply revision 2", async () => {
      const r = await readyz(admin);
      return r.body.configRevision === 2 || undefined;
    }, { timeoutMs: 20_000 });
    const metrics = await (await fetch(`http://${admin}/metrics`)).text();
    assert(
      /tollgate_config_revision 2\b/.test(metrics),
      metrics.split("\n").filter((l) => l.includes("config")).join("\n"),
    );
    const bStatus = await readyz(String((await b.waitForLog("Controller started")).admin));
    assertEquals([bStatus.body.role, bStatus.body.publishedRevision], ["leader", 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
});
