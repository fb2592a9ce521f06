// A test-only ExtProc client on the generated stubs: plays Envoy's side of the ext_proc protocol over a real
// gRPC connection (TCP or Unix socket), one message at a time.
import * as grpc from "@grpc/grpc-js";
import {
  ExternalProcessorClient,
  type ProcessingRequest,
  type ProcessingResponse,
} from "../../src/protocol/gen/envoy/service/ext_proc/v3/external_processor.ts";
import { ROLE_METADATA } from "../../src/extproc/server.ts";

export interface StreamEnd {
  readonly code: number;
  readonly details: string;
}

export class ExtProcTestStream {
  readonly #call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
  readonly #queue: ProcessingResponse[] = [];
  readonly #waiters: Array<{ resolve: (r: ProcessingResponse) => void; reject: (e: Error) => void }> = [];
  #end: StreamEnd | undefined;
  readonly ended: Promise<StreamEnd>;

  constructor(call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>) {
    this.#call = call;
    let done!: (e: StreamEnd) => void;
    this.ended = new Promise((r) => (done = r));
    call.on("data", (r: ProcessingResponse) => {
      const w = this.#waiters.shift();
      if (w) w.resolve(r);
      else this.#queue.push(r);
    });
    call.on("status", (s: grpc.StatusObject) => {
      this.#end = { code: s.code, details: s.details };
      for (const w of this.#waiters.splice(0)) {
        w.reject(new Error(`Stream ended (code ${s.code}: ${s.details}) before a response`));
      }
      done(this.#end);
    });
    call.on("error", () => {/* reported through "status" */});
  }

  /** Sends one message and waits for the next response. */
  exchange(req: ProcessingRequest): Promise<ProcessingResponse> {
    this.#call.write(req);
    return this.next();
  }

  write(req: ProcessingRequest): void {
    this.#call.write(req);
  }

  next(): Promise<ProcessingResponse> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#end) return Promise.reject(new Error(`Stream already ended (code ${this.#end.code})`));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Half-close, as Envoy does when the HTTP stream is over. */
  end(): Promise<StreamEnd> {
    this.#call.end();
    return this.ended;
  }

  cancel(): void {
    this.#call.cancel();
  }
}

export class ExtProcTestClient {
  readonly #client: ExternalProcessorClient;

  /** `target` in grpc-js syntax: "127.0.0.1:1063" or "unix:///path.sock". */
  constructor(target: string) {
    this.#client = new ExternalProcessorClient(target, grpc.credentials.createInsecure());
  }

  open(role: "router" | "upstream" = "router"): ExtProcTestStream {
    const md = new grpc.Metadata();
    if (role === "upstream") md.set(ROLE_METADATA, "upstream");
    return new ExtProcTestStream(this.#client.process(md));
  }

  close(): void {
    this.#client.close();
  }
}
