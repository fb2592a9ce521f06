import { fileURLToPath } from "node:url";
import { assertEquals } from "../../../test/support/assert.ts";
import { loadResources, type LoadResult, parseResources } from "./load.ts";
import type { ResourceError } from "./errors.ts";

const TESTDATA = fileURLToPath(new URL("../../../testdata/resources/", import.meta.url));

function kinds(resources: readonly { kind: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of resources) out[r.kind] = (out[r.kind] ?? 0) + 1;
  return out;
}

Deno.test("loadResources loads Envoy AI Gateway's basic example and skips the documents Tollgate does not read", async () => {
  const { resources, errors, ignored } = await loadResources([`${TESTDATA}basic`]);
  assertEquals(errors, []);
  assertEquals(kinds(resources), {
    GatewayClass: 1,
    Gateway: 1,
    AIGatewayRoute: 1,
    AIServiceBackend: 5,
    BackendSecurityPolicy: 4,
    Backend: 5,
    Secret: 4,
  });
  assertEquals(ignored.map((d) => `${d.kind}#${d.document}`), [
    "BackendTLSPolicy#15",
    "BackendTLSPolicy#16",
    "BackendTLSPolicy#17",
    "BackendTLSPolicy#18",
    "Deployment#25",
    "Service#26",
  ]);
  const route = resources.find((r) => r.kind === "AIGatewayRoute");
  assertEquals(route?.origin, {
    file: `${TESTDATA}basic/basic.yaml`,
    document: 2,
    kind: "AIGatewayRoute",
    name: "default/envoy-ai-gateway-basic",
  });
});

Deno.test("loadResources reads every YAML file of a directory, the provider fallback example in two files", async () => {
  const { resources, errors } = await loadResources([`${TESTDATA}provider_fallback`]);
  assertEquals(errors, []);
  const policy = resources.find((r) => r.kind === "BackendTrafficPolicy");
  // A namespace-less document lands in "default"; the leading comment and "---" do not shift the document index.
  assertEquals(policy?.metadata, { name: "passive-health-check", namespace: "default" });
  assertEquals(policy?.origin.document, 0);
  assertEquals(kinds(resources).AIServiceBackend, 2);
});

Deno.test("loadResources loads the token rate limit example with its costs and five rules", async () => {
  const { resources, errors } = await loadResources([`${TESTDATA}token_ratelimit`]);
  assertEquals(errors, []);
  const route = resources.find((r) => r.kind === "AIGatewayRoute");
  const costs = route?.kind === "AIGatewayRoute" ? route.spec.llmRequestCosts : undefined;
  assertEquals(costs?.map((c) => c.type), [
    "InputToken",
    "CachedInputToken",
    "CachedWriteInputToken",
    "OutputToken",
    "TotalToken",
    "CEL",
  ]);
  const policy = resources.find((r) => r.kind === "BackendTrafficPolicy");
  assertEquals(policy?.kind === "BackendTrafficPolicy" ? policy.spec.rateLimit?.global?.rules.length : 0, 5);
});

Deno.test("loadResources substitutes ${VAR}s from the env map it is given", async () => {
  const { resources, errors } = await loadResources([`${TESTDATA}v1beta1`], {
    env: { ANTHROPIC_API_KEY: "sk-ant-test", LISTENER_PORT: "9090" },
  });
  assertEquals(errors, []);
  const secret = resources.find((r) => r.kind === "Secret" && r.metadata.name === "anthropic-key");
  assertEquals(secret?.kind === "Secret" ? secret.stringData : undefined, { apiKey: "sk-ant-test" });
  const gateway = resources.find((r) => r.kind === "Gateway");
  assertEquals(gateway?.kind === "Gateway" ? gateway.spec.listeners[0]?.port : undefined, 9090);
  const backend = resources.find((r) => r.kind === "Backend" && r.metadata.name === "anthropic");
  assertEquals(backend?.kind === "Backend" ? backend.spec.endpoints[0]?.ip?.port : undefined, 18085);
});

function at(file: string, document: number, kind: string, name: string) {
  return (path: string, message: string, line?: number): ResourceError => ({
    file: `${TESTDATA}invalid/${file}`,
    document,
    kind,
    name,
    path,
    message,
    ...(line === undefined ? {} : { line }),
  });
}

