// `tollgate extproc`: the data-plane sidecar, one per Envoy pod.
import { collectDefaultMetrics, Registry } from "prom-client";
import { ExtProcServer } from "../extproc/server.ts";
import { formatListenAddress, type ListenAddress, parseListenAddress } from "../extproc/listen_address.ts";
import { defaultSnapshot } from "../control/snapshot.ts";
import { type FileConfigSource, watchConfigFiles } from "../control/file_config_source.ts";
import { startAdmin } from "../admin/server.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { hostname } from "node:os";
import {
  connectNats,
  displayNatsServers,
  NatsConnectError,
  type NatsConnectOptions,
  type NatsLink,
} from "../usage/nats_connection.ts";
import { routingServices } from "../routing/routing_services.ts";
import { startUsageSink, type UsageSink } from "../usage/usage_sink.ts";
import { type SharedNatsLink, sharedNatsLink } from "../usage/nats_connection.ts";
import { tmpdir } from "node:os";
import { systemClock } from "../observability/clock.ts";
import type { GatewaySnapshot } from "../control/snapshot.ts";
import { DEFAULT_SECRETS_DIR } from "../control/secrets.ts";
import { SidecarConfig } from "../control/bus/sidecar_config.ts";
import { type ConfigSubscriber, startConfigSubscriber } from "../actors/config_subscriber.ts";
import type { UsageEvent } from "../usage/usage_event.ts";
import { NATS_FLAGS, NATS_HELP, natsOptions } from "./nats_flags.ts";
import {
  OBSERVABILITY_FLAGS,
  OBSERVABILITY_HELP,
  type ObservabilityOptions,
  observabilityOptions,
  startTracing,
} from "./observability_flags.ts";
import { registerConfigRevision } from "../observability/config_metrics.ts";
import { USAGE_SPOOL_FLAGS, USAGE_SPOOL_HELP, type UsageSpoolOptions, usageSpoolOptions } from "./usage_spool_flags.ts";
import { LISTENER_TLS_FLAGS, LISTENER_TLS_HELP, type ListenerTls, listenerTlsOptions } from "./listener_tls_flags.ts";
import { listFlag, logLevelFlag, type Parsed, positiveIntFlag, secondsFlag, stringFlag, UsageError } from "./args.ts";

export const EXTPROC_FLAGS = {
  listen: { type: "string" },
  ...LISTENER_TLS_FLAGS,
  admin: { type: "string" },
  model: { type: "string", multiple: true },
  config: { type: "string", multiple: true },
  grace: { type: "string" },
  "max-body-bytes": { type: "string" },
  "log-level": { type: "string" },
  ...NATS_FLAGS,
  ...USAGE_SPOOL_FLAGS,
  ...OBSERVABILITY_FLAGS,
  "config-cache": { type: "string" },
  "secrets-dir": { type: "string" },
  "crash-restarts": { type: "string" },
} as const;

export const EXTPROC_HELP = `Usage: tollgate extproc [flags]

Runs the ExtProc sidecar: envoy.service.ext_proc.v3.ExternalProcessor and grpc.health.v1 over gRPC.

Flags:
  --listen ADDR          unix:///path.sock (default unix:///tmp/tollgate/extproc.sock) or HOST:PORT, e.g. 127.0.0.1:1063;
                         a socket is mode 0660 (owner and group, i.e. Envoy), in a directory created 0750
${LISTENER_TLS_HELP}
  --admin ADDR           admin HTTP port for /metrics, /healthz, /readyz (default :1064; "off" disables it)
  --config PATH          Envoy AI Gateway resources (file or directory, repeatable), watched and applied on change;
                         a change that does not validate is rejected and the running config stays
  --model NAME           without --config: a model this gateway serves (repeatable); default tollgate-echo
  --grace SECONDS        on SIGTERM, how long open streams may finish before they are cancelled (default 15)
  --max-body-bytes N     cap on a request body Envoy streams in chunks (default 33554432)
  --log-level LEVEL      trace, debug, info, warn, error (default info, or TOLLGATE_LOG_LEVEL)
  --crash-restarts N     the server runs in a worker process that is restarted at once when it crashes, up to N
                         times a minute (default 10; 0 runs it in this process, unsupervised)
  -h, --help             show this help

Usage events (one per request, for token rate limits) go to NATS JetStream when --nats is given; while NATS is
down or slow they wait in a local spool file and are replayed in order once it answers:
${NATS_HELP}
${USAGE_SPOOL_HELP}

With --nats and without --config, the config itself comes from \`tollgate controller\` over NATS KV (bucket
TOLLGATE_CONFIG): applied atomically (open streams keep the config they started with), kept on disk, and served
from there when the sidecar starts while NATS is unreachable. /readyz waits for a first config.
  --config-cache PATH      last good config snapshot (default $TMPDIR/tollgate/config.snapshot; "off": none)
  --secrets-dir DIR        mounted Secrets, as DIR/<namespace>/<name>/<key> (default ${DEFAULT_SECRETS_DIR});
                           a key not there is read from TOLLGATE_SECRET_<NAMESPACE>_<NAME>_<KEY>; re-read on change

Observability (metrics are always on the admin port):
${OBSERVABILITY_HELP}
`;

