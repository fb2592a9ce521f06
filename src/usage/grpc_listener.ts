// A listener for a grpc-js server that owns its sockets (grpc-js's connection injector), so that each connection
// writes what HTTP/2 gives it in one go.
//
// Why: Deno's node:http2 hands every frame nghttp2 produces to the socket as its own write, and every write of
// Deno's node:net is an op and a send(2): a unary call's answer (HEADERS, DATA, then trailers) cost three of each,
// about a fifth of the rate limit service's CPU per check. Here a socket is corked at its first write of a turn of
// the event loop and uncorked in a microtask, so the frames written in one synchronous run leave in one write
// (node:stream hands corked chunks to the socket's writev together). Nothing is held past the current macrotask, so
// no latency is added, and write callbacks still come after the data is written.
import * as net from "node:net";
import { setImmediate } from "node:timers";
import type * as grpc from "@grpc/grpc-js";
import { formatListenAddress, type ListenAddress } from "../extproc/listen_address.ts";
import type { Logger } from "../observability/logger.ts";

export interface GrpcListener {
  /** The address bound (a TCP port 0 resolved). */
  readonly address: ListenAddress;
  /** Stops accepting and closes the connections grpc-js holds. */
  close(): Promise<void>;
}

/** Listens on `listen` for `server` (which must not bind by itself) with `credentials`. */
export async function listenGrpc(
  server: grpc.Server,
  listen: ListenAddress,
  credentials: grpc.ServerCredentials,
  log: Logger,
): Promise<GrpcListener> {
  const injector = server.createConnectionInjector(credentials);
  const sockets = new Set<net.Socket>();
  const listener = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    coalesceWrites(socket);
    injector.injectConnection(socket);
  });
  const where = formatListenAddress(listen);
  await new Promise<void>((resolve, reject) => {
    listener.once("error", (err) => reject(new Error(`Cannot listen on ${where}: ${err.message}`)));
    if (listen.kind === "unix") listener.listen(listen.path, resolve);
    else listener.listen(listen.port, listen.host, resolve);
  });
  // Past listening, an error (a failed accept) is logged; the listener goes on.
  listener.removeAllListeners("error");
  listener.on("error", (err) => log.warn({ err, address: where }, "gRPC listener error"));
  const bound = listener.address();
  const address: ListenAddress = listen.kind === "tcp" && bound !== null && typeof bound === "object"
    ? { ...listen, port: bound.port }
    : listen;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        injector.destroy();
        for (const socket of sockets) socket.destroy();
        listener.close(() => resolve());
      }),
  };
}

/** Corks the socket at its first write in a synchronous run and uncorks it in a microtask. */
function coalesceWrites(socket: net.Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: net.Socket, ...args: Parameters<net.Socket["write"]>) {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    return write.apply(this, args);
  } as net.Socket["write"];
}
