// The last good config snapshot on local disk, so a sidecar or aggregator that restarts while NATS is unreachable
// serves the config it had instead of none. One file: a header line, then the canonical snapshot bytes exactly as
// hashed, so reading it back checks the same sha256 a snapshot from NATS is checked against:
//
//   {"v":1,"revision":7,"hash":"<sha256>","schemaVersion":1,"savedAt":"…"}\n<canonical snapshot JSON>
//
// Written to a temporary file and renamed over the old one: a crash mid-write leaves the previous cache whole.
// Credentials are never in it (the snapshot carries references only), so it needs no more protection than the
// config itself.
import { type EventObject, fromCallback } from "xstate";
import type { Logger } from "../observability/logger.ts";
import { decodeSnapshot, type EncodedSnapshot } from "../control/bus/config_snapshot.ts";

export interface CachedSnapshot {
  readonly revision: number;
  readonly encoded: EncodedSnapshot;
}

export async function writeConfigCache(path: string, revision: number, encoded: EncodedSnapshot): Promise<void> {
  const header = JSON.stringify({
    v: 1,
    revision,
    hash: encoded.hash,
    schemaVersion: encoded.snapshot.schemaVersion,
    savedAt: new Date().toISOString(),
  });
  const head = new TextEncoder().encode(header + "\n");
  const bytes = new Uint8Array(head.length + encoded.bytes.length);
  bytes.set(head);
  bytes.set(encoded.bytes, head.length);
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes, { mode: 0o640 });
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** The cached snapshot, undefined when there is no cache; throws when the file is there but unusable. */
export async function readConfigCache(path: string): Promise<CachedSnapshot | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const nl = bytes.indexOf(10);
  if (nl < 0) throw new Error(`Config cache ${path} has no header line`);
  let header: { v?: unknown; revision?: unknown; hash?: unknown };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, nl)));
  } catch {
    throw new Error(`Config cache ${path} has an unreadable header`);
  }
  if (header.v !== 1 || !Number.isSafeInteger(header.revision) || typeof header.hash !== "string") {
    throw new Error(`Config cache ${path} is not a version 1 cache`);
  }
  const encoded = await decodeSnapshot(bytes.slice(nl + 1), header.hash);
  return { revision: header.revision as number, encoded };
}

export type CacheWriterReceived = {
  readonly type: "cache.write";
  readonly revision: number;
  readonly encoded: EncodedSnapshot;
};

/** Writes the cache one snapshot at a time; a write that fails is logged and the next one tries again. */
export const configCacheWriterActor = fromCallback<CacheWriterReceived, { path: string; log: Logger }, EventObject>(
  ({ input, receive }) => {
    let queue = Promise.resolve();
    receive((event) => {
      // Writes queued before a stop still finish: the cache is what the next start relies on.
      queue = queue.then(async () => {
        try {
          await writeConfigCache(input.path, event.revision, event.encoded);
        } catch (err) {
          input.log.warn({ err, path: input.path }, "Cannot write the config cache");
        }
      });
    });
  },
);
