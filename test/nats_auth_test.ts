// NATS authentication and TLS for every role that talks to NATS, against a real nats-server configured for each
// mode: user and password, token, nkey, TLS (server certificate checked against --nats-ca) and mutual TLS. For each:
// `tollgate aggregator` connects and becomes ready, while with wrong credentials it exits 1 with one line that says
// why; `tollgate extproc` with wrong credentials keeps serving, says so in its log and spools the usage of the
// requests it serves, and once restarted with the right credentials replays that usage and publishes new usage, so
// both events arrive in the stream. Requests reach the sidecar through the edge (the Envoy stand-in), from a fake
// upstream. The secrets given in files never show up in anything the processes printed.
import { connect, type ConnectionOptions, nkeyAuthenticator, nkeys } from "nats";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { NatsServer, type NatsServerOptions, pollUntil } from "./support/nats_server.ts";
import { makeTestPki, type TestPki } from "./support/tls_certs.ts";
import { runTollgate, type Spawned, spawnTollgate } from "./support/process.ts";
import { startFakeUpstream } from "./support/fake_upstream.ts";
import { silentLogger } from "../src/observability/logger.ts";
import { systemClock } from "../src/observability/clock.ts";
import { loadGatewayConfig } from "../src/control/gateway_config.ts";
import { EdgeServer } from "../src/edge/edge_server.ts";
import { listenEdge } from "../src/edge/listen.ts";
import { USAGE_STREAM } from "../src/usage/nats_connection.ts";

const MODEL = "rate-limit-funky-model";
const EXAMPLE = new URL("../testdata/resources/token_ratelimit/token_ratelimit.yaml", import.meta.url).pathname;
const PASSWORD = "nats-pass-canary-5b0e7d";
const TOKEN = "nats-token-canary-93c1aa";

/** One way to authenticate: the server's side, the flags of the roles, and the same flags gone wrong. */
interface AuthMode {
  readonly server: NatsServerOptions;
  readonly flags: readonly string[];
  readonly wrongFlags: readonly string[];
  /** What the aggregator's one-line error must say. */
  readonly refusal: RegExp;
  /** Options for the test's own nats.js connection (to read the stream). */
  readonly client: Partial<ConnectionOptions>;
  /** Secret text that must never be printed. */
  readonly secrets: readonly string[];
}

async function secretFile(dir: string, name: string, text: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text + "\n", { mode: 0o600 });
  return path;
}

async function authModes(dir: string, pki: TestPki): Promise<Record<string, AuthMode>> {
  const user = nkeys.createUser();
  const stranger = nkeys.createUser();
  const seed = new TextDecoder().decode(user.getSeed());
  const strangerSeed = new TextDecoder().decode(stranger.getSeed());
  const authViolation =
    /^tollgate aggregator: Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: 'Authorization Violation'$/;
  return {
    "user and password": {
      server: { users: [{ user: "tollgate", password: PASSWORD }] },
      flags: ["--nats-user", "tollgate", "--nats-password-file", await secretFile(dir, "password", PASSWORD)],
      wrongFlags: ["--nats-user", "tollgate", "--nats-password-file", await secretFile(dir, "wrong-password", "nope")],
      refusal: authViolation,
      client: { user: "tollgate", pass: PASSWORD },
      secrets: [PASSWORD],
    },
    "token": {
      server: { token: TOKEN },
      flags: ["--nats-token-file", await secretFile(dir, "token", TOKEN)],
      wrongFlags: ["--nats-token-file", await secretFile(dir, "wrong-token", "not-the-token")],
      refusal: authViolation,
      client: { token: TOKEN },
      secrets: [TOKEN],
    },
    "nkey": {
      server: { users: [{ nkey: user.getPublicKey() }] },
      flags: ["--nats-nkey-file", await secretFile(dir, "user.nk", seed)],
      wrongFlags: ["--nats-nkey-file", await secretFile(dir, "stranger.nk", strangerSeed)],
      refusal: authViolation,
      client: { authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) },
      secrets: [seed],
    },
    "TLS": {
      server: { tls: { certFile: pki.server.cert, keyFile: pki.server.key } },
      flags: ["--nats-ca", pki.ca],
      wrongFlags: ["--nats-ca", pki.otherCa],
      refusal:
        /^tollgate aggregator: Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: the server's TLS certificate did not verify \(.+\)$/,
      client: { tls: { caFile: pki.ca } },
      secrets: [],
    },
    "mutual TLS": {
      server: { tls: { certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca, verify: true } },
      flags: ["--nats-ca", pki.ca, "--nats-cert", pki.client.cert, "--nats-key", pki.client.key],
      // A certificate from another CA: the server refuses it.
      wrongFlags: ["--nats-ca", pki.ca, "--nats-cert", pki.otherClient.cert, "--nats-key", pki.otherClient.key],
      refusal:
        /^tollgate aggregator: Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: the server refused the client's TLS certificate \(.+\)$/,
      client: { tls: { caFile: pki.ca, certFile: pki.client.cert, keyFile: pki.client.key } },
      secrets: [Deno.readTextFileSync(pki.client.key).split("\n")[1]!],
    },
  };
}

/** A gateway file for the sidecar whose only backend is `upstreamPort`. */
async function gatewayFile(dir: string, upstreamPort: number): Promise<string> {
  const path = `${dir}/gateway.yaml`;
  await Deno.writeTextFile(path, (await Deno.readTextFile(EXAMPLE)).replace("port: 18080", `port: ${upstreamPort}`));
  return path;
}