export interface SidecarOptions {
  readonly listen: ListenAddress;
  readonly admin: (ListenAddress & { kind: "tcp" }) | null;
  readonly models: readonly string[];
  readonly configPaths: readonly string[];
  readonly graceSeconds: number;
  readonly maxBodyBytes: number;
  readonly logLevel: string;
  readonly nats: NatsConnectOptions | undefined;
  readonly usageSpool: UsageSpoolOptions;
  /** Where the config from NATS is cached; undefined for none. */
  readonly configCache: string | undefined;
  readonly secretsDir: string;
  /** Tracing and the tenant label of the metrics; both off when absent. */
  readonly observability?: ObservabilityOptions;
  /** TLS for the ExtProc listener; plaintext when absent. */
  readonly listenTls?: ListenerTls;
}

export function sidecarOptions(command: string, p: Parsed, defaultListen: string): SidecarOptions {
  const address = (flag: string, fallback: string) => {
    try {
      return parseListenAddress(stringFlag(p, flag, fallback));
    } catch (e) {
      throw new UsageError(`tollgate ${command}: --${flag}: ${(e as Error).message}`);
    }
  };
  const adminText = stringFlag(p, "admin", ":1064");
  const admin = adminText === "off" ? null : address("admin", ":1064");
  if (admin && admin.kind !== "tcp") throw new UsageError(`tollgate ${command}: --admin must be HOST:PORT or "off"`);
  const logLevel = logLevelFlag(command, p);
  return {
    listen: address("listen", defaultListen),
    admin: admin as (ListenAddress & { kind: "tcp" }) | null,
    models: listFlag(p, "model"),
    configPaths: listFlag(p, "config"),
    graceSeconds: secondsFlag(command, p, "grace", 15),
    maxBodyBytes: positiveIntFlag(command, p, "max-body-bytes", 32 << 20),
    logLevel,
    nats: natsOptions(command, p, `tollgate-${command}-${hostname()}`),
    usageSpool: usageSpoolOptions(command, p),
    configCache: configCachePath(p),
    secretsDir: stringFlag(p, "secrets-dir", DEFAULT_SECRETS_DIR),
    observability: observabilityOptions(command, p, Deno.env.toObject()),
    ...((tls) => tls ? { listenTls: tls } : {})(listenerTlsOptions(command, p)),
  };
}

