// Kubernetes manifests for tests: the subset of kustomize that deploy/kubernetes uses (resources, namespace, images,
// configMapGenerator), and the reference checks between the objects it builds. Every check returns a list of
// problems ("<Kind> <name>: <what is wrong>") so a test can show all of them at once, and can break one reference in a
// copy of the build and see that it is reported.
import { parseAllDocuments } from "yaml";

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** One Kubernetes object as parsed; fields beyond metadata are read through the narrower types below. */
export interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [field: string]: unknown;
}

export interface ContainerPort {
  name?: string;
  containerPort?: number;
}
export interface VolumeMount {
  name?: string;
  mountPath?: string;
  readOnly?: boolean;
}
export interface KeySelector {
  name?: string;
  key?: string;
}
export interface EnvVar {
  name?: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: KeySelector; secretKeyRef?: KeySelector; fieldRef?: { fieldPath?: string } };
}
export interface Probe {
  httpGet?: { path?: string; port?: number | string };
  tcpSocket?: { port?: number | string };
  grpc?: { port?: number };
  exec?: { command?: string[] };
}
export interface Container {
  name?: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: ContainerPort[];
  volumeMounts?: VolumeMount[];
  restartPolicy?: string;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: Probe; postStart?: Probe };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
  };
}
export interface Volume {
  name?: string;
  emptyDir?: Record<string, unknown>;
  configMap?: { name?: string; items?: { key?: string; path?: string }[] };
  secret?: { secretName?: string; items?: { key?: string; path?: string }[] };
  persistentVolumeClaim?: { claimName?: string };
}
export interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
  securityContext?: { runAsNonRoot?: boolean };
}
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}

/** A Deployment or StatefulSet, read for its pod template. */
export interface Workload {
  readonly object: K8sObject;
  readonly where: string;
  readonly replicas: number;
  readonly selector: LabelSelector | undefined;
  readonly podLabels: Record<string, string>;
  readonly pod: PodSpec;
  /** Names of the volumeClaimTemplates of a StatefulSet: volumes the pod gets without declaring them. */
  readonly claimTemplates: readonly string[];
}

export interface ServicePort {
  name?: string;
  port?: number;
  targetPort?: number | string;
}
export interface ServiceSpec {
  clusterIP?: string;
  selector?: Record<string, string>;
  ports?: ServicePort[];
}

const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PersistentVolume",
  "StorageClass",
  "PriorityClass",
]);
const KUSTOMIZATION_FIELDS = new Set([
  "apiVersion",
  "kind",
  "namespace",
  "resources",
  "images",
  "configMapGenerator",
]);

export class KustomizeError extends Error {
  override name = "KustomizeError";
}

/**
 * Builds a kustomization directory as `kustomize build` would, for the fields deploy/kubernetes uses; any other
 * field is an error rather than something silently ignored. Generated ConfigMaps keep their plain names: kustomize
 * adds a content hash and rewrites the references to it, which changes no reference this module checks.
 */
