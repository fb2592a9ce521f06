// `tollgate run`: the whole gateway in one process — the edge on :1975, the ExtProc server on a Unix socket, and
// (without any provider configured) the built-in demo provider — with one admin port.
import { collectDefaultMetrics, Registry } from "prom-client";
import { ExtProcServer } from "../extproc/server.ts";
import { formatListenAddress, type ListenAddress, parseListenAddress } from "../extproc/listen_address.ts";
import { startAdmin } from "../admin/server.ts";
import { createLogger } from "../observability/logger.ts";
import { systemClock } from "../observability/clock.ts";
import { EdgeServer } from "../edge/edge_server.ts";
import { listenEdge } from "../edge/listen.ts";
import { accessLogSink } from "../edge/access_log.ts";
import { startEchoProvider } from "../demo/echo_provider.ts";
import { DEMO_MODEL } from "../control/snapshot.ts";
import { listFlag, logLevelFlag, type Parsed, secondsFlag, stringFlag, UsageError } from "./args.ts";
import { buildRunTopology, providersFromEnv, type RunTopology } from "./run_providers.ts";
import { DEFAULT_RATE_LIMIT_DOMAIN, formatErrors, loadGatewayConfig } from "../control/gateway_config.ts";
import { type LocalRateLimits, startLocalRateLimits, startNatsRateLimits } from "./run_rate_limits.ts";
import { RateLimitFilter } from "../edge/rate_limit_filter.ts";
import type { UsageEvent } from "../usage/usage_event.ts";
import { hostname } from "node:os";
import { displayNatsServers, type NatsLink } from "../usage/nats_connection.ts";
import { routingServices } from "../routing/routing_services.ts";
import { startUsageSink, type UsageSink } from "../usage/usage_sink.ts";
import { sharedNatsLink } from "../usage/nats_connection.ts";
import { NATS_FLAGS, NATS_HELP, natsOptions } from "./nats_flags.ts";
import { USAGE_SPOOL_FLAGS, USAGE_SPOOL_HELP, usageSpoolOptions } from "./usage_spool_flags.ts";
import { connectSidecarNats } from "./extproc_command.ts";
import { OBSERVABILITY_FLAGS, OBSERVABILITY_HELP, observabilityOptions, startTracing } from "./observability_flags.ts";
import { registerConfigRevision } from "../observability/config_metrics.ts";
import { EdgeMetrics } from "../edge/edge_metrics.ts";
import { runDashboard } from "../observability/dashboard/dashboard_roles.ts";

export const RUN_FLAGS = {
  listen: { type: "string" },
  admin: { type: "string" },
  "access-log": { type: "string" },
  model: { type: "string", multiple: true },
  ...NATS_FLAGS,
  ...USAGE_SPOOL_FLAGS,
  ...OBSERVABILITY_FLAGS,
  grace: { type: "string" },
  "log-level": { type: "string" },
} as const;

export const RUN_HELP = `Usage: tollgate run [CONFIG.yaml|DIR...] [flags]

Runs the whole gateway in one process: the Envoy-compatible edge, the ExtProc server on a Unix socket and,
when no provider is configured, a built-in demo provider (an OpenAI-compatible echo model that also streams).

With CONFIG (Envoy AI Gateway resources, as \`tollgate validate\` reads them) it serves exactly those routes.
Without it, providers come from the environment: OPENAI_API_KEY (and OPENAI_BASE_URL for any OpenAI-compatible
server: vLLM, Ollama, Groq, Mistral, DeepSeek…), AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT (and
AZURE_OPENAI_API_VERSION; model = deployment), ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL). OpenAI clients reach
the first of these for any model, the others for the models listed in TOLLGATE_AZURE_MODELS /
TOLLGATE_ANTHROPIC_MODELS; Anthropic clients (/anthropic/v1/messages) reach Anthropic.

Flags:
  --listen HOST:PORT    where the edge serves HTTP (default 127.0.0.1:1975; use 0.0.0.0:1975 to expose it)
  --admin HOST:PORT     admin port: dashboard /, /metrics, /healthz, /readyz (default 127.0.0.1:1064; "off" disables it)
  --access-log DEST     one JSON line per request to "stdout" (default), a file path, or "off"
  --model NAME          a model to list on /v1/models besides the configured ones (repeatable)
  --grace SECONDS       on SIGTERM, how long requests in flight may finish (default 15)
  --log-level LEVEL     trace, debug, info, warn, error (default info)
  -h, --help            show this help

With --nats, usage takes the production path: every request's usage event is published to NATS JetStream (spooled
locally while NATS is down) and the rate limits are served by an aggregator replica in this process folding the
usage stream, so several \`run\` processes or aggregators on one NATS share exact counters. Without it, usage is
folded in memory.
${NATS_HELP}
${USAGE_SPOOL_HELP}

Observability (metrics are always on the admin port):
${OBSERVABILITY_HELP}
`;

