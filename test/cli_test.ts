import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { runTollgate, spawnTollgate } from "./support/process.ts";
import { ExtProcTestClient } from "./support/extproc_client.ts";
import { bodyRequest, headersRequest } from "../src/protocol/ext_proc_request.ts";

const SUBCOMMANDS = ["extproc", "aggregator", "controller", "run", "validate", "render", "version"];

Deno.test("every subcommand prints its help with --help and exits 0", async () => {
  for (const c of SUBCOMMANDS) {
    const r = await runTollgate([c, "--help"]);
    assertEquals(r.code, 0, `${c} --help: ${r.stderr}`);
    assertMatch(r.stdout, new RegExp(`^Usage: tollgate ${c}`));
  }
});

Deno.test("unknown flags and bad values exit 2 with a one-line reason", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["extproc", "--bogus"], /^tollgate extproc: Unknown option '--bogus'\n$/],
    [
      ["extproc", "--grace", "soon"],
      /^tollgate extproc: --grace must be a non-negative number of seconds, got "soon"\n$/,
    ],
    [["extproc", "--listen", "nowhere"], /^tollgate extproc: --listen: Invalid listen address "nowhere"/],
    [["extproc", "--max-body-bytes=-1"], /^tollgate extproc: --max-body-bytes must be a positive integer/],
    [["run", "--log-level", "loud"], /^tollgate run: --log-level must be/],
    [["frobnicate"], /^tollgate: unknown command "frobnicate"/],
    [["validate"], /^tollgate validate: give at least one FILE or DIR\n$/],
    [["render", "nginx"], /^tollgate render: unknown target "nginx"; use "envoy"\n$/],
  ];
  for (const [args, re] of cases) {
    const r = await runTollgate(args);
    assertEquals(r.code, 2, args.join(" "));
    assertMatch(r.stderr, re);
    assertEquals(r.stderr.trimEnd().split("\n").length, 1);
  }
});

Deno.test("every role that needs NATS says so plainly when --nats is missing, and exits 2", async () => {
  for (const c of ["controller"]) {
    const r = await runTollgate([c, "--watch", "."]);
    assertEquals(r.code, 2, r.stderr);
    assert(r.stderr.includes("--nats"), r.stderr);
  }
});

