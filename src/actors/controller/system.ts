// The controller as an xstate actor system, four regions side by side:
//
//   directory   directory source (watch + debounce) ── source.changed ─┐
//   kubernetes  Kubernetes source (list + watch)   ── source.kubernetes┤
//   compiling   idle ⇄ running (compiler)  ── compiled: latest good snapshot, or the change is rejected
//   leadership  standby ⇄ leading: syncing (read head) → deciding → publishing ⇄ current
//               (leadership actor: lease acquired / standby / lost)
//
// Every controller compiles, so a standby that takes over publishes at once; only the lease holder writes. A
// rejected change (schema, references, compile or cost errors) is logged with every located error and changes
// nothing: the last good snapshot stays the latest, and stays published. A compile whose hash equals the latest is
// not republished, so touching a file or a second controller starting does not create revisions.
import { assign, raise, setup } from "xstate";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import type { ConfigStore, HeadEntry } from "../../control/bus/config_store.ts";
import { PublishConflictError } from "../../control/bus/config_store.ts";
import type { LeaseStore } from "../../control/bus/lease.ts";
import { formatResourceError, type ResourceError } from "../../control/resources/errors.ts";
import type { LoadOptions } from "../../control/resources/load.ts";
import type { Resource } from "../../control/resources/resource.ts";
import { type CompileOutcome, compilerActor, type CompilerInput, type CompilerMemo, compilerMemo } from "./compiler.ts";
import { directorySourceActor, type DirectorySourceEvent } from "./directory_source.ts";
import { kubernetesSourceActor, type KubernetesSourceEvent, type KubernetesWatcher } from "./kubernetes_source.ts";
import { leadershipActor, type LeadershipEvent } from "./leadership.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { headReaderActor, NotLeaderError, publisherActor } from "./publisher.ts";

export interface ControllerSystemInput {
  /** This controller's identity in the lease and in the heads it writes. */
  readonly id: string;
  readonly store: ConfigStore;
  readonly lease: LeaseStore;
  readonly paths: readonly string[];
  readonly kubernetes?: KubernetesWatcher;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly compile: CompilerInput["compile"];
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: ControllerMetrics;
  readonly debounceMs?: number;
  /** Wait before retrying a failed read or write of the bucket (default 1000 ms). */
  readonly retryMs?: number;
}

type Good = Extract<CompileOutcome, { ok: true }>;

export interface ControllerContext extends ControllerSystemInput {
  readonly cache: NonNullable<LoadOptions["cache"]>;
  readonly memo: CompilerMemo;
  /** YAML files named by file events since the last compile started, or "all" (see directory_source.ts). */
  changed: Set<string> | "all";
  /** Those the running compile reads again. */
  compiling: ReadonlySet<string> | "all";
  readonly held: { revision: number | undefined; validUntil: number };
  dirty: boolean;
  kubernetesResources:
    | { readonly resources: readonly Resource[]; readonly errors: readonly ResourceError[] }
    | undefined;
  latest: Good | undefined;
  rejected: readonly ResourceError[] | undefined;
  published: HeadEntry | undefined;
  holder: string | undefined;
}

export type ControllerEvent =
  | DirectorySourceEvent
  | KubernetesSourceEvent
  | LeadershipEvent
  | { readonly type: "config.compiled" };

