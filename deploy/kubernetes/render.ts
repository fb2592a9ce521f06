// Renders deploy/kubernetes/base/gateway/envoy.yaml, the Envoy bootstrap of the gateway pods, with the CLI users run:
//   node_modules/.bin/deno run -A deploy/kubernetes/render.ts
// It is `tollgate render envoy` on the resources the controller and sidecars load (base/resources/), pointed at the
// sidecar's socket in the pod and at the aggregator's Service. test/deploy_manifests_test.ts fails when the file is
// not what this renders.
import { parseAllDocuments } from "yaml";

const root = new URL("../../", import.meta.url).pathname;
const base = new URL("./base/", import.meta.url).pathname;

/** Where the pieces meet; the test checks each against the manifests. */
export const DEPLOY = {
  namespace: "tollgate",
  /** The sidecar's --listen unix:// path, inside the emptyDir both containers mount at /run/tollgate. */
  extProcSocket: "/run/tollgate/extproc.sock",
  /** The aggregator's headless Service and RLS port: Envoy resolves every ready replica (STRICT_DNS). */
  rateLimitService: "tollgate-aggregator",
  rateLimitPort: 8081,
  listen: "0.0.0.0:1975",
  envoyAdminPort: 9901,
} as const;

export const RESOURCES_DIR = `${base}resources`;
export const BOOTSTRAP_FILE = `${base}gateway/envoy.yaml`;

export interface SecretRef {
  readonly namespace: string;
  readonly name: string;
}

/** The Secrets the BackendSecurityPolicies among these YAML texts name (namespace "default" when they give none). */
export function secretReferences(resourcesYaml: readonly string[]): SecretRef[] {
  const refs = new Map<string, SecretRef>();
  const visit = (node: unknown, namespace: string): void => {
    if (Array.isArray(node)) return node.forEach((n) => visit(n, namespace));
    if (node === null || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      const ref = value as { name?: unknown; namespace?: unknown } | null;
      if (/secretRef$|^clientSecret$/i.test(key) && typeof ref?.name === "string") {
        const ns = typeof ref.namespace === "string" ? ref.namespace : namespace;
        refs.set(`${ns}/${ref.name}`, { name: ref.name, namespace: ns });
      } else visit(value, namespace);
    }
  };
  for (const text of resourcesYaml) {
    for (const doc of parseAllDocuments(text)) {
      const r = doc.toJS() as { kind?: string; metadata?: { namespace?: string }; spec?: unknown } | null;
      if (r?.kind === "BackendSecurityPolicy") visit(r.spec, r.metadata?.namespace ?? "default");
    }
  }
  return [...refs.values()];
}

/**
 * `tollgate render envoy` checks that every BackendSecurityPolicy's Secret exists among the resources, and these
 * resources carry none: in the cluster the Secrets are files mounted into the sidecar. The bootstrap never holds
 * credentials, so rendering gets placeholders for the Secrets the policies name, with every key a policy type reads.
 */
export function placeholderSecrets(refs: readonly SecretRef[]): string {
  return refs.map((r) =>
    [
      "apiVersion: v1",
      "kind: Secret",
      `metadata: { name: ${r.name}, namespace: ${r.namespace} }`,
      "stringData:",
      "  apiKey: placeholder",
      "  client-id: placeholder",
      "  client-secret: placeholder",
      '  credentials: "[default]\\naws_access_key_id = placeholder\\naws_secret_access_key = placeholder\\n"',
    ].join("\n")
  ).join("\n---\n") + "\n";
}

export function renderArgs(placeholders: string, out: string): string[] {
  return [
    "render",
    "envoy",
    RESOURCES_DIR,
    placeholders,
    "--out",
    out,
    "--extproc-socket",
    DEPLOY.extProcSocket,
    "--ratelimit",
    `${DEPLOY.rateLimitService}.${DEPLOY.namespace}.svc.cluster.local:${DEPLOY.rateLimitPort}`,
    "--listen",
    DEPLOY.listen,
    "--admin-port",
    String(DEPLOY.envoyAdminPort),
  ];
}

/** Runs `bin/tollgate render envoy` as a user would and returns the bootstrap it writes. */
export async function renderDeployBootstrap(): Promise<string> {
  const texts: string[] = [];
  for await (const e of Deno.readDir(RESOURCES_DIR)) {
    if (e.isFile && /\.ya?ml$/.test(e.name)) texts.push(await Deno.readTextFile(`${RESOURCES_DIR}/${e.name}`));
  }
  const dir = await Deno.makeTempDir({ prefix: "tollgate-render-" });
  try {
    const placeholders = `${dir}/placeholder-secrets.yaml`;
    await Deno.writeTextFile(placeholders, placeholderSecrets(secretReferences(texts)));
    const out = await new Deno.Command(`${root}bin/tollgate`, {
      args: renderArgs(placeholders, `${dir}/envoy.yaml`),
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.code !== 0) throw new Error(`tollgate render envoy failed (exit ${out.code}): ${stderr}`);
    return await Deno.readTextFile(`${dir}/envoy.yaml`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  await Deno.writeTextFile(BOOTSTRAP_FILE, await renderDeployBootstrap());
  console.error(`wrote ${BOOTSTRAP_FILE}`);
}
