// The directory source: watches resource files and directories and tells its parent when they changed, after a
// short quiet time (editors and `kubectl cp` write in several steps; a ConfigMap volume swaps a symlink; see
// debounce.ts for how long it waits). It says `source.changed` once at start too, so the first compile needs no
// special case. Reading and parsing is the compiler's job: this actor says what moved, so the compiler reads again
// only the YAML files named by the events (loader's LoadOptions.changed). Whenever the events cannot say which files
// changed — a directory or a symlink moved (a ConfigMap volume's swap), the watcher lost events (rescan) or reported
// something it could not classify — it says "everything", and every file is read.
import { type EventObject, fromCallback } from "xstate";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import { adaptiveDebounce } from "./debounce.ts";

export type DirectorySourceEvent = {
  readonly type: "source.changed";
  readonly source: "directory";
  /** Absolute paths of the YAML files the events named; absent: anything may have changed. */
  readonly files?: readonly string[];
};

const YAML_FILE = /\.ya?ml$/;

/** What one file event says about which files to read again: these YAML files, nothing (a temporary or unrelated
 * file), or everything. */
export function changedFiles(event: Deno.FsEvent): readonly string[] | "all" {
  if (event.flag === "rescan" || event.kind === "any" || event.kind === "other") return "all";
  const files: string[] = [];
  for (const path of event.paths) {
    if (YAML_FILE.test(path)) {
      files.push(path);
      continue;
    }
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
    } catch {
      continue; // Gone already: a temporary file renamed over a YAML file (that path is in the event too), or removed.
    }
    if (!info.isFile) return "all"; // A directory or a symlink moved: the files under it may be others now.
  }
  return files;
}

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
    let pending: Set<string> | "all" = new Set();
    const changed = () => {
      if (closed) return;
      const files = pending;
      pending = new Set();
      sendBack({ type: "source.changed", source: "directory", ...(files === "all" ? {} : { files: [...files] }) });
    };
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
          if (event.kind === "access") continue;
          const files = changedFiles(event);
          if (files === "all") pending = "all";
          else if (pending !== "all") { for (const f of files) pending.add(f); }
          debounce.poke();
        }
      })().catch(() => {/* the watcher was closed */});
    }
    pending = "all";
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
