// The listeners Envoy talks to, locked down: TLS and mutual TLS on the ExtProc and rate limit gRPC listeners
// (`--tls-cert`, `--tls-key`, `--tls-client-ca`), the Unix socket's permissions, and an admin port bound to loopback
// only. Real `tollgate extproc` and `tollgate aggregator` processes, grpc-js clients, certificates from openssl.
import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { makeTestPki, type TestPki } from "./support/tls_certs.ts";
import { NatsServer, pollUntil } from "./support/nats_server.ts";
import { runTollgate, spawnTollgate } from "./support/process.ts";
import { ExtProcTestStream } from "./support/extproc_client.ts";
import { ExternalProcessorClient } from "../src/protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { headersRequest } from "../src/protocol/ext_proc_request.ts";
import { rateLimitServiceDefinition } from "../src/edge/rate_limit_filter.ts";
import type { RateLimitResponse } from "../src/protocol/gen/envoy/service/ratelimit/v3/rls.ts";
import type { RlsRequest } from "../src/edge/rate_limit_descriptors.ts";
import { parse } from "yaml";
import { toJson } from "@bufbuild/protobuf";
import { decodeEnvoy, envoyRegistry, messageType } from "./support/envoy_protos.ts";

// Deno's node:tls refuses an IP address as the TLS server name, and the server certificate is for localhost too.
const CHANNEL_OPTIONS = { "grpc.ssl_target_name_override": "localhost" };

type ClientKind = "plaintext" | "tls" | "tls, wrong CA" | "mutual" | "mutual, foreign client certificate";

function clientCredentials(pki: TestPki, kind: ClientKind): grpc.ChannelCredentials {
  switch (kind) {
    case "plaintext":
      return grpc.credentials.createInsecure();
    case "tls":
      return grpc.credentials.createSsl(pki.read(pki.ca));
    case "tls, wrong CA":
      return grpc.credentials.createSsl(pki.read(pki.otherCa));
    case "mutual":
      return grpc.credentials.createSsl(pki.read(pki.ca), pki.read(pki.client.key), pki.read(pki.client.cert));
    case "mutual, foreign client certificate":
      return grpc.credentials.createSsl(
        pki.read(pki.ca),
        pki.read(pki.otherClient.key),
        pki.read(pki.otherClient.cert),
      );
  }
}

/** Asks the sidecar for /v1/models over one ExtProc stream: "served", or how the call failed. */
async function askModels(target: string, credentials: grpc.ChannelCredentials): Promise<string> {
  const client = new ExternalProcessorClient(target, credentials, CHANNEL_OPTIONS);
  try {
    const stream = new ExtProcTestStream(client.process(new grpc.Metadata(), { deadline: Date.now() + 10_000 }));
    try {
      const r = await stream.exchange(
        headersRequest("requestHeaders", { ":method": "GET", ":path": "/v1/models" }, true),
      );
      if (r.response?.$case !== "immediateResponse") return `unexpected ${r.response?.$case}`;
      const models = JSON.parse(new TextDecoder().decode(r.response.value.body)).data.map((m: { id: string }) => m.id);
      return models.includes("tollgate-echo") ? "served" : `unexpected models ${models}`;
    } catch {
      return `failed: ${grpc.status[(await stream.ended).code]}`;
    }
  } finally {
    client.close();
  }
}

/** One ShouldRateLimit call: the overall code, or how the call failed. */
function checkRateLimit(target: string, credentials: grpc.ChannelCredentials): Promise<string> {
  const client = new grpc.Client(target, credentials, CHANNEL_OPTIONS);
  const m = rateLimitServiceDefinition.shouldRateLimit;
  const req: RlsRequest = {
    domain: "per_ip",
    hitsAddend: 0,
    descriptors: [{ entries: [{ key: "remote_address", value: "192.0.2.7" }] }],
  };
  return new Promise<string>((resolve) =>
    client.makeUnaryRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      req,
      { deadline: Date.now() + 10_000 },
      (err: grpc.ServiceError | null, res?: RateLimitResponse) => {
        client.close();
        resolve(err ? `failed: ${grpc.status[err.code]}` : `code ${res?.overallCode}`);
      },
    )
  );
}

