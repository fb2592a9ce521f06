// A real nats-server (the Debian package) for tests: one node or a JetStream cluster, on free ports on 127.0.0.1,
// with its store in a temporary directory. Never the machine's own server on :4222.
//
//   await using ns = await NatsServer.start({ jetstream: true });
//   await using cluster = await NatsCluster.start(3);
//   await using secure = await NatsServer.start({ users: [{ nkey: "UA…" }], tls: { certFile, keyFile, caFile, verify: true } });
//
// Ready means the monitoring endpoint /healthz answers ok: the client port is open and, with JetStream, the
// server's JetStream (in a cluster: contact with the meta leader) is usable. Every wait has a deadline.
export const NATS_SERVER_BIN = "/usr/sbin/nats-server";

const READY_TIMEOUT_MS = 20_000;
const EXIT_TIMEOUT_MS = 15_000;

export interface NatsServerOptions {
  /** Enable JetStream with a store in the server's temporary directory (default true). */
  readonly jetstream?: boolean;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /**
   * Users of the config file's `authorization { users = [...] }`: with a password, or nkey users by their public
   * key ("U…"). Not together with `user`/`pass` or `token` (nats-server takes one kind of authorization).
   */
  readonly users?: readonly NatsUser[];
  /** TLS on the client port (the monitoring port stays plain HTTP, so readiness checks work as before). */
  readonly tls?: NatsServerTls;
}

export type NatsUser = { readonly user: string; readonly password: string } | { readonly nkey: string };

export interface NatsServerTls {
  /** PEM files of the server's certificate and key. */
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA that client certificates must chain to (with `verify`). */
  readonly caFile?: string;
  /** Require a client certificate signed by `caFile` (mutual TLS). */
  readonly verify?: boolean;
}

/** A nats-server config file for what the command line cannot say (users with nkeys, TLS). */
function configFile(o: NatsServerOptions): string | undefined {
  if (!o.users && !o.tls) return undefined;
  if (o.users && (o.user !== undefined || o.pass !== undefined || o.token !== undefined)) {
    throw new Error("Cannot start nats-server: give users, or user/pass, or token, not several");
  }
  const q = (s: string) => JSON.stringify(s);
  const lines: string[] = [];
  if (o.users) {
    const entries = o.users.map((u) =>
      "nkey" in u ? `    { nkey: ${q(u.nkey)} }` : `    { user: ${q(u.user)}, password: ${q(u.password)} }`
    );
    lines.push("authorization {", "  users = [", ...entries, "  ]", "}");
  }
  if (o.tls) {
    lines.push(
      "tls {",
      `  cert_file: ${q(o.tls.certFile)}`,
      `  key_file: ${q(o.tls.keyFile)}`,
      ...(o.tls.caFile !== undefined ? [`  ca_file: ${q(o.tls.caFile)}`] : []),
      `  verify: ${o.tls.verify === true}`,
      "  timeout: 2",
      "}",
    );
  }
  return lines.join("\n") + "\n";
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function pollUntil<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  { timeoutMs = 10_000, intervalMs = 20 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`, last ? { cause: last } : undefined);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Ports that were free a moment ago (bound to 0 and released). */
export function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

async function healthy(monitorPort: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz`, { signal: AbortSignal.timeout(2000) });
  const body = await res.text();
  return res.ok && body.includes('"ok"');
}

/** One nats-server process. Its ports and store survive `stop`/`kill` + `restart`. */
export class NatsServer implements AsyncDisposable {
  readonly name: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly url: string;
  readonly dir: string;
  readonly logFile: string;
  readonly #args: string[];
  readonly #ownsDir: boolean;
  #child: Deno.ChildProcess | undefined;
  #stderr: Promise<string> = Promise.resolve("");

