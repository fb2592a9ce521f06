// Starts a real ExtProcServer on TCP or a Unix socket for a test, with a client connected to it.
import { Registry } from "prom-client";
import { ExtProcServer, type ExtProcServerOptions } from "../../src/extproc/server.ts";
import { formatListenAddress, type ListenAddress } from "../../src/extproc/listen_address.ts";
import { defaultSnapshot } from "../../src/control/snapshot.ts";
import { silentLogger } from "../../src/observability/logger.ts";
import { ExtProcTestClient } from "./extproc_client.ts";

export interface ExtProcFixture extends AsyncDisposable {
  readonly server: ExtProcServer;
  readonly client: ExtProcTestClient;
  readonly registry: Registry;
  readonly target: string;
}

export async function startExtProc(
  transport: "tcp" | "unix" = "tcp",
  options: Partial<ExtProcServerOptions> = {},
): Promise<ExtProcFixture> {
  const dir = transport === "unix" ? await Deno.makeTempDir({ prefix: "tollgate-test-" }) : undefined;
  const listen: ListenAddress = dir
    ? { kind: "unix", path: `${dir}/extproc.sock` }
    : { kind: "tcp", host: "127.0.0.1", port: 0 };
  const registry = new Registry();
  const server = new ExtProcServer({
    listen,
    snapshot: () => defaultSnapshot(["gpt-4o-mini", "tollgate-echo"]),
    logger: silentLogger(),
    registry,
    ...options,
  });
  const bound = await server.start();
  const target = formatListenAddress(bound);
  const client = new ExtProcTestClient(target);
  return {
    server,
    client,
    registry,
    target,
    async [Symbol.asyncDispose]() {
      client.close();
      await server.close();
      if (dir) await Deno.remove(dir, { recursive: true });
    },
  };
}