/** One chat request through an edge in front of the sidecar at `extproc`; resolves with the HTTP status. */
async function chatThroughEdge(gateway: string, extproc: string): Promise<number> {
  const loaded = await loadGatewayConfig([gateway], { extProcTarget: extproc });
  assert(loaded.ok, "the gateway file loads");
  const edge = new EdgeServer(loaded.edge, { clock: systemClock, logger: silentLogger() });
  const http = await listenEdge(edge, "127.0.0.1", 0);
  try {
    const res = await fetch(`http://127.0.0.1:${http.port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-user-id": "alice" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hello" }] }),
    });
    await res.body?.cancel();
    return res.status;
  } finally {
    await http.shutdown();
    edge.close();
  }
}

function sidecar(gateway: string, spool: string, natsUrl: string, flags: readonly string[]): Spawned {
  return spawnTollgate([
    "extproc",
    "--listen",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--config",
    gateway,
    "--nats",
    natsUrl,
    ...flags,
    "--usage-spool",
    spool,
    "--log-level",
    "debug",
  ]);
}

async function metric(admin: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

async function proveAuthMode(name: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-nats-auth-" });
  await using pki = await makeTestPki();
  await using upstream = await startFakeUpstream((r) =>
    Response.json({
      id: "c",
      object: "chat.completion",
      created: 1,
      model: JSON.parse(r.body).model,
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
    })
  );
  const printed: string[] = [];
  try {
    const mode = (await authModes(dir, pki))[name]!;
    await using ns = await NatsServer.start({ jetstream: true, ...mode.server });
    const gateway = await gatewayFile(dir, upstream.port);

    // The aggregator connects with the right credentials, creates the usage stream and becomes ready.
    await using aggregator = spawnTollgate([
      "aggregator",
      "--nats",
      ns.url,
      ...mode.flags,
      "--listen",
      "127.0.0.1:0",
      "--admin",
      "127.0.0.1:0",
      "--rules",
      "testdata/ratelimit/per_ip.yaml",
      "--replica",
      "auth-1",
      "--config-cache",
      "off",
    ]);
    const listening = await aggregator.waitForLog("Rate limit service listening");
    await pollUntil("the aggregator to be ready", async () => {
      const r = await fetch(`http://${listening.admin}/readyz`);
      await r.body?.cancel();
      return r.status === 200 || undefined;
    }, { timeoutMs: 15_000 });

    // With wrong credentials it says why in one line and exits 1, without waiting for them to get better.
    const refused = await runTollgate([
      "aggregator",
      "--nats",
      ns.url,
      ...mode.wrongFlags,
      "--admin",
      "off",
      "--rules",
      "testdata/ratelimit/per_ip.yaml",
      "--config-cache",
      "off",
    ]);
    printed.push(refused.stdout, refused.stderr);
    assertEquals(refused.code, 1, refused.stderr);
    assertEquals(refused.stderr.trimEnd().split("\n").length, 1, refused.stderr);
    assertMatch(refused.stderr.trimEnd(), mode.refusal);

    // A sidecar with wrong credentials keeps serving; the usage of what it serves waits in its spool.
    const spool = `${dir}/usage.spool`;
    {
      await using wrong = sidecar(gateway, spool, ns.url, mode.wrongFlags);
      const ready = await wrong.waitForLog("ExtProc server listening");
      const said = await wrong.waitForLog(
        "NATS refused this sidecar's credentials; it keeps serving, usage events wait in the spool until a restart",
      );
      assertMatch(String(said.error), /^Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: /);
      assertEquals(await chatThroughEdge(gateway, String(ready.address)), 200);
      await pollUntil(
        "the usage event to be spooled",
        async () => await metric(String(ready.admin), "tollgate_usage_spool_records") === 1 || undefined,
      );
      wrong.child.kill("SIGTERM");
      assertEquals((await wrong.child.status).code, 0);
      printed.push(JSON.stringify(wrong.lines));
    }

    // Restarted with the right credentials: the spooled event is replayed and a new one published.
    {
      await using right = sidecar(gateway, spool, ns.url, mode.flags);
      const ready = await right.waitForLog("ExtProc server listening");
      await right.waitForLog("Connected to NATS");
      assertEquals(await chatThroughEdge(gateway, String(ready.address)), 200);
      const nc = await connect({ servers: ns.url, ...mode.client });
      try {
        const jsm = await nc.jetstreamManager();
        await pollUntil("both usage events in the stream", async () => {
          const info = await jsm.streams.info(USAGE_STREAM);
          return info.state.messages >= 2 ? true : undefined;
        }, { timeoutMs: 20_000 });
        assertEquals((await jsm.streams.info(USAGE_STREAM)).state.messages, 2, "each event stored once");
      } finally {
        await nc.close();
      }
      assertEquals(await metric(String(ready.admin), "tollgate_usage_spool_records"), 0);
      printed.push(JSON.stringify(right.lines));
    }
    aggregator.child.kill("SIGTERM");
    assertEquals((await aggregator.child.status).code, 0);
    printed.push(JSON.stringify(aggregator.lines));

    for (const secret of mode.secrets) {
      assert(!printed.join("\n").includes(secret), `a ${name} secret was printed`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const name of ["user and password", "token", "nkey", "TLS", "mutual TLS"]) {
  Deno.test(`NATS with ${name}: the aggregator and the sidecar connect; wrong credentials stop the aggregator with one line and leave the sidecar serving, its usage spooled`, () =>
    proveAuthMode(name));
}
