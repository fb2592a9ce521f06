// A sidecar's config from resource files, without NATS: loaded at start, watched, and swapped atomically when a
// change compiles. A change that does not compile is rejected with every error located, and the running snapshot
// stays. Streams in flight keep the snapshot they started with (the server reads the reference once per stream).
import type { Logger } from "../observability/logger.ts";
import { formatErrors, loadGatewayConfig } from "./gateway_config.ts";
import type { GatewaySnapshot } from "./snapshot.ts";
import { formatResourceError } from "./resources/errors.ts";

export interface FileConfigSource extends Disposable {
  current(): GatewaySnapshot;
}

export interface FileConfigOptions {
  readonly paths: readonly string[];
  readonly logger: Logger;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Quiet time after the last file event before reloading (editors write in several steps). */
  readonly debounceMs?: number;
  readonly onApplied?: (snapshot: GatewaySnapshot) => void;
}

/** Loads the files once; throws with every error when the first load fails (nothing to fall back to). */
export async function watchConfigFiles(o: FileConfigOptions): Promise<FileConfigSource> {
  let revision = 1;
  const load = () =>
    loadGatewayConfig(o.paths, { extProcTarget: "unix:///unused.sock", env: o.env, revision: revision++ });
  const first = await load();
  if (!first.ok) throw new Error(`Invalid configuration:\n${formatErrors(first.errors)}`);
  let snapshot = first.snapshot;
  o.onApplied?.(snapshot);
  const watcher = Deno.watchFs([...o.paths], { recursive: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reload = async () => {
    const next = await load();
    if (!next.ok) {
      o.logger.error(
        { errors: next.errors.map(formatResourceError), keptRevision: snapshot.revision },
        "Rejected a configuration change; keeping the running config",
      );
      return;
    }
    snapshot = next.snapshot;
    o.logger.info({ revision: snapshot.revision, models: snapshot.models.length }, "Applied a configuration change");
    o.onApplied?.(snapshot);
  };
  (async () => {
    for await (const _event of watcher) {
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), o.debounceMs ?? 200);
    }
  })().catch(() => {/* the watcher was closed */});
  return {
    current: () => snapshot,
    [Symbol.dispose]() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