Deno.test("loadResources reports unknown fields, wrong types and missing fields with file, document and path", async () => {
  const { errors, resources } = await loadResources([`${TESTDATA}invalid/schema.yaml`]);
  const route = at("schema.yaml", 0, "AIGatewayRoute", "default/typos");
  const backend = at("schema.yaml", 1, "Backend", "llm/b");
  const service = at("schema.yaml", 2, "AIServiceBackend", "default/no-schema");
  const policy = at("schema.yaml", 3, "BackendTrafficPolicy", "default/limits");
  assertEquals(resources, []);
  assertEquals(errors, [
    route("spec.rules[0].backendRefs[0].prioirty", 'Unknown field "prioirty"', 16),
    route("spec.rules[0].backendRefs[1].priority", 'Expected a number, got string "high"', 18),
    // v1beta1 dropped spec.schema; only v1alpha1 still accepts it.
    route("spec.schema", 'Unknown field "schema"', 19),
    backend("spec.endpoints[0].fqdn.port", 'Expected a number, got string "eighty"', 31),
    service("spec.schema", "Field is required", 37),
    policy("spec.loadBalancer", "Field is not supported by Tollgate", 52),
    policy(
      "spec.rateLimit.global.rules[0].limit.unit",
      'Expected one of "Second", "Minute", "Hour", "Day", "Month", "Year", got string "Week"',
      59,
    ),
  ]);
});

Deno.test("loadResources reports every dangling reference and duplicate name", async () => {
  const { errors } = await loadResources([`${TESTDATA}invalid/references.yaml`]);
  const route = at("references.yaml", 0, "AIGatewayRoute", "default/route");
  assertEquals(errors, [
    route("spec.parentRefs[0].name", 'Gateway "default/missing-gateway" is not defined'),
    route("spec.rules[0].backendRefs[1].name", 'AIServiceBackend "default/missing" is not defined'),
    at("references.yaml", 1, "AIServiceBackend", "default/present")(
      "spec.backendRef.name",
      'Backend "default/missing-backend" is not defined',
    ),
    at("references.yaml", 2, "BackendSecurityPolicy", "default/key")(
      "spec.apiKey.secretRef.name",
      'Secret "default/missing-secret" is not defined',
    ),
    at("references.yaml", 3, "BackendTrafficPolicy", "default/retry")(
      "spec.targetRefs[0].name",
      'Policy targets nothing: AIGatewayRoute "default/ghost" is not defined',
    ),
    at("references.yaml", 4, "AIServiceBackend", "default/present")(
      "metadata.name",
      `Duplicate AIServiceBackend "default/present": also defined in ${TESTDATA}invalid/references.yaml#1`,
    ),
  ]);
});

Deno.test("loadResources reports unset variables, bad names and unterminated references once each", async () => {
  const { errors } = await loadResources([`${TESTDATA}invalid/variables.yaml`], { env: {} });
  const secret = at("variables.yaml", 0, "Secret", "default/keys");
  assertEquals(errors, [
    secret("stringData.apiKey", 'Environment variable "OPENAI_API_KEY" is not set and has no default', 8),
    secret("stringData.other", 'Invalid variable name "1BAD" in "${1BAD}"', 9),
    secret("stringData.third", 'Unterminated variable reference "${OPEN"', 10),
    // The port keeps its ${...} text, which the schema would also reject; the error is reported once.
    at("variables.yaml", 1, "Backend", "default/upstream")(
      "spec.endpoints[0].ip.port",
      'Environment variable "UPSTREAM_PORT" is not set and has no default',
      20,
    ),
  ]);
});

Deno.test("loadResources reports YAML syntax errors and unsupported kinds without losing the good documents", async () => {
  const { errors, resources } = await loadResources([`${TESTDATA}invalid/syntax.yaml`]);
  assertEquals(resources.map((r) => r.metadata.name), ["fine"]);
  assertEquals(errors, [
    {
      file: `${TESTDATA}invalid/syntax.yaml`,
      document: 1,
      path: "",
      message: "Invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
      line: 15,
    },
    at("syntax.yaml", 2, "SemanticRoute", "default/later")(
      "kind",
      "Kind SemanticRoute of tollgate.dev is not supported by Tollgate",
      17,
    ),
  ]);
});

