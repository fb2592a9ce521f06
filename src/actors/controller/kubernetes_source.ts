// The Kubernetes source: the same resources as the directory source, read from the API server with list + watch
// (one informer per kind, cluster-wide). It keeps the objects it was told about, and after a quiet time turns them
// into resources through the very parser the files go through (a Kubernetes object in JSON is a YAML document), so
// both sources validate identically; it sends `source.kubernetes` with the result once every kind has synced and
// after every change. Secrets are not among the watched kinds: the controller's RBAC does not reach them (least
// privilege), so references to Secrets are not checked for this source; each sidecar resolves them from its own
// mounts and reports a missing key (see SidecarConfig). Should a Secret still be passed in, its values are dropped.
//
// The watching itself is behind `KubernetesWatcher`: kubernetes_client.ts implements it on @kubernetes/client-node.
import { type EventObject, fromCallback } from "xstate";
import type { Clock } from "../../observability/clock.ts";
import type { Logger } from "../../observability/logger.ts";
import type { ResourceError } from "../../control/resources/errors.ts";
import { parseResources } from "../../control/resources/load.ts";
import type { Resource } from "../../control/resources/resource.ts";
import { adaptiveDebounce } from "./debounce.ts";

export interface KubernetesKind {
  readonly apiVersion: string;
  readonly kind: string;
  /** The plural resource name of the API path, e.g. "aigatewayroutes". */
  readonly plural: string;
}

/** What Tollgate reads from a cluster: the kinds `tollgate validate` reads from files, less Secrets. */
export const WATCHED_KINDS: readonly KubernetesKind[] = [
  { apiVersion: "aigateway.envoyproxy.io/v1beta1", kind: "AIGatewayRoute", plural: "aigatewayroutes" },
  { apiVersion: "aigateway.envoyproxy.io/v1beta1", kind: "AIServiceBackend", plural: "aiservicebackends" },
  { apiVersion: "aigateway.envoyproxy.io/v1beta1", kind: "BackendSecurityPolicy", plural: "backendsecuritypolicies" },
  { apiVersion: "gateway.envoyproxy.io/v1alpha1", kind: "Backend", plural: "backends" },
  { apiVersion: "gateway.envoyproxy.io/v1alpha1", kind: "BackendTrafficPolicy", plural: "backendtrafficpolicies" },
  { apiVersion: "gateway.networking.k8s.io/v1", kind: "Gateway", plural: "gateways" },
  { apiVersion: "gateway.networking.k8s.io/v1", kind: "GatewayClass", plural: "gatewayclasses" },
];

export interface KubernetesObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
    readonly creationTimestamp?: string | Date;
    readonly [field: string]: unknown;
  };
  readonly [field: string]: unknown;
}

export type KubernetesWatchEvent =
  | {
    readonly type: "ADDED" | "MODIFIED" | "DELETED";
    readonly kind: KubernetesKind;
    readonly object: KubernetesObject;
  }
  /** The initial list of a kind has been delivered (again after a re-list: objects not re-added are gone). */
  | { readonly type: "SYNCED"; readonly kind: KubernetesKind; readonly objects: readonly KubernetesObject[] }
  | { readonly type: "ERROR"; readonly kind: KubernetesKind; readonly error: Error };

export interface KubernetesWatcher {
  /** Lists and watches each kind, re-listing on its own after errors; returns the stop. */
  watch(kinds: readonly KubernetesKind[], onEvent: (event: KubernetesWatchEvent) => void): () => void;
}

export type KubernetesSourceEvent = {
  readonly type: "source.kubernetes";
  readonly resources: readonly Resource[];
  readonly errors: readonly ResourceError[];
};

export interface KubernetesSourceInput {
  readonly watcher: KubernetesWatcher;
  readonly clock: Clock;
  readonly log: Logger;
  readonly kinds?: readonly KubernetesKind[];
  /** Quiet time within a burst of events (default 100 ms); a change after a quiet spell waits 5 ms (debounce.ts). */
  readonly debounceMs?: number;
}

