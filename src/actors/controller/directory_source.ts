// The directory source: watches resource files and directories and tells its parent when they changed, after a
// short quiet time (editors and `kubectl cp` write in several steps; a ConfigMap volume swaps a symlink; see
// debounce.ts for how long it waits). It says
// `source.changed` once at start too, so the first compile needs no special case. Reading and parsing is the
// compiler's job: this actor only knows that something moved.
import { type EventObject, fromCallback } from "xstate";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { adaptiveDebounce } from "./debounce.ts";

export type DirectorySourceEvent = { readonly type: "source.changed"; readonly source: "directory" };

export interface DirectorySourceInput {
  readonly paths: readonly string[];
  readonly clock: Clock;
  readonly log: Logger;
  /** Quiet time within a burst of file events (default 50 ms); a change after a quiet spell waits 5 ms. */
  readonly debounceMs?: number;
}

export const directorySourceActor = fromCallback<EventObject, DirectorySourceInput, DirectorySourceEvent>(
  ({ input, sendBack }) => {
    const { clock, log } = input;
    let closed = false;
    const changed = () => !closed && sendBack({ type: "source.changed", source: "directory" });
    const debounce = adaptiveDebounce(clock, input.debounceMs ?? 50, changed);
    let watcher: Deno.FsWatcher | undefined;
    try {
      watcher = Deno.watchFs([...input.paths], { recursive: true });
    } catch (err) {
      // The first compile reports the missing path with the resource errors; nothing to watch until a restart.
      log.error({ err, paths: input.paths }, "Cannot watch the resource paths; changes will not be seen");
    }
    if (watcher) {
      const w = watcher;
      (async () => {
        for await (const event of w) {
          // Only YAML matters, but a directory rename or removal can carry anything: anything else is cheap to re-read.
          if (event.kind === "access") continue;
          debounce.poke();
        }
      })().catch(() => {/* the watcher was closed */});
    }
    changed();
    return () => {
      closed = true;
      debounce.cancel();
      try {
        watcher?.close();
      } catch { /* already closed */ }
    };
  },
);