/** Starts the sidecar and serves until SIGTERM/SIGINT, then drains and resolves with the exit code. */
export async function runSidecar(role: string, o: SidecarOptions, banner?: (s: string) => void): Promise<number> {
  const logger = createLogger({ level: o.logLevel, role });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tollgate_process_" });
  let source: FileConfigSource | undefined;
  if (o.configPaths.length > 0) {
    try {
      source = await watchConfigFiles({ paths: o.configPaths, logger, env: Deno.env.toObject() });
    } catch (e) {
      console.error(`tollgate ${role}: ${(e as Error).message}`);
      return 1;
    }
  }
  const nats = o.nats ? sharedNatsLink((signal) => connectSidecarNats(o.nats!, logger, signal)) : undefined;
  // Semantic routing's services: a `backend: nats` semantic cache is shared by every sidecar through NATS KV.
  const natsConnection = nats?.get().then((l) => l.nc);
  // Refused credentials end the dialling (connectSidecarNats logs it); the cache only looks at this when it opens.
  natsConnection?.catch(() => {});
  const routing = routingServices({ logger, ...(natsConnection ? { nats: natsConnection } : {}) });
  let usage: UsageSink | undefined;
  try {
    usage = nats ? startUsageSink({ connect: nats.get, spool: o.usageSpool.spool, registry, logger }) : undefined;
  } catch (e) {
    console.error(`tollgate ${role}: ${(e as Error).message}`);
    source?.[Symbol.dispose]();
    await nats?.close();
    return 1;
  }
  const fixed = defaultSnapshot(o.models);
  // Without files, the config comes from the controller over NATS (one --nats for usage and config).
  const fromNats = nats && o.configPaths.length === 0
    ? subscribeSidecarConfig({
      nats,
      initial: fixed,
      registry,
      logger,
      cacheFile: o.configCache,
      secretsDir: o.secretsDir,
    })
    : undefined;
  const current = () => source?.current() ?? fromNats?.config.current() ?? fixed;
  if (o.listen.kind === "unix") {
    // Only the owner and its group (Envoy's) may enter the directory; the socket itself is made 0660.
    await Deno.mkdir(o.listen.path.replace(/\/[^/]*$/, "") || "/", { recursive: true, mode: 0o750 });
  }
  // The NATS config subscriber has its own tollgate_config_revision; this one covers --config files and --model.
  registerConfigRevision(registry, () => current().revision);
  const tracing = o.observability ? startTracing(o.observability, role, logger) : undefined;
  const server = new ExtProcServer({
    listen: o.listen,
    snapshot: current,
    logger,
    registry,
    maxBodyBytes: o.maxBodyBytes,
    ...(o.observability?.tenant ? { metricsTenant: o.observability.tenant } : {}),
    ...(tracing ? { tracing } : {}),
    ...(o.listenTls ? { serverCredentials: o.listenTls.credentials() } : {}),
    routing,
    ...(usage ? { onUsage: (e: UsageEvent) => usage.publish(e) } : {}),
  });
  const bound = await server.start();
  const admin = o.admin
    ? await startAdmin({
      listen: o.admin,
      registry,
      notReadyReason: () =>
        !server.ready
          ? "the ExtProc server is draining"
          : fromNats?.subscriber.status().configRevision === null
          ? "waiting for a first config (from NATS or the config cache)"
          : null,
      status: () => ({
        configRevision: current().revision,
        ...(fromNats ? { ...fromNats.subscriber.status(), unresolvedSecrets: fromNats.config.unresolvedSecrets } : {}),
      }),
    })
    : undefined;
  logger.info(
    {
      address: formatListenAddress(bound),
      tls: o.listenTls ? (o.listenTls.mutual ? "mutual" : "server") : "off",
      admin: admin ? formatListenAddress(admin.address) : null,
      models: current().models.map((m) => m.id),
    },
    "ExtProc server listening",
  );
  banner?.(
    `ExtProc listening on ${formatListenAddress(bound)}` +
      (admin ? `; admin on http://${formatListenAddress(admin.address)}` : ""),
  );

  const signal = await new Promise<string>((resolve) => {
    for (const s of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(s, () => resolve(s));
  });
  logger.info({ signal, graceSeconds: o.graceSeconds, open: server.openStreams }, "Draining");
  const { forced } = await server.drain(o.graceSeconds * 1000);
  await tracing?.shutdown();
  await usage?.close();
  await fromNats?.subscriber.stop();
  fromNats?.config[Symbol.dispose]();
  await routing.close();
  await nats?.close();
  await admin?.shutdown();
  source?.[Symbol.dispose]();
  logger.info({ forced, usageSpooled: usage?.spooled ?? 0 }, "Stopped");
  return 0;
}

function configCachePath(p: Parsed): string | undefined {
  const path = stringFlag(p, "config-cache", `${tmpdir()}/tollgate/config.snapshot`);
  return path === "off" ? undefined : path;
}

/** The config subscriber of a sidecar: snapshots from NATS, credentials from this pod's mounts. */
function subscribeSidecarConfig(o: {
  nats: SharedNatsLink;
  initial: GatewaySnapshot;
  registry: Registry;
  logger: Logger;
  cacheFile: string | undefined;
  secretsDir: string;
}): { config: SidecarConfig; subscriber: ConfigSubscriber } {
  const config = new SidecarConfig({
    initial: o.initial,
    secretsDir: o.secretsDir,
    env: Deno.env.toObject(),
    clock: systemClock,
    log: o.logger,
  });
  const subscriber = startConfigSubscriber({
    connect: o.nats.get,
    apply: config.apply,
    log: o.logger,
    registry: o.registry,
    ...(o.cacheFile ? { cacheFile: o.cacheFile } : {}),
  });
  return { config, subscriber };
}

/**
 * Dials NATS until it answers (logging each failed try) or the process stops. Credentials NATS refuses end the
 * dialling: the sidecar keeps serving, its usage events wait in the spool until it restarts with working ones.
 */
export function connectSidecarNats(o: NatsConnectOptions, logger: Logger, signal: AbortSignal): Promise<NatsLink> {
  return connectNats(o, {
    signal,
    onRetry: (err, attempt) => logger.warn({ err, attempt }, "NATS not reachable yet; usage events wait in the spool"),
  }).then((link) => {
    logger.info({ servers: displayNatsServers(o.servers) }, "Connected to NATS");
    return link;
  }, (err: unknown) => {
    if (err instanceof NatsConnectError) {
      logger.error(
        { error: err.message },
        "NATS refused this sidecar's credentials; it keeps serving, usage events wait in the spool until a restart",
      );
    }
    throw err;
  });
}

/** --crash-restarts: restarts of a crashed worker allowed per minute; 0 disables the supervisor. */
export function crashRestarts(command: string, p: Parsed): number {
  const v = p.values["crash-restarts"];
  if (typeof v !== "string") return 10;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new UsageError(`tollgate ${command}: --crash-restarts must be a non-negative integer, got "${v}"`);
  }
  return n;
}
