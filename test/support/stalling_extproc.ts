// An ExtProc server that accepts streams and never answers: what message_timeout is for.
import * as grpc from "@grpc/grpc-js";
import { ExternalProcessorService } from "../../src/protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";

export interface StallingExtProc extends AsyncDisposable {
  readonly target: string;
  readonly received: { count: number };
}

export async function startStallingExtProc(): Promise<StallingExtProc> {
  const server = new grpc.Server();
  const received = { count: 0 };
  server.addService(ExternalProcessorService, {
    process: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      call.on("data", () => received.count++);
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p)))
  );
  return {
    target: `127.0.0.1:${port}`,
    received,
    [Symbol.asyncDispose]: () => Promise.resolve(server.forceShutdown()),
  };
}
