// A real envoy.service.ratelimit.v3.RateLimitService on 127.0.0.1 for tests: records every request (per-descriptor
// hits_addend included), answers with what the test computes, and can hold its answers (so a client timeout can
// fire) or fail with a gRPC status. `await using rls = await FakeRls.start()`.
import * as grpc from "@grpc/grpc-js";
import { rateLimitServiceDefinition } from "../../src/edge/rate_limit_filter.ts";
import type { RlsRequest } from "../../src/edge/rate_limit_descriptors.ts";
import type { HeaderValue } from "../../src/protocol/gen/envoy/config/core/v3/base.ts";
import {
  type RateLimitResponse,
  RateLimitResponse_Code,
} from "../../src/protocol/gen/envoy/service/ratelimit/v3/rls.ts";

type RlsCall = grpc.ServerUnaryCall<RlsRequest, RateLimitResponse>;

export type RlsAnswer = (request: RlsRequest) => RateLimitResponse | Promise<RateLimitResponse>;

/** A RateLimitResponse: OK and empty unless told otherwise. */
export function rlsResponse(fields: Partial<RateLimitResponse> = {}): RateLimitResponse {
  return {
    overallCode: RateLimitResponse_Code.OK,
    statuses: [],
    responseHeadersToAdd: [],
    requestHeadersToAdd: [],
    rawBody: new Uint8Array(),
    ...fields,
  };
}

export function headerValue(key: string, value: string, rawValue = new Uint8Array()): HeaderValue {
  return { key, value, rawValue };
}

export class FakeRls implements AsyncDisposable {
  readonly #server = new grpc.Server();
  readonly #requests: RlsRequest[] = [];
  #answer: RlsAnswer;
  #failure: { code: grpc.status; details: string } | undefined;
  #held: Array<() => void> | undefined;
  #cancelled = 0;
  #waiters: Array<{ ready: () => boolean; resolve: () => void }> = [];
  #target = "";

  private constructor(answer: RlsAnswer) {
    this.#answer = answer;
  }

  static async start(answer: RlsAnswer = () => rlsResponse()): Promise<FakeRls> {
    const rls = new FakeRls(answer);
    rls.#server.addService(rateLimitServiceDefinition, {
      shouldRateLimit: (call: RlsCall, cb: grpc.sendUnaryData<RateLimitResponse>) => rls.#handle(call, cb),
    });
    const port = await new Promise<number>((resolve, reject) =>
      rls.#server.bindAsync(
        "127.0.0.1:0",
        grpc.ServerCredentials.createInsecure(),
        (err, p) => err ? reject(new Error(`Cannot start the fake RLS: ${err.message}`)) : resolve(p),
      )
    );
    rls.#target = `127.0.0.1:${port}`;
    return rls;
  }

  /** "127.0.0.1:PORT", for RateLimitFilterConfig.target. */
  get target(): string {
    return this.#target;
  }

  /** Every request received, in order. */
  get requests(): readonly RlsRequest[] {
    return this.#requests;
  }

  /** Calls the client cancelled before they were answered. */
  get cancelledCalls(): number {
    return this.#cancelled;
  }

  answerWith(answer: RlsAnswer): void {
    this.#answer = answer;
    this.#failure = undefined;
  }

  /** From now on, every call ends with this status instead of an answer. */
  failWith(code: grpc.status, details = "fake RLS failure"): void {
    this.#failure = { code, details };
  }

  /** Answers wait until `release()`: the service is slow for as long as the test wants. */
  hold(): void {
    this.#held ??= [];
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const go of held) go();
  }

  /** Resolves once `n` requests have arrived. */
  received(n: number): Promise<void> {
    return this.#until(() => this.#requests.length >= n);
  }

  /** Resolves once `n` calls have been cancelled by the client. */
  cancelled(n: number): Promise<void> {
    return this.#until(() => this.#cancelled >= n);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#server.forceShutdown();
    this.release();
    return Promise.resolve();
  }

  #handle(call: RlsCall, cb: grpc.sendUnaryData<RateLimitResponse>): void {
    const request = call.request;
    this.#requests.push(request);
    call.on("cancelled", () => {
      this.#cancelled++;
      this.#notify();
    });
    this.#notify();
    const answer = async () => {
      if (this.#failure) return cb({ code: this.#failure.code, details: this.#failure.details });
      try {
        cb(null, await this.#answer(request));
      } catch (err) {
        cb({ code: grpc.status.INTERNAL, details: `Fake RLS answer failed: ${String(err)}` });
      }
    };
    if (this.#held) this.#held.push(() => void answer());
    else void answer();
  }

  #until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ ready, resolve }));
  }

  #notify(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.ready()) return true;
      w.resolve();
      return false;
    });
  }
}