  /** @internal Use NatsServer.start or NatsCluster.start. */
  constructor(o: { name: string; port: number; monitorPort: number; dir: string; args: string[]; ownsDir: boolean }) {
    this.name = o.name;
    this.port = o.port;
    this.monitorPort = o.monitorPort;
    this.url = `nats://127.0.0.1:${o.port}`;
    this.dir = o.dir;
    this.logFile = `${o.dir}/${o.name}.log`;
    this.#args = [...o.args, "-l", this.logFile];
    this.#ownsDir = o.ownsDir;
  }

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const dir = await Deno.makeTempDir({ prefix: "tollgate-nats-" });
    try {
      // Ports are picked before the server binds them; if another process takes one in between, pick again.
      for (let attempt = 1;; attempt++) {
        const [port, monitorPort] = freePorts(2) as [number, number];
        const args = ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort), "-n", "single"];
        const config = configFile(options);
        if (config !== undefined) {
          await Deno.writeTextFile(`${dir}/single.conf`, config);
          args.push("-c", `${dir}/single.conf`);
        }
        if (options.jetstream ?? true) args.push("-js", "-sd", `${dir}/store`);
        if (options.user !== undefined) args.push("--user", options.user);
        if (options.pass !== undefined) args.push("--pass", options.pass);
        if (options.token !== undefined) args.push("--auth", options.token);
        const server = new NatsServer({ name: "single", port, monitorPort, dir, args, ownsDir: true });
        try {
          await server.#spawnAndWait();
          return server;
        } catch (err) {
          if (attempt >= 3 || !server.logTail().includes("address already in use")) throw err;
        }
      }
    } catch (err) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** The process id of the running server (for tests that signal it themselves). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** @internal Spawns without waiting; a cluster starts every node before any can be ready. */
  spawn(): void {
    if (this.#child) throw new Error(`Cannot start nats-server ${this.name}: it is already running`);
    const child = new Deno.Command(NATS_SERVER_BIN, {
      args: this.#args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#stderr = new Response(child.stderr).text();
  }

  /** @internal Resolves when /healthz answers ok; fails if the process exits or the deadline passes. */
  async waitReady(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const child = this.#child;
    if (!child) throw new Error(`Cannot wait for nats-server ${this.name}: it is not running`);
    let exited: number | undefined;
    child.status.then((s) => exited = s.code);
    const deadline = Date.now() + timeoutMs;
    let why = "";
    for (;;) {
      if (exited !== undefined) {
        await this.#reap();
        why = `it exited with code ${exited}`;
        break;
      }
      try {
        if (await healthy(this.monitorPort)) return;
        why = "/healthz did not answer ok";
      } catch (err) {
        why = `/healthz: ${(err as Error).message}`;
      }
      if (Date.now() >= deadline) {
        why = `timed out after ${timeoutMs} ms (${why})`;
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`nats-server ${this.name} did not become ready: ${why}\n${await this.#diagnostics()}`);
  }

  async #spawnAndWait(): Promise<void> {
    this.spawn();
    try {
      await this.waitReady();
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** SIGTERM, then waits for the process to exit. */
  stop(): Promise<void> {
    return this.#signal("SIGTERM");
  }

  /** SIGKILL (no shutdown work at all), then waits for the process to exit. */
  kill(): Promise<void> {
    return this.#signal("SIGKILL");
  }

  /** Starts again on the same ports with the same store, stopping it first if it runs. */
  async restart(): Promise<void> {
    if (this.#child) await this.stop();
    await this.#spawnAndWait();
  }

  logTail(lines = 40): string {
    try {
      return Deno.readTextFileSync(this.logFile).trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
    if (this.#ownsDir) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  async #signal(signal: Deno.Signal): Promise<void> {
    const child = this.#child;
    if (!child) return;
    try {
      child.kill(signal);
    } catch { /* already exited */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), EXIT_TIMEOUT_MS));
    const outcome = await Promise.race([child.status, timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      try {
        child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await this.#reap();
    if (outcome === "timeout") throw new Error(`nats-server ${this.name} did not exit within ${EXIT_TIMEOUT_MS} ms`);
  }

  async #reap(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    await child.status;
    await this.#stderr;
    this.#child = undefined;
  }

  async #diagnostics(): Promise<string> {
    const stderr = this.#child ? "" : (await this.#stderr).trim();
    return [stderr && `stderr: ${stderr}`, `log tail:\n${this.logTail()}`].filter(Boolean).join("\n");
  }
}

/** A JetStream cluster of `size` nodes (routes between all of them), one store directory per node. */
export class NatsCluster implements AsyncDisposable {
  readonly nodes: readonly NatsServer[];
  readonly dir: string;

  private constructor(nodes: NatsServer[], dir: string) {
    this.nodes = nodes;
    this.dir = dir;
  }

  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  node(i: number): NatsServer {
    const n = this.nodes[i];
    if (!n) throw new Error(`Cluster has no node ${i}: it has ${this.nodes.length}`);
    return n;
  }

  /** The node whose server_name is `name` (as JetStream reports leaders and replicas). */
  byName(name: string): NatsServer {
    const n = this.nodes.find((node) => node.name === name);
    if (!n) throw new Error(`Cluster has no node named "${name}"`);
    return n;
  }

  /** The server_name of the JetStream meta leader, as a running node's /jsz reports it. */
  async metaLeader(): Promise<string | undefined> {
    for (const n of this.nodes.filter((node) => node.running)) {
      try {
        const res = await fetch(`http://127.0.0.1:${n.monitorPort}/jsz`);
        const leader = ((await res.json()) as { meta_cluster?: { leader?: string } }).meta_cluster?.leader;
        if (leader) return leader;
      } catch { /* try the next node */ }
    }
    return undefined;
  }

  static async start(size = 3): Promise<NatsCluster> {
    const dir = await Deno.makeTempDir({ prefix: "tollgate-nats-cluster-" });
    try {
      // As for one server: a port taken between picking and binding means a fresh set of ports.
      for (let attempt = 1;; attempt++) {
        const nodes = await NatsCluster.#configure(size, dir);
        try {
          for (const n of nodes) n.spawn();
          await Promise.all(nodes.map((n) => n.waitReady()));
          return new NatsCluster(nodes, dir);
        } catch (err) {
          await Promise.all(nodes.map((n) => n.kill()));
          if (attempt >= 3 || !nodes.some((n) => n.logTail().includes("address already in use"))) throw err;
          for (const n of nodes) {
            for (const path of [`${dir}/${n.name}`, n.logFile]) {
              await Deno.remove(path, { recursive: true }).catch(() => {});
            }
          }
        }
      }
    } catch (err) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /** One config file per node: client, monitoring and cluster ports, routes to every other node, its own store. */
  static async #configure(size: number, dir: string): Promise<NatsServer[]> {
    const ports = freePorts(size * 3);
    const at = (i: number, k: number) => ports[i * 3 + k] as number;
    const routes = Array.from({ length: size }, (_, i) => `nats-route://127.0.0.1:${at(i, 2)}`);
    const nodes: NatsServer[] = [];
    for (let i = 0; i < size; i++) {
      const name = `n${i + 1}`;
      const config = `${dir}/${name}.conf`;
      await Deno.writeTextFile(
        config,
        [
          `server_name: ${name}`,
          `listen: "127.0.0.1:${at(i, 0)}"`,
          `http: "127.0.0.1:${at(i, 1)}"`,
          `jetstream { store_dir: "${dir}/${name}" }`,
          `cluster {`,
          `  name: tollgate-test`,
          `  listen: "127.0.0.1:${at(i, 2)}"`,
          `  routes: [ ${routes.filter((_, j) => j !== i).map((r) => `"${r}"`).join(", ")} ]`,
          `}`,
          "",
        ].join("\n"),
      );
      nodes.push(
        new NatsServer({ name, port: at(i, 0), monitorPort: at(i, 1), dir, args: ["-c", config], ownsDir: false }),
      );
    }
    return nodes;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
