// The config subscriber of every sidecar and aggregator:
//
//   starting (read the disk cache; apply it) ──> connecting (shared NATS link, open the bucket) ──> running
//                                                   ^   retrying <──┘ (error)          head watcher + fetch: idle ⇄ fetching
//
// A head names a revision, its hash and its chunks; the fetcher reads and checks them (sha256 of the canonical
// bytes, schema version) and only then is the snapshot handed to `apply`, which swaps what the process serves in
// one step (a stream in flight keeps the snapshot it started with). Whatever fails — an incompatible schema, a bad
// checksum, an `apply` that throws — is logged with the revision and changes nothing: the running config stays. An
// applied snapshot is written to the cache file, so a restart while NATS is unreachable serves it again. Heads that
// arrive while a fetch runs collapse into the newest one.
import { type Actor, assign, createActor, enqueueActions, fromPromise, setup, waitFor } from "xstate";
import type { Registry } from "prom-client";
import { type Clock, systemClock } from "../observability/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { NatsLink } from "../usage/nats_connection.ts";
import {
  type ConfigSnapshot,
  type EncodedSnapshot,
  IncompatibleSnapshotError,
} from "../control/bus/config_snapshot.ts";
import { ChunkGoneError, ConfigStore, type HeadEntry } from "../control/bus/config_store.ts";
import { type CachedSnapshot, configCacheWriterActor, readConfigCache } from "./config_subscriber_cache.ts";
import {
  type FetchedSnapshot,
  headWatcherActor,
  type HeadWatcherEvent,
  snapshotFetcherActor,
} from "./config_subscriber_watch.ts";
import { ConfigSubscriberMetrics } from "./config_subscriber_metrics.ts";

export interface AppliedConfig {
  readonly revision: number;
  readonly hash: string;
  readonly source: "nats" | "cache";
}

export interface ConfigSubscriberInput {
  /** The process's NATS link (shared with the usage publisher); waited for as long as it takes. */
  readonly connect: (signal: AbortSignal) => Promise<NatsLink>;
  /** Swaps the running config; throws to refuse a snapshot (it is then logged and the running config stays). */
  readonly apply: (snapshot: ConfigSnapshot, applied: AppliedConfig) => void;
  readonly cacheFile?: string;
  readonly bucket?: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: ConfigSubscriberMetrics;
  /** Wait before opening the bucket again after a failure (default 1000 ms). */
  readonly retryMs?: number;
}

interface SubscriberContext extends ConfigSubscriberInput {
  readonly abort: AbortController;
  link: NatsLink | undefined;
  store: ConfigStore | undefined;
  applied: AppliedConfig | undefined;
  pending: HeadEntry | undefined;
  fetching: HeadEntry | undefined;
  /** The hash last refused, so re-reads of the same head are not refused (and logged) again and again. */
  refusedHash: string | undefined;
  refusal: string | undefined;
}

type SubscriberEvent = HeadWatcherEvent | { readonly type: "subscriber.stop" };

/** Hands a snapshot to `apply`; returns what runs now, or undefined (logged) when it was refused. */
function applySnapshot(
  c: SubscriberContext,
  revision: number,
  encoded: EncodedSnapshot,
  source: AppliedConfig["source"],
): AppliedConfig | undefined {
  const applied = { revision, hash: encoded.hash, source };
  try {
    c.apply(encoded.snapshot, applied);
  } catch (err) {
    c.metrics.updates.inc({ result: "refused", source });
    c.log.error(
      { err, revision, hash: encoded.hash, source, keptRevision: c.applied?.revision ?? null },
      "Refused config; keeping the running one",
    );
    return undefined;
  }
  c.metrics.updates.inc({ result: "applied", source });
  c.metrics.revision.set(revision);
  c.metrics.appliedAt.set(Date.now() / 1000);
  c.log.info({ revision, hash: encoded.hash, source }, "Applied config");
  return applied;
}

