// `tollgate controller`: reads resources (a directory; Kubernetes optionally), validates and compiles them, and
// publishes versioned snapshots to NATS KV for every sidecar and aggregator. Run two or more: one leads (a lease in
// KV), the others stand by and take over when it dies.
import { hostname } from "node:os";
import { collectDefaultMetrics, Registry } from "prom-client";
import { startAdmin } from "../admin/server.ts";
import { formatListenAddress, type ListenAddress, parseListenAddress } from "../extproc/listen_address.ts";
import { createLogger } from "../observability/logger.ts";
import { connectNats, type NatsConnectOptions } from "../usage/nats_connection.ts";
import { DEFAULT_RATE_LIMIT_DOMAIN } from "../control/gateway_config.ts";
import { type Controller, startController } from "../actors/controller/controller.ts";
import { DEFAULT_RLS_TARGET } from "../actors/controller/compiler.ts";
import { kubernetesWatcher } from "../actors/controller/kubernetes_client.ts";
import type { KubernetesWatcher } from "../actors/controller/kubernetes_source.ts";
import { NATS_FLAGS, NATS_HELP, natsOptions } from "./nats_flags.ts";
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

export const CONTROLLER_FLAGS = {
  ...NATS_FLAGS,
  watch: { type: "string", multiple: true },
  kubernetes: { type: "boolean" },
  admin: { type: "string" },
  id: { type: "string" },
  "lease-ttl": { type: "string" },
  debounce: { type: "string" },
  "extproc-target": { type: "string" },
  "rls-target": { type: "string" },
  "rate-limit-domain": { type: "string" },
  "stream-replicas": { type: "string" },
  "log-level": { type: "string" },
} as const;

export const CONTROLLER_HELP = `Usage: tollgate controller --watch DIR --nats URL [flags]

Watches Envoy AI Gateway resources, validates and compiles them as \`tollgate validate\` does, and publishes each
change as a versioned, content-hashed snapshot to the NATS KV bucket TOLLGATE_CONFIG, where every
\`tollgate extproc --nats\` and \`tollgate aggregator\` picks it up. A change that does not validate is rejected with
every error located (file, document, resource, field) and the last good snapshot stays published. Credentials are
published as Secret references only; each sidecar reads them from its own mounts.

Run several: one holds the lease (KV bucket TOLLGATE_CONTROLLER) and publishes, the others compile and stand by,
and one of them takes over within the lease TTL when the leader dies.

Flags:
  --watch PATH             resource file or directory (repeatable), watched
  --kubernetes             also read the resources from the Kubernetes API (needs @kubernetes/client-node)
${NATS_HELP}
  --admin ADDR             admin HTTP port for /metrics, /healthz, /readyz (default :1064; "off" disables it)
  --id ID                  this controller's name in the lease and the heads it writes (default: the host name)
  --lease-ttl SECONDS      lease time to live: how long a dead leader blocks a standby (default 15)
  --debounce SECONDS       quiet time that ends a burst of file events before compiling (default 0.05); a
                           change after a quiet spell compiles after 5 ms
  --extproc-target ADDR    the sidecars' ExtProc address in the compiled Envoy topology
                           (default unix:///run/tollgate/extproc.sock)
  --rls-target ADDR        the rate limit service in the compiled Envoy topology (default ${DEFAULT_RLS_TARGET})
  --rate-limit-domain D    the rate limit domain of the rules (default ${DEFAULT_RATE_LIMIT_DOMAIN})
  --stream-replicas N      replicas of the buckets when this controller creates them (default 1; 3 in a cluster)
  --log-level LEVEL        trace, debug, info, warn, error (default info, or TOLLGATE_LOG_LEVEL)
  -h, --help               show this help

/readyz reports the role (leader or standby), the published revision and hash, and the errors of a rejected change.
SIGTERM: release the lease (a standby leads at once) and exit 0.
`;

export interface ControllerCommandOptions {
  readonly watch: readonly string[];
  readonly kubernetes: boolean;
  readonly nats: NatsConnectOptions;
  readonly admin: (ListenAddress & { kind: "tcp" }) | null;
  readonly id: string;
  readonly leaseTtlMs: number;
  readonly debounceMs: number;
  readonly extProcTarget: string;
  readonly rlsTarget: string;
  readonly rateLimitDomain: string;
  readonly streamReplicas: number;
  readonly logLevel: string;
}

