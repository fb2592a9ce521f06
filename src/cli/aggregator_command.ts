// `tollgate aggregator`: one replica of the clustered rate limit service. It folds the usage stream from NATS
// JetStream into rate-limit counters and answers Envoy's ShouldRateLimit from them.
import { hostname } from "node:os";
import { collectDefaultMetrics, Registry } from "prom-client";
import { startAdmin } from "../admin/server.ts";
import { formatResourceError } from "../control/resources/errors.ts";
import { formatListenAddress, type ListenAddress, parseListenAddress } from "../extproc/listen_address.ts";
import { createLogger } from "../observability/logger.ts";
import { startAggregator } from "../actors/aggregator/replica.ts";
import { emptyRuleSet, loadRuleSources, type RuleSources } from "../actors/aggregator/rule_files.ts";
import { checkReplica } from "../actors/aggregator/snapshot_store.ts";
import { startConfigSubscriber } from "../actors/config_subscriber.ts";
import { aggregatorRuleSet } from "../control/bus/aggregator_rules.ts";
import { tmpdir } from "node:os";
import { connectNats, type NatsConnectOptions } from "../usage/nats_connection.ts";
import { NATS_FLAGS, NATS_HELP, natsOptions } from "./nats_flags.ts";
import { LISTENER_TLS_FLAGS, LISTENER_TLS_HELP, type ListenerTls, listenerTlsOptions } from "./listener_tls_flags.ts";
import { DEFAULT_RATE_LIMIT_HEADERS } from "../usage/rls_service.ts";
import { aggregatorDashboard } from "../observability/dashboard/dashboard_roles.ts";
import {
  listFlag,
  logLevelFlag,
  type Parsed,
  parseFlags,
  positiveIntFlag,
  secondsFlag,
  stringFlag,
  UsageError,
} from "./args.ts";

export const AGGREGATOR_FLAGS = {
  ...NATS_FLAGS,
  listen: { type: "string" },
  ...LISTENER_TLS_FLAGS,
  admin: { type: "string" },
  rules: { type: "string", multiple: true },
  resources: { type: "string", multiple: true },
  replica: { type: "string" },
  "snapshot-interval": { type: "string" },
  "snapshot-records": { type: "string" },
  "stream-replicas": { type: "string" },
  "rate-limit-headers": { type: "boolean" },
  "log-level": { type: "string" },
  "config-cache": { type: "string" },
} as const;

export const AGGREGATOR_HELP = `Usage: tollgate aggregator --nats URL [flags]

Runs one replica of the rate limit service: folds usage events and hit events from the NATS JetStream stream
TOLLGATE_USAGE into rate-limit windows (keyed by event time, so every replica holds the same counters), snapshots them
to the KV bucket TOLLGATE_AGGREGATOR, and answers envoy.service.ratelimit.v3.RateLimitService over gRPC.

Flags:
${NATS_HELP}
  --listen ADDR            rate limit service: HOST:PORT, :PORT or unix:///path.sock (default :8081); a socket is
                           mode 0660, in a directory created 0750
${LISTENER_TLS_HELP}
  --admin ADDR             admin HTTP port: dashboard /, /metrics, /healthz, /readyz (default :1064; "off" disables it)
  --rules PATH             envoyproxy/ratelimit config (YAML file or directory, repeatable), watched
  --resources PATH         Envoy AI Gateway resources (file or directory, repeatable), watched: the rules of their
                           BackendTrafficPolicies; rules with a response cost are fed by usage events and only
                           checked when Envoy calls (give the same resources as the sidecars)
  --replica ID             this replica's id, stable across restarts (default: the host name); A-Z a-z 0-9 _ -
  --snapshot-interval S    seconds between snapshots (default 10)
  --snapshot-records N     also snapshot after this many records (default 100000)
  --stream-replicas N      replicas of the stream and bucket when this replica creates them (default 1; 3 in a cluster)
  --rate-limit-headers     add RateLimit-Limit, -Remaining and -Reset to responses (off, as in envoyproxy/ratelimit)
  --log-level LEVEL        trace, debug, info, warn, error (default info, or TOLLGATE_LOG_LEVEL)
  -h, --help               show this help

Without --rules and --resources, the rules come from \`tollgate controller\` over NATS KV (bucket TOLLGATE_CONFIG),
applied as each config revision arrives and kept in --config-cache PATH (default
$TMPDIR/tollgate/aggregator-config.snapshot; "off": none) for a restart; /readyz waits for a first config.
A change to the rule files that does not load is rejected with every error located; the rules in force stay.
Ready (/readyz) once caught up with the stream's last record at start. SIGTERM: stop serving, publish the hit events
held, write a final snapshot, exit 0.
`;

