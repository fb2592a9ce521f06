// Resource directories for control-plane tests and the config benchmark: one file per model, each an
// AIGatewayRoute, its AIServiceBackend and Backend (pointing at a local port), and optionally an API key policy with
// its Secret, so a test can add, change or break one route by writing one file.
import { loadResources } from "../../src/control/resources/load.ts";
import { compileGateway } from "../../src/control/compile/compile_gateway.ts";
import type { CompiledGateway } from "../../src/control/compile/compiled.ts";
import { formatResourceError } from "../../src/control/resources/errors.ts";
import { Registry } from "prom-client";
import { createLogger, type Logger } from "../../src/observability/logger.ts";
import { systemClock } from "../../src/observability/clock.ts";
import { SidecarConfig } from "../../src/control/bus/sidecar_config.ts";
import { buildSnapshot } from "../../src/control/snapshot.ts";
import { type ConfigSubscriber, startConfigSubscriber } from "../../src/actors/config_subscriber.ts";
import { ExtProcServer } from "../../src/extproc/server.ts";
import { connectNats, type NatsLink } from "../../src/usage/nats_connection.ts";

export interface RouteSpec {
  readonly model: string;
  /** Port of the (fake) provider on 127.0.0.1. */
  readonly port: number;
  /** Adds an APIKey BackendSecurityPolicy naming Secret default/<model>-key, key apiKey. */
  readonly apiKey?: { readonly placeholder: string };
}

export function routeYaml(r: RouteSpec): string {
  const name = r.model.replace(/[^a-z0-9-]/g, "-");
  const docs = [
    `apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: ${name}
  namespace: default
spec:
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: ${r.model}
      backendRefs:
        - name: ${name}
`,
    `apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata:
  name: ${name}
  namespace: default
spec:
  schema:
    name: OpenAI
  backendRef:
    name: ${name}
    kind: Backend
    group: gateway.envoyproxy.io
`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: ${name}
  namespace: default
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: ${r.port}
`,
  ];
  if (r.apiKey) {
    docs.push(
      `apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata:
  name: ${name}-key
  namespace: default
spec:
  targetRefs:
    - group: aigateway.envoyproxy.io
      kind: AIServiceBackend
      name: ${name}
  type: APIKey
  apiKey:
    secretRef:
      name: ${name}-key
`,
      `apiVersion: v1
kind: Secret
metadata:
  name: ${name}-key
  namespace: default
stringData:
  apiKey: ${r.apiKey.placeholder}
`,
    );
  }
  return docs.join("---\n");
}

export function routeFile(dir: string, model: string): string {
  return `${dir}/${model.replace(/[^a-z0-9-]/g, "-")}.yaml`;
}

/** Writes via a temporary file and a rename, as editors and `kubectl cp` do: a reader never sees half a file. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/**
 * writeAtomically without giving the event loop a turn: files written one after the other this way land within the
 * controller's settle time (debounce.ts), so they are one change, as a `cp` of several files is.
 */
export function writeAtomicallySync(path: string, text: string): void {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  Deno.writeTextFileSync(tmp, text);
  Deno.renameSync(tmp, path);
}

export async function writeRoute(dir: string, r: RouteSpec): Promise<void> {
  await writeAtomically(routeFile(dir, r.model), routeYaml(r));
}

/** `n` routes model-0 … model-(n-1), one file each, all pointing at `port`. */
export async function writeRoutes(dir: string, n: number, port: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await Deno.writeTextFile(routeFile(dir, `model-${i}`), routeYaml({ model: `model-${i}`, port }));
  }
}

/** Loads and compiles, failing loudly: for tests that need a CompiledGateway to publish. */
export async function compileDir(paths: readonly string[]): Promise<CompiledGateway> {
  const loaded = await loadResources(paths);
  if (loaded.errors.length > 0) throw new Error(loaded.errors.map(formatResourceError).join("\n"));
  const compiled = compileGateway(loaded.resources, {
    extProcTarget: "unix:///run/tollgate/extproc.sock",
    messageTimeoutMs: 10_000,
    failureModeAllow: false,
    rateLimit: { target: "127.0.0.1:8081", domain: "ai-gateway" },
  });
  if (!compiled.ok) throw new Error(compiled.errors.map(formatResourceError).join("\n"));
  return compiled;
}

/** Resolves with the error `fn` rejects with, checking its class and (part of) its message. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: abstract new (...args: never[]) => E,
  includes?: string,
): Promise<E> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof type)) {
    throw new Error(`Expected a ${type.name}, got ${caught === undefined ? "no error" : String(caught)}`);
  }
  if (includes !== undefined && !caught.message.includes(includes)) {
    throw new Error(`Expected the message to include "${includes}", got "${caught.message}"`);
  }
  return caught;
}

/** A logger whose JSON lines land in `lines` (tests read what was logged). */
export function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    level: "debug",
    destination: { write: (s: string) => void lines.push(JSON.parse(s)) },
  });
  return { log, lines };
}

export interface SubscribedSidecar extends AsyncDisposable {
  readonly config: SidecarConfig;
  readonly subscriber: ConfigSubscriber;
  readonly server: ExtProcServer;
  readonly socketPath: string;
  readonly lines: Record<string, unknown>[];
  close(): Promise<void>;
}

/** An ExtProc server whose config comes over NATS, as `tollgate extproc --nats` runs it. */
export async function startSubscribedSidecar(o: {
  natsUrl: string;
  dir: string;
  name: string;
  cacheFile?: string;
  secretsDir?: string;
}): Promise<SubscribedSidecar> {
  const { log, lines } = capturingLogger();
  const config = new SidecarConfig({
    initial: buildSnapshot(0, { models: [] }),
    env: {},
    clock: systemClock,
    log,
    secretsPollMs: 200,
    ...(o.secretsDir ? { secretsDir: o.secretsDir } : {}),
  });
  const links: NatsLink[] = [];
  const registry = new Registry();
  const subscriber = startConfigSubscriber({
    connect: async (signal) => {
      const link = await connectNats({ servers: o.natsUrl, name: o.name, reconnectWaitMs: 200 }, { signal });
      links.push(link);
      return link;
    },
    apply: config.apply,
    log,
    registry,
    retryMs: 200,
    ...(o.cacheFile ? { cacheFile: o.cacheFile } : {}),
  });
  const socketPath = `${o.dir}/${o.name}.sock`;
  const server = new ExtProcServer({
    listen: { kind: "unix", path: socketPath },
    snapshot: config.current,
    logger: log,
    registry,
  });
  await server.start();
  const close = async () => {
    await subscriber.stop();
    await server.close();
    config[Symbol.dispose]();
    for (const l of links) await l.close();
  };
  return { config, subscriber, server, socketPath, lines, close, [Symbol.asyncDispose]: close };
}
