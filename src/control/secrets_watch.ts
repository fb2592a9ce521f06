// Tells a sidecar when its mounted Secrets may have changed. Kubernetes rotates a Secret volume by writing a new
// timestamped directory and swapping the `..data` symlink, which a recursive watch sees as events in the mount; a
// plain `echo new > key` is a modify event. The directory may not exist yet (no Secret mounted) or the watch may
// miss a change (network file systems), so a slow poll backs the watch up. Callers re-read the keys they use and
// compare (RecordingResolver.changed), so a spurious event costs a few small reads.
import type { Clock } from "../observability/clock.ts";

export interface SecretsWatchOptions {
  readonly dir: string;
  readonly clock: Clock;
  readonly onChange: () => void;
  /** Quiet time after the last event before `onChange` (default 100 ms). */
  readonly debounceMs?: number;
  /** Re-check this often whatever the watch says (default 10 s; 0 disables). */
  readonly pollMs?: number;
}

export function watchSecrets(o: SecretsWatchOptions): Disposable {
  let closed = false;
  let debounce: unknown;
  let poll: unknown;
  let watcher: Deno.FsWatcher | undefined;
  const fire = () => {
    o.clock.clearTimeout(debounce);
    debounce = o.clock.setTimeout(() => !closed && o.onChange(), o.debounceMs ?? 100);
  };
  try {
    watcher = Deno.watchFs(o.dir, { recursive: true });
    (async () => {
      for await (const _event of watcher!) fire();
    })().catch(() => {/* closed */});
  } catch {
    watcher = undefined; // Not there (yet): the poll finds it.
  }
  const pollMs = o.pollMs ?? 10_000;
  const tick = () => {
    if (closed) return;
    o.onChange();
    poll = o.clock.setTimeout(tick, pollMs);
  };
  if (pollMs > 0) poll = o.clock.setTimeout(tick, pollMs);
  return {
    [Symbol.dispose]() {
      closed = true;
      o.clock.clearTimeout(debounce);
      o.clock.clearTimeout(poll);
      try {
        watcher?.close();
      } catch { /* already closed */ }
    },
  };
}
