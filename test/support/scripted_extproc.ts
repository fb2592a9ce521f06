// An ExtProc server driven by a script, for testing the edge's ext_proc filter client against every kind of
// processor behaviour: answers, mutations, mode overrides, metadata, clean closes, errors and spurious messages.
import * as grpc from "@grpc/grpc-js";
import {
  ExternalProcessorService,
  type ProcessingRequest,
  type ProcessingResponse,
} from "../../src/protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";

export type ScriptStep =
  | { readonly reply: ProcessingResponse | readonly ProcessingResponse[] }
  | { readonly close: "ok" }
  | { readonly fail: number }
  | { readonly silence: true };

export interface ScriptedExtProc extends AsyncDisposable {
  readonly target: string;
  /** Every message received, per stream, in order. */
  readonly streams: ProcessingRequest[][];
  readonly metadata: grpc.Metadata[];
}

export async function startScriptedExtProc(
  script: (req: ProcessingRequest, index: number) => ScriptStep,
): Promise<ScriptedExtProc> {
  const streams: ProcessingRequest[][] = [];
  const metadata: grpc.Metadata[] = [];
  const server = new grpc.Server();
  server.addService(ExternalProcessorService, {
    process: (call: grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => {
      const seen: ProcessingRequest[] = [];
      streams.push(seen);
      metadata.push(call.metadata);
      call.on("data", (req: ProcessingRequest) => {
        seen.push(req);
        const step = script(req, seen.length - 1);
        if ("reply" in step) {
          for (const r of Array.isArray(step.reply) ? step.reply : [step.reply]) call.write(r as ProcessingResponse);
        } else if ("close" in step) call.end();
        else if ("fail" in step) call.emit("error", { code: step.fail, details: "scripted failure" });
      });
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p)))
  );
  return {
    target: `127.0.0.1:${port}`,
    streams,
    metadata,
    [Symbol.asyncDispose]: () => Promise.resolve(server.forceShutdown()),
  };
}