Deno.test("loadResources reports a path that does not exist", async () => {
  const { errors } = await loadResources([`${TESTDATA}nowhere`]);
  assertEquals(errors, [{ file: `${TESTDATA}nowhere`, path: "", message: "No such file or directory" }]);
});

Deno.test("parseResources checks type-specific rules: the sub-object a security policy type needs", () => {
  const text = [
    "apiVersion: aigateway.envoyproxy.io/v1beta1",
    "kind: BackendSecurityPolicy",
    "metadata: {name: p, namespace: llm}",
    "spec:",
    "  type: APIKey",
    "  awsCredentials: {region: us-east-1}",
  ].join("\n");
  const { errors } = parseResources(text, "p.yaml");
  const policy = (path: string, message: string, line: number): ResourceError => ({
    file: "p.yaml",
    document: 0,
    kind: "BackendSecurityPolicy",
    name: "llm/p",
    path,
    message,
    line,
  });
  assertEquals(errors, [
    policy("spec.apiKey", "Field is required when type is APIKey", 4),
    policy("spec.awsCredentials", "Field is not allowed when type is APIKey", 6),
  ]);
});

Deno.test("parseResources refuses other versions of kinds it reads and lists of resources", () => {
  const text = "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: Gateway\nmetadata: {name: g}\n---\n" +
    "apiVersion: v1\nkind: List\nitems: []\n";
  assertEquals(parseResources(text, "g.yaml").errors.map((e) => `${e.document} ${e.path}: ${e.message}`), [
    "0 kind: Gateway gateway.networking.k8s.io/v1alpha2 is not supported; use gateway.networking.k8s.io/v1 or " +
    "gateway.networking.k8s.io/v1beta1",
    "1 kind: Lists are not supported; write one resource per document",
  ]);
});

Deno.test("loadResources with changed files reads only those again, and everything when one is not accounted for", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-load-changed-" });
  const gateway = (name: string, port: number) =>
    `apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: ${name}}\nspec:\n` +
    `  gatewayClassName: c\n  listeners: [{name: http, protocol: HTTP, port: ${port}}]\n`;
  const ports = (r: LoadResult) =>
    r.resources.map((x) =>
      ("spec" in x ? x.spec as { listeners: { port: number }[] } : { listeners: [] }).listeners[0]!.port
    );
  try {
    await Deno.writeTextFile(`${dir}/a.yaml`, gateway("a", 1));
    await Deno.writeTextFile(`${dir}/b.yaml`, gateway("b", 2));
    const cache: NonNullable<Parameters<typeof loadResources>[1]>["cache"] = new Map();
    const first = await loadResources([dir], { cache });
    assertEquals(ports(first), [1, 2]);

    // Both files change on disk, the events name only b.yaml: a.yaml comes from the cache, its objects unchanged.
    await Deno.writeTextFile(`${dir}/a.yaml`, gateway("a", 10));
    await Deno.writeTextFile(`${dir}/b.yaml`, gateway("b", 20));
    const second = await loadResources([dir], { cache, changed: new Set([`${dir}/b.yaml`]) });
    assertEquals(ports(second), [1, 20]);
    assertEquals(second.resources[0] === first.resources[0], true);

    // A new file is read though no event named it; a removed one is gone.
    await Deno.writeTextFile(`${dir}/c.yaml`, gateway("c", 3));
    await Deno.remove(`${dir}/b.yaml`);
    assertEquals(ports(await loadResources([dir], { cache, changed: new Set([`${dir}/b.yaml`]) })), [1, 3]);

    // A changed path that is on disk but not what the walk found (another spelling of a file, a symlink) makes it
    // read everything.
    await Deno.symlink(`${dir}/a.yaml`, `${dir}/alias.yml`);
    assertEquals(ports(await loadResources([dir], { cache, changed: new Set([`${dir}/alias.yml`]) })), [10, 3]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