export async function buildKustomization(dir: string): Promise<K8sObject[]> {
  const base = dir.replace(/\/+$/, "");
  const file = `${base}/kustomization.yaml`;
  const k = parseYamlDocuments(await Deno.readTextFile(file), file)[0] as Record<string, unknown> | undefined;
  if (!k || k["kind"] !== "Kustomization") throw new KustomizeError(`${file} is not a Kustomization`);
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) throw new KustomizeError(`${file}: field "${key}" is not supported here`);
  }
  const objects: K8sObject[] = [];
  for (const entry of (k["resources"] ?? []) as string[]) {
    const path = `${base}/${entry}`;
    if ((await Deno.stat(path)).isDirectory) objects.push(...await buildKustomization(path));
    else objects.push(...parseYamlDocuments(await Deno.readTextFile(path), path) as K8sObject[]);
  }
  for (const g of (k["configMapGenerator"] ?? []) as { name: string; files?: string[]; literals?: string[] }[]) {
    const data: Record<string, string> = {};
    for (const f of g.files ?? []) {
      const [key, path] = f.includes("=") ? f.split("=", 2) as [string, string] : [f.replace(/^.*\//, ""), f];
      data[key] = await Deno.readTextFile(`${base}/${path}`);
    }
    for (const l of g.literals ?? []) {
      const at = l.indexOf("=");
      data[l.slice(0, at)] = l.slice(at + 1);
    }
    objects.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data });
  }
  const namespace = k["namespace"];
  if (typeof namespace === "string") {
    for (const o of objects) {
      if (!CLUSTER_SCOPED.has(o.kind ?? "")) o.metadata = { ...o.metadata, namespace };
    }
  }
  for (const image of (k["images"] ?? []) as { name: string; newName?: string; newTag?: string }[]) {
    for (const w of workloads(objects)) {
      for (const c of containersOf(w.pod)) {
        const { name, tag } = splitImage(c.image ?? "");
        if (name === image.name) c.image = `${image.newName ?? name}${image.newTag ? `:${image.newTag}` : tag}`;
      }
    }
  }
  return objects;
}

export function parseYamlDocuments(text: string, file: string): unknown[] {
  return parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) throw new KustomizeError(`${file}#${i}: ${doc.errors[0]!.message}`);
    return doc.toJS();
  }).filter((d) => d !== null);
}

/** "registry:5000/a/b:tag" → name "registry:5000/a/b", tag ":tag" (a digest stays with the tag). */
export function splitImage(image: string): { name: string; tag: string } {
  const at = image.search(/[:@][^/]*$/);
  return at < 0 ? { name: image, tag: "" } : { name: image.slice(0, at), tag: image.slice(at) };
}

export function describe(o: K8sObject): string {
  return `${o.kind ?? "(no kind)"} ${o.metadata?.name ?? "(no name)"}`;
}

export function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind && o.metadata?.name === name);
}

export function workloads(objects: readonly K8sObject[]): Workload[] {
  return objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet").map((o) => {
    const spec = (o["spec"] ?? {}) as {
      replicas?: number;
      selector?: LabelSelector;
      template?: { metadata?: ObjectMeta; spec?: PodSpec };
      volumeClaimTemplates?: { metadata?: ObjectMeta }[];
    };
    return {
      object: o,
      where: describe(o),
      replicas: spec.replicas ?? 1,
      selector: spec.selector,
      podLabels: spec.template?.metadata?.labels ?? {},
      pod: spec.template?.spec ?? {},
      claimTemplates: (spec.volumeClaimTemplates ?? []).map((t) => t.metadata?.name ?? ""),
    };
  });
}

/** Regular containers, then init containers (a native sidecar is an init container with restartPolicy Always). */
export function containersOf(pod: PodSpec): Container[] {
  return [...pod.containers ?? [], ...pod.initContainers ?? []];
}

export function serviceSpec(o: K8sObject): ServiceSpec {
  return (o["spec"] ?? {}) as ServiceSpec;
}

export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

/** The container port a Service's targetPort or a probe's port names (by name or number), if any. */
export function resolvePort(containers: readonly Container[], port: number | string | undefined): number | undefined {
  for (const c of containers) {
    for (const p of c.ports ?? []) {
      if (typeof port === "string" ? p.name === port : p.containerPort === port) return p.containerPort;
    }
  }
  return undefined;
}

/** Where a path of the container's filesystem comes from: the mount holding it and the path inside the volume. */
export function mountFor(c: Container, path: string): { mount: VolumeMount; rest: string } | undefined {
  const mounts = [...c.volumeMounts ?? []].sort((a, b) => (b.mountPath?.length ?? 0) - (a.mountPath?.length ?? 0));
  for (const m of mounts) {
    const root = (m.mountPath ?? "").replace(/\/+$/, "");
    if (path === root || path.startsWith(`${root}/`)) return { mount: m, rest: path.slice(root.length + 1) };
  }
  return undefined;
}

