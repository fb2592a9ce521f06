// grpc.health.v1: Check and Watch for the overall server ("") and each registered service name. Envoy's gRPC
// health checker and Kubernetes' grpc probes both speak it.
import * as grpc from "@grpc/grpc-js";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthServer,
} from "../protocol/gen/grpc/health/v1/health.ts";

export { ServingStatus };

export class HealthService {
  readonly #status = new Map<string, ServingStatus>();
  readonly #watchers = new Set<
    { service: string; call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse> }
  >();

  constructor(services: readonly string[]) {
    for (const s of ["", ...services]) this.#status.set(s, ServingStatus.SERVING);
  }

  /** Sets every known service to `status` and tells every watcher. */
  setAll(status: ServingStatus): void {
    for (const s of this.#status.keys()) this.#status.set(s, status);
    for (const w of this.#watchers) {
      w.call.write({ status: this.#status.get(w.service) ?? ServingStatus.SERVICE_UNKNOWN });
    }
  }

  /** Ends every Watch stream; called when the server shuts down so no call keeps it open. */
  closeWatchers(): void {
    for (const w of this.#watchers) w.call.end();
    this.#watchers.clear();
  }

  readonly implementation: HealthServer = {
    check: (call, callback) => {
      const status = this.#status.get(call.request.service);
      if (status === undefined) {
        callback({ code: grpc.status.NOT_FOUND, details: `Unknown service ${JSON.stringify(call.request.service)}` });
        return;
      }
      callback(null, { status });
    },
    watch: (call) => {
      const watcher = { service: call.request.service, call };
      this.#watchers.add(watcher);
      call.write({ status: this.#status.get(watcher.service) ?? ServingStatus.SERVICE_UNKNOWN });
      call.on("cancelled", () => this.#watchers.delete(watcher));
      call.on("close", () => this.#watchers.delete(watcher));
    },
  };
}