function tlsFlags(pki: TestPki, mutual: boolean): string[] {
  return [
    "--tls-cert",
    pki.server.cert,
    "--tls-key",
    pki.server.key,
    ...(mutual ? ["--tls-client-ca", pki.ca] : []),
  ];
}

/**
 * grpc-js fills a server's client-CA list from GRPC_DEFAULT_SSL_ROOTS_FILE_PATH when it is set, and a system bundle
 * there once broke every TLS handshake (Deno's node:tls); the environment is set here so the test always covers it.
 */
function systemRootsEnv(): Record<string, string> {
  const bundle = "/etc/ssl/certs/ca-certificates.crt";
  try {
    Deno.statSync(bundle);
    return { GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: bundle };
  } catch {
    return {};
  }
}

Deno.test("tollgate extproc --tls-cert serves TLS clients that trust its CA and refuses plaintext ones", async () => {
  await using pki = await makeTestPki();
  await using p = spawnTollgate(
    ["extproc", "--listen", "127.0.0.1:0", "--admin", "off", ...tlsFlags(pki, false)],
    systemRootsEnv(),
  );
  const ready = await p.waitForLog("ExtProc server listening");
  assertEquals(ready.tls, "server");
  const target = String(ready.address);
  const outcomes: Record<string, string> = {};
  for (const kind of ["tls", "mutual", "plaintext", "tls, wrong CA"] as const) {
    outcomes[kind] = await askModels(target, clientCredentials(pki, kind));
  }
  assertEquals(outcomes, {
    "tls": "served",
    // Without --tls-client-ca a client certificate is not asked for; presenting one changes nothing.
    "mutual": "served",
    "plaintext": "failed: UNAVAILABLE",
    "tls, wrong CA": "failed: UNAVAILABLE",
  });
});

Deno.test("tollgate extproc --tls-client-ca requires a client certificate signed by that CA", async () => {
  await using pki = await makeTestPki();
  await using p = spawnTollgate(["extproc", "--listen", "127.0.0.1:0", "--admin", "off", ...tlsFlags(pki, true)]);
  const ready = await p.waitForLog("ExtProc server listening");
  assertEquals(ready.tls, "mutual");
  const target = String(ready.address);
  const outcomes: Record<string, string> = {};
  for (const kind of ["mutual", "tls", "mutual, foreign client certificate", "plaintext"] as const) {
    outcomes[kind] = await askModels(target, clientCredentials(pki, kind));
  }
  assertEquals(outcomes, {
    "mutual": "served",
    "tls": "failed: UNAVAILABLE",
    "mutual, foreign client certificate": "failed: UNAVAILABLE",
    "plaintext": "failed: UNAVAILABLE",
  });
});

