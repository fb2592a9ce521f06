import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { assertEquals } from "../../test/support/assert.ts";
import { silentLogger } from "../observability/logger.ts";
import { formatListenAddress, type ListenAddress } from "../extproc/listen_address.ts";
import { listenGrpc } from "./grpc_listener.ts";

const echo = {
  path: "/test.Echo/Echo",
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
} as const;

/** An echo server on `listen` through listenGrpc; answers `calls` concurrent calls of growing sizes and checks them. */
async function echoes(listen: ListenAddress, calls: number): Promise<void> {
  const server = new grpc.Server();
  server.addService({ Echo: echo }, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
  });
  const listener = await listenGrpc(server, listen, grpc.ServerCredentials.createInsecure(), silentLogger());
  const client = new grpc.Client(formatListenAddress(listener.address), grpc.credentials.createInsecure());
  try {
    // Sizes from a few bytes to past the socket's high-water mark, so corked writes also meet back-pressure.
    const payloads = Array.from({ length: calls }, (_, i) => Buffer.alloc(1 + ((i * 7919) % 200_000), i % 251));
    const answers = await Promise.all(
      payloads.map((p) =>
        new Promise<Buffer>((resolve, reject) =>
          client.makeUnaryRequest(echo.path, echo.requestSerialize, echo.responseDeserialize, p, (err, res) => {
            if (err || !res) reject(err ?? new Error("no answer"));
            else resolve(res);
          })
        )
      ),
    );
    answers.forEach((a, i) => assertEquals(Buffer.compare(a, payloads[i]!), 0, `answer ${i}`));
  } finally {
    client.close();
    await listener.close();
    server.forceShutdown();
  }
}

Deno.test("listenGrpc serves a grpc-js server on TCP: many concurrent calls, small and large, all answered intact", async () => {
  await echoes({ kind: "tcp", host: "127.0.0.1", port: 0 }, 300);
});

Deno.test("listenGrpc serves a grpc-js server on a Unix socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-grpc-listener-" });
  try {
    await echoes({ kind: "unix", path: `${dir}/echo.sock` }, 50);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listenGrpc reports an address in use as a listen error", async () => {
  const first = await listenGrpc(
    new grpc.Server(),
    { kind: "tcp", host: "127.0.0.1", port: 0 },
    grpc.ServerCredentials.createInsecure(),
    silentLogger(),
  );
  try {
    const taken = first.address;
    let message = "";
    await listenGrpc(new grpc.Server(), taken, grpc.ServerCredentials.createInsecure(), silentLogger()).then(
      (l) => l.close(),
      (err: Error) => message = err.message,
    );
    assertEquals(message.startsWith(`Cannot listen on ${formatListenAddress(taken)}:`), true, message);
  } finally {
    await first.close();
  }
});
