// Serves an EdgeServer with Deno's HTTP server (HTTP/1.1 downstream, as Envoy's listener does by default).
import type { EdgeServer } from "./edge_server.ts";

export interface EdgeListener extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  shutdown(): Promise<void>;
}

export function listenEdge(edge: EdgeServer, host: string, port: number): Promise<EdgeListener> {
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: host,
        port,
        onListen: (addr) => {
          const bound = (addr as Deno.NetAddr).port;
          const shutdown = async () => {
            await server.shutdown();
            edge.close();
          };
          resolve({ host, port: bound, shutdown, [Symbol.asyncDispose]: shutdown });
        },
        onError: () => new Response(null, { status: 500 }),
      }, (req) => edge.handle(req));
    } catch (e) {
      reject(new Error(`Cannot listen on ${host}:${port} for the edge: ${e instanceof Error ? e.message : String(e)}`));
    }
  });
}