function tcp(command: string, flag: string, text: string): ListenAddress & { kind: "tcp" } {
  let a: ListenAddress;
  try {
    a = parseListenAddress(text);
  } catch (e) {
    throw new UsageError(`tollgate ${command}: --${flag}: ${(e as Error).message}`);
  }
  if (a.kind !== "tcp") throw new UsageError(`tollgate ${command}: --${flag} must be HOST:PORT`);
  return a;
}

export async function runGateway(p: Parsed): Promise<number> {
  const listen = tcp("run", "listen", stringFlag(p, "listen", "127.0.0.1:1975"));
  const adminText = stringFlag(p, "admin", "127.0.0.1:1064");
  const admin = adminText === "off" ? null : tcp("run", "admin", adminText);
  const graceSeconds = secondsFlag("run", p, "grace", 15);
  const accessLog = stringFlag(p, "access-log", "stdout");
  const natsConnect = natsOptions("run", p, `tollgate-run-${hostname()}-${listen.port}`);
  const spoolOptions = usageSpoolOptions("run", p, `usage-run-${listen.port}.spool`);
  const logger = createLogger({ level: logLevelFlag("run", p), role: "run" });
  const observability = observabilityOptions("run", p, Deno.env.toObject());
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tollgate_process_" });

  const dir = await Deno.makeTempDir({ prefix: "tollgate-run-" });
  const nats = natsConnect ? sharedNatsLink((signal) => connectSidecarNats(natsConnect, logger, signal)) : undefined;
  // Semantic routing's services: a `backend: nats` semantic cache is shared by every sidecar through NATS KV.
  const natsConnection = nats?.get().then((l) => l.nc);
  // Refused credentials end the dialling (connectSidecarNats logs it); the cache only looks at this when it opens.
  natsConnection?.catch(() => {});
  const routing = routingServices({ logger, ...(natsConnection ? { nats: natsConnection } : {}) });
  let usage: UsageSink | undefined;
  try {
    usage = nats ? startUsageSink({ connect: nats.get, spool: spoolOptions.spool, registry, logger }) : undefined;
  } catch (e) {
    console.error(`tollgate run: ${(e as Error).message}`);
    await nats?.close();
    await Deno.remove(dir, { recursive: true });
    return 1;
  }
  const socket = `${dir}/extproc.sock`;
  const listener = { host: listen.host, port: listen.port };
  const logTo = accessLog === "off" ? {} : { accessLog };
  let echo: Awaited<ReturnType<typeof startEchoProvider>> | undefined;
  let topology: RunTopology;
  let limits: LocalRateLimits | undefined;
  const notes: string[] = [];
  if (nats) notes.push(`Usage events go to NATS JetStream at ${displayNatsServers(natsConnect!.servers)}`);
  if (p.positionals.length > 0) {
    // Resource files: exactly what the controller would compile, served on this machine.
    const loaded = await loadGatewayConfig(p.positionals, {
      extProcTarget: `unix://${socket}`,
      listener,
      env: Deno.env.toObject(),
      rateLimit: { target: `unix://${dir}/rls.sock`, domain: DEFAULT_RATE_LIMIT_DOMAIN },
      ...logTo,
    });
    if (!loaded.ok) {
      console.error(formatErrors(loaded.errors));
      console.error(`tollgate run: ${loaded.errors.length} error(s) in the configuration`);
      await Deno.remove(dir, { recursive: true });
      return 1;
    }
    topology = { edge: loaded.edge, snapshot: loaded.snapshot };
    notes.push(`Serving ${p.positionals.join(", ")}`, ...loaded.notes);
    if (loaded.compiled.rateLimitRules.length > 0 && nats) {
      let link: NatsLink;
      try {
        link = await nats.get();
      } catch (e) {
        console.error(`tollgate run: ${(e as Error).message}`);
        await nats.close();
        await Deno.remove(dir, { recursive: true });
        return 1;
      }
      limits = await startNatsRateLimits(loaded.compiled, {
        socketPath: `${dir}/rls.sock`,
        domain: DEFAULT_RATE_LIMIT_DOMAIN,
        logger,
        registry,
        link,
        replica: `run-${hostname()}-${listen.port}`.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64),
      });
      notes.push(
        `${loaded.compiled.rateLimitRules.length} rate-limit rule(s) enforced by an aggregator replica on NATS`,
      );
    } else if (loaded.compiled.rateLimitRules.length > 0) {
      limits = await startLocalRateLimits(loaded.compiled, {
        socketPath: `${dir}/rls.sock`,
        domain: DEFAULT_RATE_LIMIT_DOMAIN,
        logger,
      });
      notes.push(`${loaded.compiled.rateLimitRules.length} rate-limit rule(s) enforced in process`);
    }
  } else {
    const discovery = providersFromEnv(Deno.env.toObject());
    echo = discovery.demo ? await startEchoProvider([DEMO_MODEL]) : undefined;
    const providers = echo
      ? [{
        name: "default/demo-echo",
        schema: { name: "OpenAI" as const },
        models: [DEMO_MODEL],
        endpoint: { host: "127.0.0.1", port: echo.port, tls: false },
      }]
      : discovery.providers;
    topology = buildRunTopology(providers, {
      listener,
      extProcTarget: `unix://${socket}`,
      listedModels: listFlag(p, "model"),
      ...logTo,
    });
    notes.push(...discovery.notes);
    if (echo) notes.push(`No provider configured: routing "${DEMO_MODEL}" to the built-in demo provider (it echoes).`);
  }
  const usagePath = usage ? "NATS JetStream" : "in process";
  const dashboard = admin
    ? runDashboard({ snapshot: () => topology.snapshot, core: () => limits?.core, usagePath })
    : undefined;
  const tracing = startTracing(observability, "run", logger);
  registerConfigRevision(registry, () => topology.snapshot.revision);
  const extproc = new ExtProcServer({
    listen: { kind: "unix", path: socket },
    snapshot: () => topology.snapshot,
    logger,
    registry,
    ...(observability.tenant ? { metricsTenant: observability.tenant } : {}),
    ...(tracing ? { tracing } : {}),
    routing,
    onUsage: (e: UsageEvent) => {
      dashboard?.recordUsage(e);
      if (usage) usage.publish(e);
      else limits?.apply(e);
    },
  });
  await extproc.start();
  const rateLimiter = limits
    ? new RateLimitFilter({
      domain: limits.domain,
      target: limits.target,
      timeoutMs: 200,
      failureModeDeny: false,
      enableXRateLimitHeaders: true,
    }, { clock: systemClock, logger })
    : undefined;
  const edgeAccessLog = topology.edge.accessLog ? accessLogSink(topology.edge.accessLog) : undefined;
  const edgeLog = dashboard ? dashboard.accessLog(edgeAccessLog) : edgeAccessLog;
  const edge = new EdgeServer(topology.edge, {
    clock: systemClock,
    logger,
    metrics: new EdgeMetrics(registry, { tenant: observability.tenant }),
    ...(rateLimiter ? { rateLimiter } : {}),
    ...(edgeLog ? { accessLog: edgeLog } : {}),
  });
  const http = await listenEdge(edge, listen.host, listen.port);
  const adminServer = admin
    ? await startAdmin({
      listen: admin,
      registry,
      notReadyReason: () => (extproc.ready ? null : "draining"),
      status: () => ({ configRevision: topology.snapshot.revision }),
      ...(dashboard ? { dashboard } : {}),
    })
    : undefined;

  const url = `http://${listen.host === "0.0.0.0" ? "127.0.0.1" : listen.host}:${http.port}`;
  const model = topology.snapshot.models[0]?.id ?? "gpt-4o-mini";
  logger.info(
    { url, extproc: `unix://${socket}`, admin: adminServer ? formatListenAddress(adminServer.address) : null },
    "Tollgate gateway listening",
  );
  console.error(
    [
      ``,
      `Tollgate is serving an OpenAI-compatible API on ${url}/v1`,
      ...notes.map((n) => `  ${n}`),
      adminServer ? `  Dashboard: http://${formatListenAddress(adminServer.address)}/` : "",
      adminServer ? `  Metrics and health: http://${formatListenAddress(adminServer.address)}/metrics` : "",
      ``,
      `Try it:`,
      `  curl ${url}/v1/chat/completions -H 'content-type: application/json' \\`,
      `    -d '{"model":"${model}","messages":[{"role":"user","content":"Hello, Tollgate!"}]}'`,
      ``,
    ].filter((l) => l !== "").join("\n") + "\n",
  );

  const signal = await new Promise<string>((resolve) => {
    for (const s of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(s, () => resolve(s));
  });
  logger.info({ signal, graceSeconds }, "Draining");
  const stopped = http.shutdown();
  await Promise.race([stopped, new Promise((r) => setTimeout(r, graceSeconds * 1000))]);
  await extproc.drain(graceSeconds * 1000);
  await tracing?.shutdown();
  rateLimiter?.close();
  await usage?.close();
  await limits?.[Symbol.asyncDispose]();
  await routing.close();
  await nats?.close();
  await adminServer?.shutdown();
  await echo?.shutdown();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  logger.info({}, "Stopped");
  return 0;
}
