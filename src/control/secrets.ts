// Credentials by reference. A config snapshot names a Secret key (namespace/name/key), never its value; each sidecar
// resolves the name from what is mounted on its own pod, so a credential never travels on NATS:
//
//   1. a file <dir>/<namespace>/<name>/<key> (default dir /etc/tollgate/secrets: one Kubernetes Secret volume per
//      namespace/name, mounted as it is, keys as files);
//   2. else the environment variable TOLLGATE_SECRET_<NAMESPACE>_<NAME>_<KEY> (upper case, every character outside
//      A-Z 0-9 as "_"), for a laptop or a plain VM.
//
// Files are read when a snapshot is materialised and again whenever the directory changes (see secret_watch.ts), so
// a rotated key is used without a restart. Values are never logged: errors name the reference, not the content.
import type { SecretReference } from "./compile/compiled.ts";
import { secretValue } from "./resources/kubernetes.ts";
import type { Resource } from "./resources/resource.ts";

export type { SecretReference };

export const DEFAULT_SECRETS_DIR = "/etc/tollgate/secrets";

/** Resolves a reference to its value, or undefined when this process has no such key. */
export type SecretResolver = (ref: SecretReference) => string | undefined;

export function secretRefKey(ref: SecretReference): string {
  return `${ref.namespace}/${ref.name}/${ref.key}`;
}

/** TOLLGATE_SECRET_<NAMESPACE>_<NAME>_<KEY>. */
export function secretEnvName(ref: SecretReference): string {
  const part = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, "_");
  return `TOLLGATE_SECRET_${part(ref.namespace)}_${part(ref.name)}_${part(ref.key)}`;
}

/** The file a mounted Secret key lives in; undefined when a part could climb out of the directory. */
export function secretFilePath(dir: string, ref: SecretReference): string | undefined {
  const parts = [ref.namespace, ref.name, ref.key];
  if (parts.some((p) => p === "" || p === "." || p === ".." || p.includes("/"))) return undefined;
  return `${dir.replace(/\/+$/, "")}/${parts.join("/")}`;
}

export interface LocalSecretsOptions {
  /** Directory of mounted Secrets; undefined for environment variables only. */
  readonly dir?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Mounted files first, then the environment. Reads synchronously: a materialisation reads a handful of keys. */
export function localSecrets(o: LocalSecretsOptions): SecretResolver {
  return (ref) => {
    const path = o.dir === undefined ? undefined : secretFilePath(o.dir, ref);
    if (path !== undefined) {
      try {
        return Deno.readTextFileSync(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) throw e;
      }
    }
    return o.env?.[secretEnvName(ref)];
  };
}

/** Secrets defined among the loaded resources (`tollgate run`, `extproc --config`: one process reads everything). */
export function resourceSecrets(resources: readonly Resource[]): SecretResolver {
  const secrets = new Map(
    resources.filter((r) => r.kind === "Secret").map((r) => [`${r.metadata.namespace}/${r.metadata.name}`, r]),
  );
  return (ref) => {
    const secret = secrets.get(`${ref.namespace}/${ref.name}`);
    return secret ? secretValue(secret as Parameters<typeof secretValue>[0], ref.key) : undefined;
  };
}

/** The first resolver that knows the key wins. */
export function firstOf(...resolvers: readonly SecretResolver[]): SecretResolver {
  return (ref) => {
    for (const r of resolvers) {
      const v = r(ref);
      if (v !== undefined) return v;
    }
    return undefined;
  };
}

/**
 * Wraps a resolver to remember what it answered, so a later `changed()` can tell whether re-reading the same keys
 * gives anything different (a rotation) without rebuilding the whole snapshot first.
 */
export class RecordingResolver {
  readonly #inner: SecretResolver;
  readonly #seen = new Map<string, { ref: SecretReference; value: string | undefined }>();

  constructor(inner: SecretResolver) {
    this.#inner = inner;
  }

  readonly resolve: SecretResolver = (ref) => {
    const value = this.#inner(ref);
    this.#seen.set(secretRefKey(ref), { ref, value });
    return value;
  };

  /** References asked for that resolved to nothing. */
  get unresolved(): SecretReference[] {
    return [...this.#seen.values()].filter((s) => s.value === undefined).map((s) => s.ref);
  }

  get references(): number {
    return this.#seen.size;
  }

  /** Whether any key read so far now reads differently. */
  changed(): boolean {
    for (const { ref, value } of this.#seen.values()) if (this.#inner(ref) !== value) return true;
    return false;
  }
}