Deno.test("the ExtProc Unix socket is mode 0660 in a directory it creates closed to others, and TLS works over it", async () => {
  await using pki = await makeTestPki();
  const dir = await Deno.makeTempDir({ prefix: "tollgate-socket-" });
  try {
    const sock = `${dir}/run/tollgate/extproc.sock`;
    await using p = spawnTollgate(["extproc", "--listen", `unix://${sock}`, "--admin", "off", ...tlsFlags(pki, true)]);
    await p.waitForLog("ExtProc server listening");
    assertEquals((await Deno.stat(sock)).mode! & 0o777, 0o660, "socket: owner and group read/write only");
    for (const made of [`${dir}/run`, `${dir}/run/tollgate`]) {
      const mode = (await Deno.stat(made)).mode! & 0o777;
      assertEquals(mode & 0o700, 0o700, `${made}: the owner can use it`);
      assertEquals(mode & 0o027, 0, `${made}: no group write, nothing for others (mode ${mode.toString(8)})`);
    }
    assertEquals(await askModels(`unix://${sock}`, clientCredentials(pki, "mutual")), "served");
    assertEquals(await askModels(`unix://${sock}`, clientCredentials(pki, "plaintext")), "failed: UNAVAILABLE");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tollgate aggregator --tls-cert --tls-client-ca serves ShouldRateLimit over mutual TLS only", async () => {
  await using pki = await makeTestPki();
  await using ns = await NatsServer.start({ jetstream: true });
  const cache = await Deno.makeTempDir({ prefix: "tollgate-rls-tls-" });
  try {
    await using p = spawnTollgate([
      "aggregator",
      "--nats",
      ns.url,
      "--listen",
      "127.0.0.1:0",
      "--admin",
      "127.0.0.1:0",
      "--rules",
      "testdata/ratelimit/per_ip.yaml",
      "--replica",
      "tls-1",
      "--config-cache",
      "off",
      ...tlsFlags(pki, true),
    ]);
    const listening = await p.waitForLog("Rate limit service listening");
    assertEquals(listening.tls, "mutual");
    const target = String(listening.address);
    await pollUntil("/readyz to answer 200", async () => {
      const r = await fetch(`http://${listening.admin}/readyz`);
      await r.body?.cancel();
      return r.status === 200 || undefined;
    });
    const outcomes: Record<string, string> = {};
    for (const kind of ["mutual", "tls", "mutual, foreign client certificate", "plaintext", "tls, wrong CA"] as const) {
      outcomes[kind] = await checkRateLimit(target, clientCredentials(pki, kind));
    }
    assertEquals(outcomes, {
      "mutual": "code 1", // OK
      "tls": "failed: UNAVAILABLE",
      "mutual, foreign client certificate": "failed: UNAVAILABLE",
      "plaintext": "failed: UNAVAILABLE",
      "tls, wrong CA": "failed: UNAVAILABLE",
    });
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("the rate limit service's Unix socket is mode 0660 too", async () => {
  await using ns = await NatsServer.start({ jetstream: true });
  const dir = await Deno.makeTempDir({ prefix: "tollgate-rls-socket-" });
  try {
    const sock = `${dir}/rls/ratelimit.sock`;
    await using p = spawnTollgate([
      "aggregator",
      "--nats",
      ns.url,
      "--listen",
      `unix://${sock}`,
      "--admin",
      "off",
      "--rules",
      "testdata/ratelimit/per_ip.yaml",
      "--replica",
      "sock-1",
      "--config-cache",
      "off",
    ]);
    await p.waitForLog("Rate limit service listening");
    assertEquals((await Deno.stat(sock)).mode! & 0o777, 0o660);
    assertEquals((await Deno.stat(`${dir}/rls`)).mode! & 0o027, 0);
    assertEquals(await checkRateLimit(`unix://${sock}`, grpc.credentials.createInsecure()), "code 1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listener TLS flags that do not fit together, or files that are not what they claim, exit 2 with one line", async () => {
  await using pki = await makeTestPki();
  const cases: Array<[string[], RegExp]> = [
    [["--tls-cert", pki.server.cert], /^tollgate extproc: --tls-cert and --tls-key go together\n$/],
    [["--tls-client-ca", pki.ca], /^tollgate extproc: --tls-client-ca needs --tls-cert and --tls-key\n$/],
    [
      ["--tls-cert", pki.server.cert, "--tls-key", `${pki.dir}/missing.key`],
      /^tollgate extproc: --tls-key: cannot read .*missing\.key: /,
    ],
    [
      ["--tls-cert", pki.server.cert, "--tls-key", pki.client.key],
      /^tollgate extproc: --tls-key: .*client\.key is not the key of the certificate in .*server\.crt\n$/,
    ],
    [
      ["--tls-cert", pki.server.key, "--tls-key", pki.server.key],
      /^tollgate extproc: --tls-cert: .* is not a PEM certificate/,
    ],
  ];
  for (const [flags, re] of cases) {
    const r = await runTollgate(["extproc", "--listen", "127.0.0.1:0", "--admin", "off", ...flags]);
    assertEquals(r.code, 2, flags.join(" "));
    assertMatch(r.stderr, re);
    assertEquals(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  }
  const agg = await runTollgate(["aggregator", "--nats", "nats://127.0.0.1:1", "--tls-key", pki.server.key]);
  assertEquals(agg.code, 2);
  assertMatch(agg.stderr, /^tollgate aggregator: --tls-cert and --tls-key go together\n$/);
});

/** An IPv4 address of this machine that is not loopback, if it has one. */
function nonLoopbackAddress(): string | undefined {
  return Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."))?.address;
}

async function reachable(host: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: host, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("--admin 127.0.0.1:PORT binds loopback only: the admin port cannot be reached on another address", async () => {
  await using loopback = spawnTollgate(["extproc", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
  await using everywhere = spawnTollgate(["extproc", "--listen", "127.0.0.1:0", "--admin", ":0"]);
  const local = String((await loopback.waitForLog("ExtProc server listening")).admin);
  const wide = String((await everywhere.waitForLog("ExtProc server listening")).admin);
  assertMatch(local, /^127\.0\.0\.1:\d+$/);
  assertMatch(wide, /^0\.0\.0\.0:\d+$/);
  const localPort = Number(local.split(":")[1]);
  const widePort = Number(wide.split(":")[1]);
  const health = await fetch(`http://${local}/healthz`);
  assertEquals([health.status, await health.text()], [200, "ok\n"]);
  const other = nonLoopbackAddress();
  if (other === undefined) {
    console.warn("This machine has no non-loopback IPv4 address; only the bound addresses were checked");
    return;
  }
  // The contrast makes the check mean something: the same address reaches the admin port bound to every interface.
  assert(await reachable(other, widePort), `a port bound to 0.0.0.0 is reachable on ${other}`);
  assertEquals(await reachable(other, localPort), false, `the loopback-only admin port is not reachable on ${other}`);
});

Deno.test("tollgate render envoy --ratelimit-tls-* gives the rate limit cluster a TLS socket that decodes as Envoy's", async () => {
  const r = await runTollgate([
    "render",
    "envoy",
    "testdata/resources/token_ratelimit",
    "--ratelimit",
    "rls.tollgate.svc:8081",
    "--ratelimit-tls-ca",
    "/etc/tollgate/rls/ca.crt",
    "--ratelimit-tls-cert",
    "/etc/tollgate/rls/envoy.crt",
    "--ratelimit-tls-key",
    "/etc/tollgate/rls/envoy.key",
  ]);
  assertEquals(r.code, 0, r.stderr);
  const bootstrap = parse(r.stdout) as {
    static_resources: { clusters: { name: string; transport_socket?: unknown }[] };
  };
  const cluster = bootstrap.static_resources.clusters.find((c) => c.name === "tollgate_ratelimit");
  assertEquals(cluster?.transport_socket, {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      sni: "rls.tollgate.svc",
      common_tls_context: {
        alpn_protocols: ["h2"],
        tls_certificates: [{
          certificate_chain: { filename: "/etc/tollgate/rls/envoy.crt" },
          private_key: { filename: "/etc/tollgate/rls/envoy.key" },
        }],
        validation_context: {
          trusted_ca: { filename: "/etc/tollgate/rls/ca.crt" },
          match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: "rls.tollgate.svc" } }],
        },
      },
    },
  });
  // Strictly, as Envoy's loader would: the whole bootstrap, the UpstreamTlsContext resolved by its @type.
  const registry = await envoyRegistry();
  const type = "envoy.config.bootstrap.v3.Bootstrap";
  const decoded = toJson(messageType(registry, type), decodeEnvoy(registry, type, bootstrap), { registry });
  assertMatch(JSON.stringify(decoded), /"trustedCa":\{"filename":"\/etc\/tollgate\/rls\/ca\.crt"\}/);
  // Without the flags the cluster stays plaintext; a half-given client certificate is a usage error.
  const plain = parse(
    (await runTollgate(["render", "envoy", "testdata/resources/token_ratelimit"])).stdout,
  ) as typeof bootstrap;
  assertEquals(
    plain.static_resources.clusters.find((c) => c.name === "tollgate_ratelimit")?.transport_socket,
    undefined,
  );
  const half = await runTollgate([
    "render",
    "envoy",
    "testdata/resources/token_ratelimit",
    "--ratelimit-tls-cert",
    "x",
  ]);
  assertEquals(half.code, 2);
  assertMatch(half.stderr, /^tollgate render: --ratelimit-tls-cert and --ratelimit-tls-key go together\n$/);
});