Deno.test("tollgate version prints the version and the Deno it runs on", async () => {
  const r = await runTollgate(["version"]);
  assertEquals(r.code, 0);
  assertMatch(r.stdout, /^tollgate \d+\.\d+\.\d+ \(deno \d+\.\d+\.\d+/);
});

async function startSidecar(extra: string[] = []) {
  const p = spawnTollgate(["extproc", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", ...extra]);
  const ready = await p.waitForLog("ExtProc server listening");
  return { p, address: String(ready.address), admin: String(ready.admin) };
}

Deno.test("the sidecar serves /metrics, /healthz and /readyz on its admin port", async () => {
  const { p, admin } = await startSidecar();
  await using _ = p;
  const ready = await fetch(`http://${admin}/readyz`);
  assertEquals([ready.status, await ready.json()], [200, { ready: true, configRevision: 0 }]);
  const health = await fetch(`http://${admin}/healthz`);
  assertEquals([health.status, await health.text()], [200, "ok\n"]);
  const metrics = await fetch(`http://${admin}/metrics`);
  const text = await metrics.text();
  assertMatch(text, /# TYPE tollgate_extproc_phase_duration_seconds histogram/);
  assertMatch(text, /# TYPE tollgate_extproc_streams_active gauge/);
  assertEquals(await fetch(`http://${admin}/nope`).then(async (r) => (await r.body?.cancel(), r.status)), 404);
});

Deno.test("on SIGTERM the sidecar stops accepting, lets an open stream finish, then exits 0", async () => {
  const { p, address, admin } = await startSidecar(["--grace", "30"]);
  await using _ = p;
  const client = new ExtProcTestClient(address);
  const s = client.open();
  await s.exchange(headersRequest("requestHeaders", { ":method": "POST", ":path": "/v1/chat/completions" }));
  p.child.kill("SIGTERM");
  await p.waitForLog("Draining");
  const ready = await fetch(`http://${admin}/readyz`);
  assertEquals(ready.status, 503);
  await ready.body?.cancel();
  // The open stream still completes its lifecycle.
  const routed = await s.exchange(bodyRequest("requestBody", `{"model":"tollgate-echo","messages":[]}`));
  assertEquals(routed.response?.$case, "requestBody");
  await s.exchange(headersRequest("responseHeaders", { ":status": "200" }));
  await s.exchange(bodyRequest("responseBody", "{}"));
  assertEquals((await s.ended).code, 0);
  // A new connection is refused once draining.
  const late = new ExtProcTestClient(address).open();
  late.write(headersRequest("requestHeaders", { ":method": "GET", ":path": "/v1/models" }, true));
  assert((await late.ended).code !== 0);
  assertEquals((await p.child.status).code, 0);
  const stopped = await p.waitForLog("Stopped");
  assertEquals(stopped.forced, 0);
  client.close();
});

Deno.test("on SIGTERM a stream still open after the grace period is cancelled and the sidecar exits 0", async () => {
  const { p, address } = await startSidecar(["--grace", "0.3"]);
  await using _ = p;
  const client = new ExtProcTestClient(address);
  const s = client.open();
  await s.exchange(headersRequest("requestHeaders", { ":method": "POST", ":path": "/v1/chat/completions" }));
  p.child.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
  assertEquals((await p.waitForLog("Stopped")).forced, 1);
  assert((await s.ended).code !== 0);
  client.close();
});

Deno.test("the sidecar listens on a Unix socket by default path it creates, with owner and group access only", async () => {
  const dir = await Deno.makeTempDir();
  const sock = `${dir}/nested/extproc.sock`;
  const p = spawnTollgate(["extproc", "--listen", `unix://${sock}`, "--admin", "off"]);
  await using _ = p;
  const ready = await p.waitForLog("ExtProc server listening");
  assertEquals(ready.address, `unix://${sock}`);
  assertEquals((await Deno.stat(sock)).mode! & 0o777, 0o660);
  const client = new ExtProcTestClient(`unix://${sock}`);
  const s = client.open();
  const r = await s.exchange(headersRequest("requestHeaders", { ":method": "GET", ":path": "/v1/models" }, true));
  assertEquals(r.response?.$case, "immediateResponse");
  client.close();
  p.child.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tollgate validate reports OK with a summary for valid resources", async () => {
  const r = await runTollgate(["validate", "testdata/resources/token_ratelimit"]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stdout, /^OK: 1 route\(s\), 1 cluster\(s\), 1 backend\(s\), 1 model\(s\), \d+ rate-limit rule\(s\)/);
});

Deno.test("tollgate validate prints every error with file, document, resource and path, and exits 1", async () => {
  const r = await runTollgate([
    "validate",
    "testdata/resources/invalid/schema.yaml",
    "testdata/resources/invalid/references.yaml",
  ]);
  assertEquals(r.code, 1);
  const lines = r.stderr.trimEnd().split("\n");
  assertEquals(lines.at(-1), `${lines.length - 1} error(s)`);
  assert(
    lines.includes(
      'testdata/resources/invalid/schema.yaml#0:16 AIGatewayRoute default/typos spec.rules[0].backendRefs[0].prioirty: Unknown field "prioirty"',
    ),
    r.stderr,
  );
  assert(
    lines.includes(
      'testdata/resources/invalid/references.yaml#1 AIServiceBackend default/present spec.backendRef.name: Backend "default/missing-backend" is not defined',
    ),
    r.stderr,
  );
});

Deno.test("tollgate extproc --config serves the configured models and keeps them when a bad change is written", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/gateway.yaml`;
  await Deno.copyFile("testdata/resources/openai_fallback/openai_fallback.yaml", file);
  const p = spawnTollgate(
    ["extproc", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--config", file],
    { PRIMARY_PORT: "18001", SECONDARY_PORT: "18002" },
  );
  await using _ = p;
  const ready = await p.waitForLog("ExtProc server listening");
  assertEquals(ready.models, ["gpt-4o-mini"]);
  const client = new ExtProcTestClient(String(ready.address));
  const models = async () => {
    const s = client.open();
    const r = await s.exchange(headersRequest("requestHeaders", { ":method": "GET", ":path": "/v1/models" }, true));
    assert(r.response?.$case === "immediateResponse");
    return JSON.parse(new TextDecoder().decode(r.response.value.body)).data.map((m: { id: string }) => m.id);
  };
  assertEquals(await models(), ["gpt-4o-mini"]);
  await Deno.writeTextFile(
    file,
    "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nspec: {bogus: 1}\n",
  );
  await p.waitForLog("Rejected a configuration change; keeping the running config");
  assertEquals(await models(), ["gpt-4o-mini"]);
  const changed = (await Deno.readTextFile("testdata/resources/openai_fallback/openai_fallback.yaml"))
    .replace("value: gpt-4o-mini", "value: gpt-4.1");
  await Deno.writeTextFile(file, changed);
  await p.waitForLog("Applied a configuration change");
  assertEquals(await models(), ["gpt-4.1"]);
  client.close();
  await Deno.remove(dir, { recursive: true });
});