export const controllerMachine = setup({
  types: {
    input: {} as ControllerSystemInput,
    context: {} as ControllerContext,
    events: {} as ControllerEvent,
  },
  actors: {
    directorySource: directorySourceActor,
    kubernetesSource: kubernetesSourceActor,
    compiler: compilerActor,
    leadership: leadershipActor,
    headReader: headReaderActor,
    publisher: publisherActor,
  },
  guards: {
    watchesFiles: ({ context }) => context.paths.length > 0,
    watchesKubernetes: ({ context }) => context.kubernetes !== undefined,
    wantsCompile: ({ context }) =>
      context.dirty && (context.kubernetes === undefined || context.kubernetesResources !== undefined),
    needsPublish: ({ context }) =>
      context.latest !== undefined && context.latest.encoded.hash !== context.published?.head.hash,
    conflict: ({ event }) => (event as { error?: unknown }).error instanceof PublishConflictError,
  },
  delays: {
    retry: ({ context }) => context.retryMs ?? 1000,
  },
}).createMachine({
  id: "controller",
  type: "parallel",
  context: ({ input }) => ({
    ...input,
    cache: new Map(),
    memo: compilerMemo(),
    changed: "all",
    compiling: "all",
    held: { revision: undefined, validUntil: 0 },
    dirty: false,
    kubernetesResources: undefined,
    latest: undefined,
    rejected: undefined,
    published: undefined,
    holder: undefined,
  }),
  on: {
    "source.changed": {
      actions: assign({
        dirty: true,
        changed: ({ context, event }) => {
          if (context.changed === "all" || event.files === undefined) return "all";
          for (const f of event.files) context.changed.add(f);
          return context.changed;
        },
      }),
    },
    "source.kubernetes": {
      actions: assign({ dirty: true, kubernetesResources: ({ event }) => ({ ...event }) }),
    },
  },
  states: {
    directory: {
      initial: "choosing",
      states: {
        choosing: { always: [{ guard: "watchesFiles", target: "watching" }, { target: "none" }] },
        watching: {
          invoke: {
            src: "directorySource",
            input: ({ context }) => ({
              paths: context.paths,
              clock: context.clock,
              log: context.log,
              ...(context.debounceMs === undefined ? {} : { debounceMs: context.debounceMs }),
            }),
          },
        },
        none: {},
      },
    },
    kubernetes: {
      initial: "choosing",
      states: {
        choosing: { always: [{ guard: "watchesKubernetes", target: "watching" }, { target: "none" }] },
        watching: {
          invoke: {
            src: "kubernetesSource",
            input: ({ context }) => ({
              watcher: context.kubernetes!,
              clock: context.clock,
              log: context.log,
              ...(context.debounceMs === undefined ? {} : { debounceMs: context.debounceMs }),
            }),
          },
        },
        none: {},
      },
    },
    compiling: {
      initial: "idle",
      states: {
        idle: { always: { guard: "wantsCompile", target: "running" } },
        running: {
          // The compiler gets the files changed so far; events during the compile start the next set.
          entry: assign({
            dirty: false,
            compiling: ({ context }) => context.changed,
            changed: () => new Set<string>(),
          }),
          invoke: {
            src: "compiler",
            input: ({ context }) => ({
              paths: context.paths,
              changed: context.compiling,
              ...(context.kubernetesResources ? { kubernetes: context.kubernetesResources } : {}),
              env: context.env,
              cache: context.cache,
              memo: context.memo,
              compile: context.compile,
            }),
            onDone: [
              {
                guard: ({ event }) => !event.output.ok,
                target: "idle",
                actions: [
                  assign({ rejected: ({ event }) => (event.output as { errors: readonly ResourceError[] }).errors }),
                  ({ context, event }) => {
                    const errors = (event.output as { errors: readonly ResourceError[] }).errors;
                    context.metrics.compiles.inc({ result: "rejected" });
                    context.log.error(
                      {
                        errors: errors.map(formatResourceError),
                        keptHash: context.latest?.encoded.hash ?? null,
                        publishedRevision: context.published?.head.revision ?? null,
                      },
                      "Rejected a configuration change; keeping the last good snapshot",
                    );
                  },
                ],
              },
              {
                guard: ({ context, event }) => (event.output as Good).encoded.hash === context.latest?.encoded.hash,
                target: "idle",
                actions: [
                  assign({ rejected: undefined }),
                  ({ context }) => context.metrics.compiles.inc({ result: "unchanged" }),
                ],
              },
              {
                target: "idle",
                actions: [
                  assign({ latest: ({ event }) => event.output as Good, rejected: undefined }),
                  ({ context, event }) => {
                    const out = event.output as Good;
                    context.metrics.compiles.inc({ result: "changed" });
                    context.metrics.compileSeconds.observe(out.ms / 1000);
                    context.metrics.snapshotBytes.set(out.encoded.bytes.length);
                    context.log.info(
                      {
                        hash: out.encoded.hash,
                        routes: out.routes,
                        backends: out.backends,
                        bytes: out.encoded.bytes.length,
                        ms: Math.round(out.ms),
                        ...(out.secrets > 0 ? { secretsCheckedNotPublished: out.secrets } : {}),
                      },
                      "Compiled the resources",
                    );
                  },
                  raise({ type: "config.compiled" }),
                ],
              },
            ],
            onError: {
              target: "idle",
              actions: [
                // What the failed compile read is unknown: the next one reads everything.
                assign({ changed: "all" }),
                ({ context, event }) => {
                  context.metrics.compiles.inc({ result: "failed" });
                  context.log.error(
                    { err: event.error },
                    "Cannot compile the resources; keeping the last good snapshot",
                  );
                },
              ],
            },
          },
        },
      },
    },
    leadership: {
      invoke: {
        src: "leadership",
        input: ({ context }) => ({
          lease: context.lease,
          id: context.id,
          clock: context.clock,
          log: context.log,
          held: context.held,
        }),
      },
      initial: "standby",
      states: {
        standby: {
          entry: ({ context }) => context.metrics.leader.set(0),
          on: {
            "lease.acquired": "leading",
            "lease.standby": {
              actions: [
                assign({ holder: ({ event }) => event.holder }),
                ({ context, event }) => context.log.info({ holder: event.holder ?? null }, "Controller standing by"),
              ],
            },
          },
        },
        leading: {
          entry: [
            assign({ holder: ({ context }) => context.id }),
            ({ context }) => {
              context.metrics.leader.set(1);
              context.log.info({ id: context.id, ttlMs: context.lease.ttlMs }, "Controller leading");
            },
          ],
          on: {
            "lease.lost": {
              target: "standby",
              actions: ({ context, event }) => context.log.warn({ reason: event.reason }, "Controller lost the lease"),
            },
          },
          initial: "syncing",
          states: {
            syncing: {
              invoke: {
                src: "headReader",
                input: ({ context }) => ({ store: context.store }),
                onDone: {
                  target: "deciding",
                  actions: [
                    assign({ published: ({ event }) => event.output }),
                    ({ context, event }) => context.metrics.publishedRevision.set(event.output?.head.revision ?? 0),
                  ],
                },
                onError: {
                  target: "waiting",
                  actions: ({ context, event }) =>
                    context.log.warn({ err: event.error }, "Cannot read the config head; retrying"),
                },
              },
            },
            waiting: { after: { retry: "syncing" } },
            deciding: { always: [{ guard: "needsPublish", target: "publishing" }, { target: "current" }] },
            current: { on: { "config.compiled": "deciding" } },
            publishing: {
              invoke: {
                src: "publisher",
                input: ({ context }) => ({
                  store: context.store,
                  encoded: context.latest!.encoded,
                  previous: context.published,
                  id: context.id,
                  leading: () => context.held.revision !== undefined,
                }),
                onDone: {
                  target: "deciding",
                  actions: [
                    assign({ published: ({ event }) => event.output }),
                    ({ context, event }) => {
                      const { head } = event.output;
                      context.metrics.publishes.inc({ result: "published" });
                      context.metrics.publishedRevision.set(head.revision);
                      context.log.info(
                        { revision: head.revision, hash: head.hash, chunks: head.chunks, bytes: head.bytes },
                        "Published config",
                      );
                    },
                  ],
                },
                onError: [
                  {
                    guard: "conflict",
                    target: "syncing",
                    actions: ({ context, event }) => {
                      context.metrics.publishes.inc({ result: "conflict" });
                      context.log.warn({ err: event.error }, "Config head moved under this controller; re-reading it");
                    },
                  },
                  {
                    target: "waiting",
                    actions: ({ context, event }) => {
                      if (event.error instanceof NotLeaderError) return;
                      context.metrics.publishes.inc({ result: "failed" });
                      context.log.warn({ err: event.error }, "Cannot publish config; retrying");
                    },
                  },
                ],
              },
            },
          },
        },
      },
    },
  },
});
