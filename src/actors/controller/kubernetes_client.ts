// KubernetesWatcher on @kubernetes/client-node (1.x/2.x API): one informer (list + watch) per kind, cluster-wide,
// with the in-cluster service account or the local kubeconfig (KubeConfig.loadFromDefault).
//
// The package is optional: it is loaded only when `tollgate controller --kubernetes` asks for it, so the sidecars
// and a file-only controller never pay for it. Only the few members used below are typed here.
import type { KubernetesKind, KubernetesObject, KubernetesWatcher, KubernetesWatchEvent } from "./kubernetes_source.ts";

interface Informer {
  on(verb: "add" | "update" | "delete", fn: (o: KubernetesObject) => void): void;
  on(verb: "error", fn: (err: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void> | void;
  list(namespace?: string): KubernetesObject[];
}

interface ClientModule {
  KubeConfig: new () => { loadFromDefault(): void };
  KubernetesObjectApi: {
    makeApiClient(kc: unknown): { list(apiVersion: string, kind: string): Promise<{ items: KubernetesObject[] }> };
  };
  makeInformer(kc: unknown, path: string, list: () => Promise<{ items: KubernetesObject[] }>): Informer;
}

export const KUBERNETES_CLIENT_PACKAGE = "@kubernetes/client-node";

export class KubernetesClientMissingError extends Error {
  override readonly name = "KubernetesClientMissingError";
}

/** Loads the client and the cluster credentials; throws KubernetesClientMissingError without the package. */
export async function kubernetesWatcher(o: { retryMs?: number } = {}): Promise<KubernetesWatcher> {
  let k8s: ClientModule;
  try {
    // A computed specifier: the package is optional, so type checking must not require it.
    const specifier = KUBERNETES_CLIENT_PACKAGE;
    k8s = await import(specifier) as ClientModule;
  } catch (e) {
    throw new KubernetesClientMissingError(
      `The Kubernetes source needs the npm package ${KUBERNETES_CLIENT_PACKAGE}, which is not installed`,
      { cause: e },
    );
  }
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  const api = k8s.KubernetesObjectApi.makeApiClient(kc);
  const retryMs = o.retryMs ?? 5000;
  return {
    watch(kinds: readonly KubernetesKind[], onEvent: (e: KubernetesWatchEvent) => void): () => void {
      let stopped = false;
      const informers: Informer[] = [];
      for (const kind of kinds) {
        const path = kind.apiVersion.includes("/")
          ? `/apis/${kind.apiVersion}/${kind.plural}`
          : `/api/v1/${kind.plural}`;
        const informer = k8s.makeInformer(kc, path, () => api.list(kind.apiVersion, kind.kind));
        informers.push(informer);
        informer.on("add", (object) => onEvent({ type: "ADDED", kind, object }));
        informer.on("update", (object) => onEvent({ type: "MODIFIED", kind, object }));
        informer.on("delete", (object) => onEvent({ type: "DELETED", kind, object }));
        const start = () => {
          if (stopped) return;
          informer.start().then(
            () => onEvent({ type: "SYNCED", kind, objects: informer.list() }),
            (err) => {
              onEvent({ type: "ERROR", kind, error: err instanceof Error ? err : new Error(String(err)) });
              setTimeout(start, retryMs);
            },
          );
        };
        // An informer stops on a watch error; the client's own advice is to start it again after a pause.
        informer.on("error", (err) => {
          onEvent({ type: "ERROR", kind, error: err instanceof Error ? err : new Error(String(err)) });
          setTimeout(start, retryMs);
        });
        start();
      }
      return () => {
        stopped = true;
        for (const i of informers) void Promise.resolve(i.stop()).catch(() => {});
      };
    },
  };
}
