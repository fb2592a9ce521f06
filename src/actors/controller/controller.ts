// A running controller: its buckets opened on a NATS link and its actor system started, with what the CLI and the
// tests need from outside — status, readiness, a clean stop (which hands the lease over at once) and a kill (which
// leaves the lease to expire, as a crash would).
import { type Actor, createActor } from "xstate";
import type { Registry } from "prom-client";
import type { NatsLink } from "../../usage/nats_connection.ts";
import { type Clock, systemClock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { ConfigStore } from "../../control/bus/config_store.ts";
import { LeaseStore } from "../../control/bus/lease.ts";
import { formatResourceError } from "../../control/resources/errors.ts";
import type { CompilerInput } from "./compiler.ts";
import type { KubernetesWatcher } from "./kubernetes_source.ts";
import { ControllerMetrics } from "./metrics.ts";
import { controllerMachine } from "./system.ts";

export interface ControllerOptions {
  readonly link: NatsLink;
  readonly id: string;
  readonly paths: readonly string[];
  readonly kubernetes?: KubernetesWatcher;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly compile: CompilerInput["compile"];
  readonly log: Logger;
  readonly registry: Registry;
  readonly clock?: Clock;
  /** Default 15 s; the lease bucket's max age once created. */
  readonly leaseTtlMs?: number;
  readonly debounceMs?: number;
  readonly retryMs?: number;
  readonly bucket?: string;
  readonly leaseBucket?: string;
  /** Of the buckets when this controller creates them (3 in a NATS cluster). */
  readonly replicas?: number;
  readonly maxChunkBytes?: number;
}

export interface ControllerStatus {
  readonly id: string;
  readonly role: "leader" | "standby";
  readonly holder: string | null;
  readonly publishedRevision: number | null;
  readonly publishedHash: string | null;
  readonly compiledHash: string | null;
  /** The located errors of the last change, while it is rejected. */
  readonly rejected: readonly string[];
}

export interface Controller extends AsyncDisposable {
  status(): ControllerStatus;
  /** Stops and releases the lease, so a standby leads at once. */
  stop(): Promise<void>;
  /** Stops without releasing anything: the lease expires after its TTL, as after a crash. */
  kill(): void;
}

export async function startController(o: ControllerOptions): Promise<Controller> {
  const { nc } = o.link;
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();
  const store = await ConfigStore.open(js, jsm, {
    ...(o.bucket ? { bucket: o.bucket } : {}),
    ...(o.replicas ? { replicas: o.replicas } : {}),
    ...(o.maxChunkBytes ? { maxChunkBytes: o.maxChunkBytes } : {}),
    ...(nc.info ? { maxPayload: nc.info.max_payload } : {}),
  });
  const lease = await LeaseStore.open(js, {
    ttlMs: o.leaseTtlMs ?? 15_000,
    ...(o.leaseBucket ? { bucket: o.leaseBucket } : {}),
    ...(o.replicas ? { replicas: o.replicas } : {}),
  });
  if (o.leaseTtlMs !== undefined && lease.ttlMs !== o.leaseTtlMs) {
    o.log.warn({ asked: o.leaseTtlMs, bucket: lease.ttlMs }, "The lease bucket exists with another TTL; using it");
  }
  const actor: Actor<typeof controllerMachine> = createActor(controllerMachine, {
    input: {
      id: o.id,
      store,
      lease,
      paths: o.paths,
      ...(o.kubernetes ? { kubernetes: o.kubernetes } : {}),
      env: o.env ?? {},
      compile: o.compile,
      clock: o.clock ?? systemClock,
      log: o.log,
      metrics: new ControllerMetrics(o.registry),
      ...(o.debounceMs === undefined ? {} : { debounceMs: o.debounceMs }),
      ...(o.retryMs === undefined ? {} : { retryMs: o.retryMs }),
    },
    clock: o.clock ?? systemClock,
  });
  actor.start();
  const stopActor = () => {
    if (actor.getSnapshot().status === "active") actor.stop();
  };
  const controller: Controller = {
    status() {
      const c = actor.getSnapshot().context;
      return {
        id: o.id,
        role: actor.getSnapshot().matches({ leadership: "leading" }) ? "leader" : "standby",
        holder: c.holder ?? null,
        publishedRevision: c.published?.head.revision ?? null,
        publishedHash: c.published?.head.hash ?? null,
        compiledHash: c.latest?.encoded.hash ?? null,
        rejected: (c.rejected ?? []).map(formatResourceError),
      };
    },
    async stop() {
      const { held } = actor.getSnapshot().context;
      const revision = held.revision;
      stopActor();
      if (revision !== undefined) await lease.release(revision);
    },
    kill: stopActor,
    async [Symbol.asyncDispose]() {
      await controller.stop();
    },
  };
  return controller;
}