/** The fields of ObjectMeta the resource schemas know; server-managed ones (managedFields, ownerReferences…) go. */
const KEPT_METADATA = ["name", "namespace", "labels", "annotations", "creationTimestamp", "uid", "resourceVersion"];
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** A live object → the document a user would have written: no status, no server-managed metadata, no secrets. */
export function asDocument(kind: KubernetesKind, o: KubernetesObject): Record<string, unknown> {
  const { status: _status, metadata = {}, ...rest } = o as KubernetesObject & { status?: unknown };
  const meta: Record<string, unknown> = {};
  for (const field of KEPT_METADATA) if (metadata[field] !== undefined) meta[field] = metadata[field];
  if (meta.creationTimestamp instanceof Date) meta.creationTimestamp = meta.creationTimestamp.toISOString();
  if (metadata.annotations?.[LAST_APPLIED] !== undefined) {
    const { [LAST_APPLIED]: _dropped, ...annotations } = metadata.annotations;
    meta.annotations = annotations;
  }
  const doc: Record<string, unknown> = { ...rest, apiVersion: kind.apiVersion, kind: kind.kind, metadata: meta };
  if (kind.kind === "Secret") {
    for (const field of ["data", "stringData"] as const) {
      const values = doc[field] as Record<string, unknown> | undefined;
      if (values) doc[field] = Object.fromEntries(Object.keys(values).map((k) => [k, ""]));
    }
  }
  return doc;
}

function objectKey(kind: KubernetesKind, o: KubernetesObject): string {
  return `${kind.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
}

export const kubernetesSourceActor = fromCallback<EventObject, KubernetesSourceInput, KubernetesSourceEvent>(
  ({ input, sendBack }) => {
    const kinds = input.kinds ?? WATCHED_KINDS;
    const objects = new Map<string, { kind: KubernetesKind; object: KubernetesObject }>();
    const synced = new Set<string>();
    let closed = false;

    // Each object's parse, kept while its document reads the same: an unchanged object gives the compiler the same
    // resource objects again, which is what lets it reuse what it compiled from them (compile_memo.ts), as the
    // loader's cache does for files.
    const parsedByKey = new Map<
      string,
      { readonly text: string; readonly result: ReturnType<typeof parseResources> }
    >();
    const emit = () => {
      if (closed || synced.size < kinds.length) return;
      const resources: Resource[] = [];
      const errors: ResourceError[] = [];
      for (const [key, { kind, object }] of [...objects].sort(([a], [b]) => a.localeCompare(b))) {
        const text = JSON.stringify(asDocument(kind, object));
        const hit = parsedByKey.get(key);
        const parsed = hit?.text === text ? hit.result : parseResources(text, `kubernetes:${key}`);
        parsedByKey.set(key, { text, result: parsed });
        resources.push(...parsed.resources);
        errors.push(...parsed.errors);
      }
      for (const key of parsedByKey.keys()) if (!objects.has(key)) parsedByKey.delete(key);
      sendBack({ type: "source.kubernetes", resources, errors });
    };
    const debounce = adaptiveDebounce(input.clock, input.debounceMs ?? 100, emit);
    const changed = () => debounce.poke();
    const stop = input.watcher.watch(kinds, (event) => {
      if (closed) return;
      switch (event.type) {
        case "ADDED":
        case "MODIFIED":
          objects.set(objectKey(event.kind, event.object), { kind: event.kind, object: event.object });
          break;
        case "DELETED":
          objects.delete(objectKey(event.kind, event.object));
          break;
        case "SYNCED":
          for (const [key, entry] of objects) if (entry.kind.kind === event.kind.kind) objects.delete(key);
          for (const object of event.objects) objects.set(objectKey(event.kind, object), { kind: event.kind, object });
          synced.add(event.kind.kind);
          break;
        case "ERROR":
          input.log.warn({ err: event.error, kind: event.kind.kind }, "Kubernetes watch failed; it re-lists");
          return;
      }
      changed();
    });
    return () => {
      closed = true;
      debounce.cancel();
      stop();
    };
  },
);
