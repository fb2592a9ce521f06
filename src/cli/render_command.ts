// `tollgate render envoy`: the Envoy bootstrap for the same topology the edge serves, for running real Envoy next
// to `tollgate extproc`.
import { type GrpcServiceTls, renderEnvoyYaml } from "../edge/render_envoy.ts";
import type { EdgeConfig } from "../edge/config.ts";
import { formatErrors, loadGatewayConfig } from "../control/gateway_config.ts";
import { type Parsed, stringFlag, UsageError } from "./args.ts";
import { buildRunTopology, providersFromEnv } from "./run_providers.ts";

export const RENDER_FLAGS = {
  out: { type: "string" },
  "extproc-socket": { type: "string" },
  listen: { type: "string" },
  "admin-port": { type: "string" },
  ratelimit: { type: "string" },
  "ratelimit-tls-ca": { type: "string" },
  "ratelimit-tls-server-name": { type: "string" },
  "ratelimit-tls-cert": { type: "string" },
  "ratelimit-tls-key": { type: "string" },
} as const;

export const RENDER_HELP = `Usage: tollgate render envoy [CONFIG.yaml|DIR...] [flags]

Writes an Envoy (>= 1.37.1) bootstrap YAML for the same topology the edge serves: the router-level ext_proc
filter, one upstream-level ext_proc filter per cluster, the Unix-socket ExtProc cluster, routes on x-ai-eg-model,
priorities, retries and token rate limits. From CONFIG (Envoy AI Gateway resources) or, without it, from the
environment as for \`tollgate run\` (OPENAI_API_KEY, OPENAI_BASE_URL). Credentials never appear in it: the
sidecar adds them.

Flags:
  --out FILE               write there instead of stdout
  --extproc-socket PATH    the sidecar's socket (default /run/tollgate/extproc.sock)
  --listen HOST:PORT       Envoy's listener (default 0.0.0.0:1975)
  --admin-port N           Envoy's admin port on 127.0.0.1 (default 9901)
  --ratelimit HOST:PORT    the rate limit service for global limits (default 127.0.0.1:8081)
  --ratelimit-tls-ca F     reach it over TLS (an aggregator with --tls-cert), its certificate checked against the CA
                           in F; paths as Envoy's container sees them
  --ratelimit-tls-server-name NAME   the name its certificate carries (default the host of --ratelimit)
  --ratelimit-tls-cert F, --ratelimit-tls-key F   Envoy's client certificate, for an aggregator with --tls-client-ca
  -h, --help               show this help
`;

export async function renderCommand(p: Parsed): Promise<number> {
  const [what, ...configs] = p.positionals;
  if (what !== "envoy") {
    throw new UsageError(`tollgate render: unknown target ${what === undefined ? "(none)" : `"${what}"`}; use "envoy"`);
  }
  const socket = stringFlag(p, "extproc-socket", "/run/tollgate/extproc.sock");
  if (!socket.startsWith("/")) throw new UsageError("tollgate render: --extproc-socket must be an absolute path");
  const listen = /^(.+):(\d+)$/.exec(stringFlag(p, "listen", "0.0.0.0:1975"));
  if (!listen) throw new UsageError("tollgate render: --listen must be HOST:PORT");
  const adminPort = Number(stringFlag(p, "admin-port", "9901"));
  if (!Number.isInteger(adminPort) || adminPort < 1 || adminPort > 65535) {
    throw new UsageError("tollgate render: --admin-port must be a port number");
  }
  const listener = { host: listen[1]!, port: Number(listen[2]) };
  const notes: string[] = [];
  let edge: EdgeConfig;
  if (configs.length > 0) {
    const loaded = await loadGatewayConfig(configs, {
      extProcTarget: `unix://${socket}`,
      listener,
      env: Deno.env.toObject(),
      accessLog: "stdout",
      rateLimit: { target: stringFlag(p, "ratelimit", "127.0.0.1:8081"), domain: "ai-gateway" },
    });
    if (!loaded.ok) {
      console.error(formatErrors(loaded.errors));
      return 1;
    }
    edge = loaded.edge;
    notes.push(...loaded.notes);
  } else {
    const discovery = providersFromEnv(Deno.env.toObject());
    if (discovery.providers.length === 0) {
      console.error(
        "tollgate render envoy: no provider to route to; give a resources file or set OPENAI_API_KEY (and " +
          "OPENAI_BASE_URL). The demo provider lives inside `tollgate run` and cannot be rendered.",
      );
      return 1;
    }
    notes.push(...discovery.notes);
    edge = buildRunTopology(discovery.providers, {
      listener,
      extProcTarget: `unix://${socket}`,
      listedModels: [],
      accessLog: "stdout",
    }).edge;
  }
  const rateLimitTls = rateLimitTlsOptions(p);
  const yaml = renderEnvoyYaml(edge, {
    extProcSocketPath: socket,
    adminPort,
    ...(rateLimitTls ? { rateLimitTls } : {}),
  });
  const out = stringFlag(p, "out", "");
  if (out) await Deno.writeTextFile(out, yaml);
  else console.log(yaml);
  for (const n of notes) console.error(n);
  return 0;
}

function rateLimitTlsOptions(p: Parsed): GrpcServiceTls | undefined {
  const has = (flag: string) => typeof p.values[flag] === "string";
  if (has("ratelimit-tls-cert") !== has("ratelimit-tls-key")) {
    throw new UsageError("tollgate render: --ratelimit-tls-cert and --ratelimit-tls-key go together");
  }
  if (!has("ratelimit-tls-ca")) {
    const stray = ["ratelimit-tls-server-name", "ratelimit-tls-cert"].find(has);
    if (stray) throw new UsageError(`tollgate render: --${stray} needs --ratelimit-tls-ca`);
    return undefined;
  }
  return {
    caFile: stringFlag(p, "ratelimit-tls-ca", ""),
    ...(has("ratelimit-tls-server-name") ? { serverName: stringFlag(p, "ratelimit-tls-server-name", "") } : {}),
    ...(has("ratelimit-tls-cert")
      ? { certFile: stringFlag(p, "ratelimit-tls-cert", ""), keyFile: stringFlag(p, "ratelimit-tls-key", "") }
      : {}),
  };
}