export const configSubscriberMachine = setup({
  types: {
    input: {} as ConfigSubscriberInput,
    context: {} as SubscriberContext,
    events: {} as SubscriberEvent,
  },
  actors: {
    readCache: fromPromise<CachedSnapshot | undefined, { path: string | undefined }>(({ input }) =>
      input.path ? readConfigCache(input.path) : Promise.resolve(undefined)
    ),
    open: fromPromise<{ link: NatsLink; store: ConfigStore }, SubscriberContext>(async ({ input }) => {
      const link = await input.connect(input.abort.signal);
      const store = await ConfigStore.open(link.nc.jetstream(), await link.nc.jetstreamManager(), {
        ...(input.bucket ? { bucket: input.bucket } : {}),
      });
      return { link, store };
    }),
    headWatcher: headWatcherActor,
    fetcher: snapshotFetcherActor,
    cacheWriter: configCacheWriterActor,
  },
  guards: {
    hasPending: ({ context }) => context.pending !== undefined,
    isNew: ({ context, event }) => {
      const { head } = (event as HeadWatcherEvent).entry;
      if (head.hash === context.refusedHash) return false;
      return head.revision !== context.applied?.revision || head.hash !== context.applied.hash;
    },
  },
  delays: {
    retry: ({ context }) => context.retryMs ?? 1000,
  },
}).createMachine({
  id: "configSubscriber",
  context: ({ input }) => ({
    ...input,
    abort: new AbortController(),
    link: undefined,
    store: undefined,
    applied: undefined,
    pending: undefined,
    fetching: undefined,
    refusedHash: undefined,
    refusal: undefined,
  }),
  initial: "starting",
  on: { "subscriber.stop": ".stopped" },
  invoke: {
    id: "cacheWriter",
    src: "cacheWriter",
    input: ({ context }) => ({ path: context.cacheFile ?? "", log: context.log }),
  },
  states: {
    starting: {
      invoke: {
        src: "readCache",
        input: ({ context }) => ({ path: context.cacheFile }),
        onDone: {
          target: "connecting",
          actions: assign({
            applied: ({ context, event }) =>
              event.output ? applySnapshot(context, event.output.revision, event.output.encoded, "cache") : undefined,
          }),
        },
        onError: {
          target: "connecting",
          actions: ({ context, event }) => {
            const refused = event.error instanceof IncompatibleSnapshotError;
            context.metrics.updates.inc({ result: refused ? "refused" : "failed", source: "cache" });
            context.log.warn(
              { err: event.error, path: context.cacheFile },
              "Cannot use the config cache; waiting for NATS",
            );
          },
        },
      },
    },
    connecting: {
      invoke: {
        src: "open",
        input: ({ context }) => context,
        onDone: {
          target: "running",
          actions: assign({ link: ({ event }) => event.output.link, store: ({ event }) => event.output.store }),
        },
        onError: {
          target: "retrying",
          actions: ({ context, event }) =>
            context.log.warn({ err: event.error }, "Cannot open the config bucket; retrying"),
        },
      },
    },
    retrying: { after: { retry: "connecting" } },
    running: {
      invoke: {
        src: "headWatcher",
        input: ({ context }) => ({
          store: context.store!,
          link: context.link!,
          clock: context.clock,
          log: context.log,
          retryMs: context.retryMs ?? 1000,
        }),
      },
      on: {
        "config.head": { guard: "isNew", actions: assign({ pending: ({ event }) => event.entry }) },
      },
      initial: "idle",
      states: {
        idle: { always: { guard: "hasPending", target: "fetching" } },
        fetching: {
          entry: assign({ fetching: ({ context }) => context.pending, pending: undefined }),
          invoke: {
            src: "fetcher",
            input: ({ context }) => ({ store: context.store!, head: context.fetching!.head }),
            onDone: {
              target: "idle",
              actions: [
                assign(({ context, event }) => {
                  const { head, encoded } = event.output as FetchedSnapshot;
                  const applied = applySnapshot(context, head.revision, encoded, "nats");
                  return applied
                    ? { applied, refusal: undefined }
                    : { refusedHash: head.hash, refusal: `revision ${head.revision} was refused by this process` };
                }),
                enqueueActions(({ context, event, enqueue }) => {
                  const { head, encoded } = event.output as FetchedSnapshot;
                  if (!context.cacheFile || context.applied?.hash !== encoded.hash) return;
                  enqueue.sendTo("cacheWriter", { type: "cache.write", revision: head.revision, encoded });
                }),
              ],
            },
            onError: {
              target: "idle",
              actions: assign(({ context, event }) => {
                const err = event.error as Error;
                if (err instanceof ChunkGoneError) {
                  // A newer head replaced this one while we read it; its event is on the way.
                  context.log.debug({ err }, "Config revision replaced while reading it");
                  return {};
                }
                context.metrics.updates.inc({
                  result: err instanceof IncompatibleSnapshotError ? "refused" : "failed",
                  source: "nats",
                });
                context.log.error(
                  { err, keptRevision: context.applied?.revision ?? null },
                  "Refused a config snapshot from NATS; keeping the running config",
                );
                return { refusal: err.message };
              }),
            },
          },
        },
      },
    },
    stopped: {
      type: "final",
      entry: ({ context }) => context.abort.abort(),
    },
  },
});