export function controllerOptions(p: Parsed): ControllerCommandOptions {
  const fail = (message: string): never => {
    throw new UsageError(`tollgate controller: ${message}`);
  };
  const id = stringFlag(p, "id", hostname().replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64));
  const nats = natsOptions("controller", p, `tollgate-controller-${id}`) ??
    fail("--nats is required (the NATS server URL)");
  const watch = listFlag(p, "watch");
  const kubernetes = p.values.kubernetes === true;
  if (watch.length === 0 && !kubernetes) fail("give --watch DIR (repeatable) or --kubernetes");
  const adminText = stringFlag(p, "admin", ":1064");
  let admin: ListenAddress | null = null;
  if (adminText !== "off") {
    try {
      admin = parseListenAddress(adminText);
    } catch (e) {
      fail(`--admin: ${(e as Error).message}`);
    }
    if (admin?.kind !== "tcp") fail(`--admin must be HOST:PORT or "off"`);
  }
  const ttl = secondsFlag("controller", p, "lease-ttl", 15);
  if (ttl < 1) fail("--lease-ttl must be at least 1 second");
  return {
    watch,
    kubernetes,
    nats,
    admin: admin as (ListenAddress & { kind: "tcp" }) | null,
    id,
    leaseTtlMs: Math.round(ttl * 1000),
    debounceMs: Math.round(secondsFlag("controller", p, "debounce", 0.05) * 1000),
    extProcTarget: stringFlag(p, "extproc-target", "unix:///run/tollgate/extproc.sock"),
    rlsTarget: stringFlag(p, "rls-target", DEFAULT_RLS_TARGET),
    rateLimitDomain: stringFlag(p, "rate-limit-domain", DEFAULT_RATE_LIMIT_DOMAIN),
    streamReplicas: positiveIntFlag("controller", p, "stream-replicas", 1),
    logLevel: logLevelFlag("controller", p),
  };
}

export function controllerCommand(args: readonly string[]): Promise<number> {
  return runController(controllerOptions(parseFlags("controller", args, CONTROLLER_FLAGS)));
}

/** Runs until SIGTERM/SIGINT; resolves with the exit code. */
export async function runController(o: ControllerCommandOptions): Promise<number> {
  const logger = createLogger({ level: o.logLevel, role: "controller" });
  const stopping = new AbortController();
  const signalled = new Promise<string>((resolve) => {
    for (const s of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(s, () => {
        stopping.abort();
        resolve(s);
      });
    }
  });
  let kubernetes: KubernetesWatcher | undefined;
  if (o.kubernetes) {
    try {
      kubernetes = await kubernetesWatcher();
    } catch (e) {
      console.error(`tollgate controller: ${(e as Error).message}`);
      return 1;
    }
  }
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tollgate_process_" });
  let controller: Controller | undefined;
  const admin = o.admin
    ? await startAdmin({
      listen: o.admin,
      registry,
      notReadyReason: () => controller ? null : "connecting to NATS",
      status: () => controller ? { ...controller.status() } : {},
    }).catch((e) => e as Error)
    : undefined;
  if (admin instanceof Error) {
    console.error(`tollgate controller: ${admin.message}`);
    return 1;
  }
  let link;
  try {
    link = await connectNats(o.nats, {
      signal: stopping.signal,
      onRetry: (err, attempt) => logger.warn({ err, attempt }, "NATS not reachable yet; retrying"),
    });
    controller = await startController({
      link,
      id: o.id,
      paths: o.watch,
      ...(kubernetes ? { kubernetes } : {}),
      env: Deno.env.toObject(),
      compile: {
        extProcTarget: o.extProcTarget,
        rateLimit: { target: o.rlsTarget, domain: o.rateLimitDomain },
        rateLimitDomain: o.rateLimitDomain,
      },
      log: logger,
      registry,
      leaseTtlMs: o.leaseTtlMs,
      debounceMs: o.debounceMs,
      replicas: o.streamReplicas,
    });
  } catch (e) {
    await admin?.shutdown();
    await link?.close();
    if (stopping.signal.aborted) return 0;
    console.error(`tollgate controller: ${(e as Error).message}`);
    return 1;
  }
  logger.info(
    {
      id: o.id,
      watch: o.watch,
      kubernetes: o.kubernetes,
      admin: admin ? formatListenAddress(admin.address) : null,
    },
    "Controller started",
  );
  const signal = await signalled;
  logger.info({ signal }, "Stopping");
  await controller.stop();
  await admin?.shutdown();
  await link.close();
  logger.info({}, "Stopped");
  return 0;
}