export interface AggregatorCommandOptions {
  readonly nats: NatsConnectOptions;
  readonly listen: ListenAddress;
  /** TLS for the rate limit service; plaintext when absent. */
  readonly listenTls?: ListenerTls;
  readonly admin: (ListenAddress & { kind: "tcp" }) | null;
  readonly sources: RuleSources;
  readonly replica: string;
  readonly snapshotIntervalMs: number;
  readonly snapshotRecords: number;
  readonly streamReplicas: number;
  readonly rateLimitHeaders: boolean;
  readonly logLevel: string;
  /** Where the config from NATS is cached (used without --rules and --resources); undefined for none. */
  readonly configCache: string | undefined;
}

export function aggregatorOptions(p: Parsed): AggregatorCommandOptions {
  const fail = (message: string): never => {
    throw new UsageError(`tollgate aggregator: ${message}`);
  };
  const address = (flag: string, fallback: string) => {
    try {
      return parseListenAddress(stringFlag(p, flag, fallback));
    } catch (e) {
      return fail(`--${flag}: ${(e as Error).message}`);
    }
  };
  const adminText = stringFlag(p, "admin", ":1064");
  const admin = adminText === "off" ? null : address("admin", ":1064");
  if (admin && admin.kind !== "tcp") fail(`--admin must be HOST:PORT or "off"`);
  const replica = stringFlag(p, "replica", hostname().replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64));
  try {
    checkReplica(replica);
  } catch (e) {
    fail(`--replica: ${(e as Error).message}`);
  }
  const interval = secondsFlag("aggregator", p, "snapshot-interval", 10);
  if (interval <= 0) fail("--snapshot-interval must be more than 0 seconds");
  const nats = natsOptions("aggregator", p, `tollgate-aggregator-${replica}`) ??
    fail("--nats is required (the NATS server URL)");
  return {
    nats,
    listen: address("listen", ":8081"),
    ...((tls) => tls ? { listenTls: tls } : {})(listenerTlsOptions("aggregator", p)),
    admin: admin as (ListenAddress & { kind: "tcp" }) | null,
    sources: { rules: listFlag(p, "rules"), resources: listFlag(p, "resources"), env: Deno.env.toObject() },
    replica,
    snapshotIntervalMs: interval * 1000,
    snapshotRecords: positiveIntFlag("aggregator", p, "snapshot-records", 100_000),
    streamReplicas: positiveIntFlag("aggregator", p, "stream-replicas", 1),
    rateLimitHeaders: p.values["rate-limit-headers"] === true,
    logLevel: logLevelFlag("aggregator", p),
    configCache: ((path) => path === "off" ? undefined : path)(
      stringFlag(p, "config-cache", `${tmpdir()}/tollgate/aggregator-config.snapshot`),
    ),
  };
}

export function aggregatorCommand(args: readonly string[]): Promise<number> {
  return runAggregator(aggregatorOptions(parseFlags("aggregator", args, AGGREGATOR_FLAGS)));
}