export interface ConfigSubscriberStatus {
  /** The revision running, null before any. */
  readonly configRevision: number | null;
  readonly configHash: string | null;
  readonly configSource: "nats" | "cache" | null;
  readonly natsConnected: boolean;
  /** Why the last snapshot received was not applied, while that is the latest news. */
  readonly configRefusal?: string;
}

export interface ConfigSubscriber extends AsyncDisposable {
  readonly metrics: ConfigSubscriberMetrics;
  status(): ConfigSubscriberStatus;
  /** Resolves once a config (from the cache or NATS) runs with at least `revision` (any, without it). */
  applied(revision?: number, timeoutMs?: number): Promise<AppliedConfig>;
  stop(): Promise<void>;
}

export interface ConfigSubscriberOptions extends Omit<ConfigSubscriberInput, "clock" | "metrics"> {
  readonly registry: Registry;
  readonly clock?: Clock;
}

export function startConfigSubscriber(o: ConfigSubscriberOptions): ConfigSubscriber {
  const { registry, clock, ...rest } = o;
  const metrics = new ConfigSubscriberMetrics(registry);
  const actor: Actor<typeof configSubscriberMachine> = createActor(configSubscriberMachine, {
    input: { ...rest, clock: clock ?? systemClock, metrics },
    clock: clock ?? systemClock,
  });
  actor.start();
  const subscriber: ConfigSubscriber = {
    metrics,
    status() {
      const c = actor.getSnapshot().context;
      return {
        configRevision: c.applied?.revision ?? null,
        configHash: c.applied?.hash ?? null,
        configSource: c.applied?.source ?? null,
        natsConnected: c.link !== undefined && !c.link.nc.isClosed() && actor.getSnapshot().matches("running"),
        ...(c.refusal ? { configRefusal: c.refusal } : {}),
      };
    },
    async applied(revision, timeoutMs = Infinity) {
      const s = await waitFor(
        actor,
        (s) => s.context.applied !== undefined && (revision === undefined || s.context.applied.revision >= revision),
        { timeout: timeoutMs },
      );
      return s.context.applied!;
    },
    async stop() {
      if (actor.getSnapshot().status === "active") actor.send({ type: "subscriber.stop" });
      await waitFor(actor, (s) => s.status !== "active", { timeout: Infinity });
    },
    async [Symbol.asyncDispose]() {
      await subscriber.stop();
    },
  };
  return subscriber;
}
