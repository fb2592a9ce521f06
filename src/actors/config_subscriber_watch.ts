// The head watcher of a config subscriber: follows the `head` key of the config bucket and passes every head it
// sees to its parent (`config.head`), the current one first. A KV watch can go quiet across a reconnect, so the head
// is also read again each time the connection comes back; the parent ignores heads it has already applied. The
// fetcher reads the chunks a head names and checks them (hash, schema version) before anything is applied.
import { type EventObject, fromCallback, fromPromise } from "xstate";
import type { Clock } from "../observability/clock.ts";
import type { Logger } from "../observability/logger.ts";
import type { NatsLink } from "../usage/nats_connection.ts";
import {
  CONFIG_SCHEMA_VERSION,
  type EncodedSnapshot,
  IncompatibleSnapshotError,
} from "../control/bus/config_snapshot.ts";
import type { ConfigHead, ConfigStore, HeadEntry } from "../control/bus/config_store.ts";

export type HeadWatcherEvent = { readonly type: "config.head"; readonly entry: HeadEntry };

export interface HeadWatcherInput {
  readonly store: ConfigStore;
  readonly link: NatsLink;
  readonly clock: Clock;
  readonly log: Logger;
  readonly retryMs: number;
}

export const headWatcherActor = fromCallback<EventObject, HeadWatcherInput, HeadWatcherEvent>(
  ({ input, sendBack }) => {
    const { store, link, clock, log } = input;
    const stop = new AbortController();
    const send = (entry: HeadEntry) => !stop.signal.aborted && sendBack({ type: "config.head", entry });
    const onError = (err: Error) => log.warn({ err }, "Skipped an unreadable config head");
    (async () => {
      while (!stop.signal.aborted && !link.nc.isClosed()) {
        try {
          await store.watch(send, { signal: stop.signal, onError });
        } catch (err) {
          if (!stop.signal.aborted) log.warn({ err }, "Config watch failed; watching again");
        }
        if (stop.signal.aborted) return;
        await new Promise<void>((resolve) => clock.setTimeout(resolve, input.retryMs));
      }
    })();
    const unwatch = link.watch((connected) => {
      if (!connected) return;
      store.readHead().then((entry) => entry && send(entry), onError);
    });
    return () => {
      stop.abort();
      unwatch();
    };
  },
);

export interface FetchedSnapshot {
  readonly head: ConfigHead;
  readonly encoded: EncodedSnapshot;
}

/** Refuses a head of another schema version before reading any chunk. */
export const snapshotFetcherActor = fromPromise<FetchedSnapshot, { store: ConfigStore; head: ConfigHead }>(
  async ({ input }) => {
    if (input.head.schemaVersion !== CONFIG_SCHEMA_VERSION) {
      throw new IncompatibleSnapshotError(input.head.schemaVersion);
    }
    return { head: input.head, encoded: await input.store.fetch(input.head) };
  },
);
