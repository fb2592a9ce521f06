// The admin port of every role: Prometheus /metrics, liveness /healthz, readiness /readyz.
import type { Registry } from "prom-client";
import { formatListenAddress, type ListenAddress } from "../extproc/listen_address.ts";

export interface AdminOptions {
  readonly listen: ListenAddress & { kind: "tcp" };
  readonly registry: Registry;
  /** Readiness: null when ready, otherwise why not. */
  readonly notReadyReason: () => string | null;
  /** Extra facts for /readyz (e.g. the applied config revision). */
  readonly status?: () => Record<string, unknown>;
  /** The live dashboard (src/observability/dashboard/): answers `/`, `/dashboard` and `/dashboard/data`. */
  readonly dashboard?: { readonly handle: (req: Request) => Response | undefined };
}

export interface AdminServer extends AsyncDisposable {
  readonly address: ListenAddress & { kind: "tcp" };
  shutdown(): Promise<void>;
}

export function startAdmin(o: AdminOptions): Promise<AdminServer> {
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: o.listen.host,
        port: o.listen.port,
        onListen: (addr) => {
          const address = { kind: "tcp" as const, host: o.listen.host, port: (addr as Deno.NetAddr).port };
          resolve({
            address,
            shutdown: () => server.shutdown(),
            [Symbol.asyncDispose]: () => server.shutdown(),
          });
        },
        onError: () => new Response("Internal error\n", { status: 500 }),
      }, (req) => handle(o, req));
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      reject(new Error(`Cannot listen on ${formatListenAddress(o.listen)} for the admin port: ${why}`));
    }
  });
}

async function handle(o: AdminOptions, req: Request): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (req.method !== "GET" && req.method !== "HEAD") return new Response("Method not allowed\n", { status: 405 });
  const page = o.dashboard?.handle(req);
  if (page) return page;
  switch (path) {
    case "/metrics":
      return new Response(await o.registry.metrics(), { headers: { "content-type": o.registry.contentType } });
    case "/healthz":
      return new Response("ok\n");
    case "/readyz": {
      const reason = o.notReadyReason();
      const body = JSON.stringify({ ready: reason === null, ...(reason ? { reason } : {}), ...o.status?.() });
      return new Response(body + "\n", {
        status: reason === null ? 200 : 503,
        headers: { "content-type": "application/json" },
      });
    }
    default:
      return new Response("Not found: try /metrics, /healthz or /readyz\n", { status: 404 });
  }
}