/** Expands $(VAR) in args as the kubelet does, from the container's env (fieldRefs get a sample value). */
export function expandArgs(c: Container, samples: Record<string, string> = {}): string[] {
  const env = new Map((c.env ?? []).map((e) => [e.name ?? "", e.value ?? samples[e.name ?? ""] ?? `<${e.name}>`]));
  return (c.args ?? []).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, v) => env.get(v) ?? all));
}

/** The value of a `--flag=value` or `--flag value` argument. */
export function flagValue(args: readonly string[], ...names: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    for (const n of names) {
      if (args[i] === n) return args[i + 1];
      if (args[i]!.startsWith(`${n}=`)) return args[i]!.slice(n.length + 1);
    }
  }
  return undefined;
}

/** Secrets the README asks the user to create: rows "| `name` | `key`, `key` | ... |" of its "Secrets" table. */
export function documentedSecrets(readme: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const section = readme.split(/^## /m).find((s) => /^Secrets\b/.test(s)) ?? "";
  for (const m of section.matchAll(/^\|\s*`([a-z0-9.-]+)`\s*\|([^|]*)\|/gm)) {
    out.set(m[1]!, new Set([...m[2]!.matchAll(/`([^`]+)`/g)].map((k) => k[1]!)));
  }
  return out;
}

// ---- Reference checks -------------------------------------------------------------------------------------------

export interface Build {
  readonly objects: readonly K8sObject[];
  /** The namespace every namespaced object must be in. */
  readonly namespace: string;
  /** Secrets the user creates (not in the build), with their keys. */
  readonly userSecrets: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Every document is an object with apiVersion, kind and metadata.name, once, in the build's namespace. */
export function checkObjects(b: Build): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  b.objects.forEach((o, i) => {
    const where = `document ${i} (${describe(o)})`;
    for (
      const [field, value] of [["apiVersion", o.apiVersion], ["kind", o.kind], ["metadata.name", o.metadata?.name]]
    ) {
      if (typeof value !== "string" || value === "") problems.push(`${where}: ${field} is missing`);
    }
    const key = `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
    if (seen.has(key)) problems.push(`${where}: defined twice`);
    seen.add(key);
    const clusterScoped = CLUSTER_SCOPED.has(o.kind ?? "");
    if (!clusterScoped && o.metadata?.namespace !== b.namespace) {
      problems.push(`${where}: in namespace "${o.metadata?.namespace}", not "${b.namespace}"`);
    }
  });
  return problems;
}

/** The keys of a ConfigMap or Secret: built ones from their data, the user's from the README. */
function keysOf(b: Build, kind: "ConfigMap" | "Secret", name: string): ReadonlySet<string> | undefined {
  const o = find(b.objects, kind, name);
  if (o) return new Set([...Object.keys(o["data"] ?? {}), ...Object.keys(o["stringData"] ?? {})]);
  return kind === "Secret" ? b.userSecrets.get(name) : undefined;
}

function volumeKeys(b: Build, v: Volume): { what: string; keys: ReadonlySet<string> | undefined } | undefined {
  if (v.configMap) {
    const keys = keysOf(b, "ConfigMap", v.configMap.name ?? "");
    const items = v.configMap.items;
    return { what: `ConfigMap "${v.configMap.name}"`, keys: items && keys ? new Set(items.map((i) => i.path!)) : keys };
  }
  if (v.secret) {
    const keys = keysOf(b, "Secret", v.secret.secretName ?? "");
    const items = v.secret.items;
    return { what: `Secret "${v.secret.secretName}"`, keys: items && keys ? new Set(items.map((i) => i.path!)) : keys };
  }
  return undefined;
}

/** Pod templates: selectors, volumes and their sources, mounts, env references, probe ports and file arguments. */
export function checkWorkloads(b: Build): string[] {
  const problems: string[] = [];
  for (const w of workloads(b.objects)) {
    const at = (s: string) => problems.push(`${w.where}: ${s}`);
    const matchLabels = w.selector?.matchLabels;
    if (!matchLabels || !selects(matchLabels, w.podLabels)) {
      at("spec.selector does not match the pod template's labels");
    }
    if (w.pod.serviceAccountName && !find(b.objects, "ServiceAccount", w.pod.serviceAccountName)) {
      at(`serviceAccountName "${w.pod.serviceAccountName}" is not defined`);
    }
    const volumes = new Map((w.pod.volumes ?? []).map((v) => [v.name ?? "", v]));
    const mounted = new Set<string>();
    for (const v of volumes.values()) {
      const source = volumeKeys(b, v);
      if (source && source.keys === undefined) at(`volume "${v.name}": ${source.what} does not exist`);
      const items = [...v.configMap?.items ?? [], ...v.secret?.items ?? []];
      const all = v.configMap
        ? keysOf(b, "ConfigMap", v.configMap.name ?? "")
        : keysOf(b, "Secret", v.secret?.secretName ?? "");
      for (const item of items) {
        if (all && !all.has(item.key ?? "")) at(`volume "${v.name}": key "${item.key}" is not in ${source?.what}`);
      }
    }
    for (const c of containersOf(w.pod)) {
      const cat = (s: string) => at(`container ${c.name}: ${s}`);
      for (const m of c.volumeMounts ?? []) {
        mounted.add(m.name ?? "");
        if (!volumes.has(m.name ?? "") && !w.claimTemplates.includes(m.name ?? "")) {
          cat(`mounts volume "${m.name}", which the pod does not define`);
        }
      }
      const env = new Set((c.env ?? []).map((e) => e.name));
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.configMapKeyRef ?? e.valueFrom?.secretKeyRef;
        if (!ref) continue;
        const kind = e.valueFrom?.configMapKeyRef ? "ConfigMap" : "Secret";
        const keys = keysOf(b, kind, ref.name ?? "");
        if (!keys) cat(`env ${e.name}: ${kind} "${ref.name}" does not exist`);
        else if (!keys.has(ref.key ?? "")) cat(`env ${e.name}: ${kind} "${ref.name}" has no key "${ref.key}"`);
      }
      for (const a of [...c.command ?? [], ...c.args ?? []]) {
        for (const m of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
          if (!env.has(m[1])) cat(`argument "${a}" refers to $(${m[1]}), which is not in its env`);
        }
      }
      for (const [kind, probe] of Object.entries({ ...c, ...c.lifecycle })) {
        if (!/Probe$|^preStop$/.test(kind)) continue;
        const port = (probe as Probe).httpGet?.port ?? (probe as Probe).tcpSocket?.port;
        if (port !== undefined && resolvePort([c], port) === undefined) {
          cat(`${kind} uses port ${JSON.stringify(port)}, which the container does not declare`);
        }
      }
      for (const path of pathArguments(c.args ?? [])) {
        const found = mountFor(c, path);
        const holdsMounts = (c.volumeMounts ?? []).some((m) => m.mountPath?.startsWith(`${path.replace(/\/+$/, "")}/`));
        if (!found && holdsMounts) continue; // a directory of mounts, e.g. --secrets-dir
        if (!found) {
          cat(`argument path ${path} is on no volume (the root filesystem is read-only or the image's)`);
          continue;
        }
        const source = volumeKeys(b, volumes.get(found.mount.name ?? "") ?? {});
        const key = found.rest.split("/")[0]!;
        if (found.rest !== "" && source?.keys && !source.keys.has(key)) {
          cat(`argument path ${path}: ${source.what} mounted at ${found.mount.mountPath} has no key "${key}"`);
        }
      }
    }
    for (const name of volumes.keys()) if (!mounted.has(name)) at(`volume "${name}" is mounted by no container`);
  }
  return problems;
}

/**
 * Absolute paths in arguments: "/x", "--flag=/x", "unix:///x". A `--*-target=` flag names where another process
 * listens, not a file of this container, and is left out.
 */
export function pathArguments(args: readonly string[]): string[] {
  return args.filter((a) => !/^--[a-z-]+-target=/.test(a))
    .map((a) => a.replace(/^--?[A-Za-z0-9-]+=/, "").replace(/^unix:\/\//, ""))
    .filter((a) => a.startsWith("/"));
}

/** Services select a workload's pods, and each port's targetPort is a port of those pods' containers. */
export function checkServices(b: Build): string[] {
  const problems: string[] = [];
  for (const s of b.objects.filter((o) => o.kind === "Service")) {
    const spec = serviceSpec(s);
    const selected = workloads(b.objects).filter((w) => selects(spec.selector, w.podLabels));
    if (selected.length === 0) problems.push(`${describe(s)}: its selector selects no workload's pods`);
    for (const p of spec.ports ?? []) {
      for (const w of selected) {
        const target = resolvePort(containersOf(w.pod), p.targetPort ?? p.port);
        if (target === undefined) {
          problems.push(
            `${describe(s)}: port ${p.name}: targetPort ${p.targetPort} is no container port of ${w.where}`,
          );
        } else if (spec.clusterIP === "None" && target !== p.port) {
          // A headless Service proxies nothing: clients connect to the pod on the Service's port number.
          problems.push(`${describe(s)}: headless, so port ${p.port} must be the container port (it is ${target})`);
        }
      }
    }
  }
  return problems;
}

/** Each PodDisruptionBudget selects exactly one workload and leaves it room to be disrupted. */
export function checkDisruptionBudgets(b: Build): string[] {
  const problems: string[] = [];
  for (const pdb of b.objects.filter((o) => o.kind === "PodDisruptionBudget")) {
    const spec = (pdb["spec"] ?? {}) as { selector?: LabelSelector; minAvailable?: number; maxUnavailable?: number };
    const selected = workloads(b.objects).filter((w) => selects(spec.selector?.matchLabels, w.podLabels));
    if (selected.length !== 1) {
      problems.push(`${describe(pdb)}: selects ${selected.length} workloads (${selected.map((w) => w.where)}), not 1`);
      continue;
    }
    const w = selected[0]!;
    const ok = spec.minAvailable !== undefined
      ? spec.minAvailable >= 1 && spec.minAvailable < w.replicas
      : spec.maxUnavailable !== undefined && spec.maxUnavailable >= 1 && spec.maxUnavailable < w.replicas;
    if (!ok) problems.push(`${describe(pdb)}: leaves ${w.where} (${w.replicas} replicas) no disruption or no pods`);
  }
  return problems;
}

/** Non-root, read-only root filesystem, no privilege escalation, CPU and memory requests and limits. */
export function checkPodSecurity(b: Build): string[] {
  const problems: string[] = [];
  for (const w of workloads(b.objects)) {
    for (const c of containersOf(w.pod)) {
      const at = (s: string) => problems.push(`${w.where}: container ${c.name}: ${s}`);
      const sc = c.securityContext ?? {};
      if ((sc.runAsNonRoot ?? w.pod.securityContext?.runAsNonRoot) !== true) at("runAsNonRoot is not true");
      if (sc.readOnlyRootFilesystem !== true) at("readOnlyRootFilesystem is not true");
      if (sc.allowPrivilegeEscalation !== false) at("allowPrivilegeEscalation is not false");
      for (const kind of ["requests", "limits"] as const) {
        for (const r of ["cpu", "memory"]) if (!c.resources?.[kind]?.[r]) at(`no ${r} in resources.${kind}`);
      }
    }
  }
  return problems;
}