/** Runs until SIGTERM/SIGINT, then drains; resolves with the exit code. */
export async function runAggregator(o: AggregatorCommandOptions): Promise<number> {
  const logger = createLogger({ level: o.logLevel, role: "aggregator" });
  const watched = o.sources.rules.length + o.sources.resources.length > 0;
  const loaded = watched ? await loadRuleSources(o.sources) : { ok: true as const, ruleSet: emptyRuleSet() };
  if (!loaded.ok) {
    console.error(
      `tollgate aggregator: invalid rate limit rules:\n${loaded.errors.map(formatResourceError).join("\n")}`,
    );
    return 1;
  }
  const stopping = new AbortController();
  const signalled = new Promise<string>((resolve) => {
    for (const s of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(s, () => {
        stopping.abort();
        resolve(s);
      });
    }
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tollgate_process_" });
  let notReady: () => string | null = () => "connecting to NATS";
  let configStatus: () => Record<string, unknown> = () => ({});
  const dashboard = o.admin ? aggregatorDashboard({ replica: o.replica, notReadyReason: () => notReady() }) : undefined;
  const admin = o.admin
    ? await startAdmin({
      listen: o.admin,
      registry,
      notReadyReason: () => notReady(),
      status: () => configStatus(),
      ...(dashboard ? { dashboard } : {}),
    })
      .catch((e) => e as Error)
    : undefined;
  if (admin instanceof Error) {
    console.error(`tollgate aggregator: ${admin.message}`);
    return 1;
  }
  let link;
  try {
    link = await connectNats(o.nats, {
      signal: stopping.signal,
      onRetry: (err, attempt) => logger.warn({ err, attempt }, "NATS not reachable yet; retrying"),
    });
  } catch (e) {
    await admin?.shutdown();
    if (stopping.signal.aborted) return 0;
    console.error(`tollgate aggregator: ${(e as Error).message}`);
    return 1;
  }
  const replica = startAggregator({
    link,
    replica: o.replica,
    ruleSet: loaded.ruleSet,
    log: logger,
    registry,
    listen: o.listen,
    ...(o.listenTls ? { rlsCredentials: o.listenTls.credentials() } : {}),
    ...(o.rateLimitHeaders ? { rateLimitHeaders: DEFAULT_RATE_LIMIT_HEADERS } : {}),
    ...(watched ? { ruleSources: o.sources } : {}),
    replicas: o.streamReplicas,
    snapshotIntervalMs: o.snapshotIntervalMs,
    snapshotEveryRecords: o.snapshotRecords,
    ...(dashboard ? { onUsage: dashboard.recordUsage } : {}),
  });
  dashboard?.attach(replica.core);
  // No rule files: the rules are the controller's, from the config bucket (or the cache while NATS is away).
  const config = watched ? undefined : startConfigSubscriber({
    connect: () => Promise.resolve(link),
    apply: (snapshot) => replica.setRules(aggregatorRuleSet(snapshot)),
    log: logger,
    registry,
    ...(o.configCache ? { cacheFile: o.configCache } : {}),
  });
  if (config) configStatus = () => ({ ...config.status() });
  notReady = () =>
    replica.notReadyReason() ??
      (config?.status().configRevision === null ? "waiting for a first config from the controller" : null);
  const outcome = await Promise.race([
    replica.listening.then((address) => ({ address }), (error: Error) => ({ error })),
    signalled.then(() => ({ stopped: true as const })),
  ]);
  if ("error" in outcome) {
    console.error(`tollgate aggregator: ${outcome.error.message}`);
    await admin?.shutdown();
    await link.close();
    return 1;
  }
  if ("address" in outcome) {
    logger.info(
      {
        address: formatListenAddress(outcome.address!),
        tls: o.listenTls ? (o.listenTls.mutual ? "mutual" : "server") : "off",
        admin: admin ? formatListenAddress(admin.address) : null,
        replica: o.replica,
        domains: loaded.ruleSet.rules.domains.map((d) => d.domain),
      },
      "Rate limit service listening",
    );
  }
  const ended = await Promise.race([
    signalled.then((signal) => ({ signal })),
    replica.done.then(() => ({ failed: undefined }), (error: Error) => ({ failed: error })),
  ]);
  if ("signal" in ended) {
    logger.info({ signal: ended.signal, seq: replica.core.seq }, "Draining");
    await replica.stop();
  }
  await config?.stop();
  await admin?.shutdown();
  await link.close();
  if ("failed" in ended && ended.failed) {
    console.error(`tollgate aggregator: ${ended.failed.message}`);
    return 1;
  }
  logger.info({ seq: replica.core.seq }, "Stopped");
  return 0;
}
