import { assert, assertEquals } from "../../test/support/assert.ts";
import { parseResources } from "../control/resources/load.ts";
import type { AIGatewayRoute, SemanticRouter } from "../control/resources/resource.ts";
import { compileSemanticRouters } from "./compile_router.ts";

const ROUTE = `apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: { name: chat }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ headers: [{ type: Exact, name: x-ai-eg-model, value: big }] }]
      backendRefs: [{ name: b }]
    - matches: [{ headers: [{ type: Exact, name: x-ai-eg-model, value: small }] }]
      backendRefs: [{ name: b }]
`;

function compile(router: string, models: string[] | null = ["big", "small"]) {
  const parsed = parseResources(`${ROUTE}---\n${router}`, "test.yaml");
  assertEquals(parsed.errors, []);
  const routers = parsed.resources.filter((r): r is SemanticRouter => r.kind === "SemanticRouter");
  const routes = parsed.resources.filter((r): r is AIGatewayRoute => r.kind === "AIGatewayRoute");
  return compileSemanticRouters(routers, { ...(models === null ? {} : { models }), routes });
}

const HEAD = `apiVersion: tollgate.dev/v1alpha1
kind: SemanticRouter
metadata: { name: r }
spec:
`;

Deno.test("compileSemanticRouters fills defaults, sorts models by score and decisions by priority", () => {
  const { configs, errors } = compile(
    HEAD + `  defaultModel: small
  categories:
    - name: math
      description: algebra, calculus
      examples: [Solve x + 1 = 2]
      models: [{ name: small, score: 0.2 }, { name: big, score: 0.9, reasoning: true }]
    - name: chat
      examples: [Hello there]
  decisions:
    - { name: low, when: { category: math }, category: math }
    - { name: high, priority: 10, when: { not: { category: chat } }, models: [{ name: big }] }
`,
  );
  assertEquals(errors, []);
  const c = configs[0]!;
  assertEquals([c.name, c.triggerModels, c.routeModels, c.confidenceThreshold], ["default/r", ["auto"], [], 0.3]);
  assertEquals(c.categories[0]!.models.map((m) => m.model), ["big", "small"]);
  assertEquals(c.decisions.map((d) => d.name), ["high", "low"]);
  assert(c.classifier.kind === "builtin");
  assertEquals(c.classifier.examples.filter((e) => e.category === "math").map((e) => e.text), [
    "Solve x + 1 = 2",
    "algebra",
    "calculus",
  ]);
  assertEquals([c.debugHeaders, c.cache, c.pii], [true, undefined, undefined]);
});

Deno.test("compileSemanticRouters routes every model of a target route, each model's fallback being itself", () => {
  const { configs, errors } = compile(
    HEAD + `  models: [router]
  targetRefs: [{ name: chat }]
  defaultModel: small
`,
  );
  assertEquals(errors, []);
  assertEquals([configs[0]!.triggerModels, configs[0]!.routeModels], [["router"], ["big", "small"]]);
});

Deno.test("compileSemanticRouters reports each problem at its field", () => {
  const { errors } = compile(
    HEAD + `  models: [big]
  defaultModel: nope
  targetRefs: [{ name: missing }]
  categories:
    - name: math
      examples: [x]
      models: [{ name: ghost }]
  signals:
    keywords: [{ name: k, patterns: ["(open"] }]
    embeddings: [{ name: e, examples: [hi], threshold: 0.5 }]
  decisions:
    - { name: d, when: { any: [{ keyword: nope }, { category: law }] }, models: [{ name: big }] }
  modelConfig:
    - { name: big, reasoningFamily: qwen, pii: { allowedTypes: [passport] } }
  guards:
    pii: { allow: ["/[/"] }
  cache: { mode: similarity }
`,
  );
  const byPath = Object.fromEntries(errors.map((e) => [e.path, e.message]));
  assertEquals(
    Object.keys(byPath).sort(),
    [
      "spec.cache.mode",
      "spec.categories",
      "spec.categories[0].models[0].name",
      "spec.decisions[0].when.any[0].keyword",
      "spec.decisions[0].when.any[1].category",
      "spec.defaultModel",
      "spec.modelConfig[0].pii.allowedTypes[0]",
      "spec.modelConfig[0].reasoningFamily",
      "spec.models[0]",
      "spec.signals.embeddings",
      "spec.signals.keywords[0].patterns[0]",
      "spec.targetRefs[0].name",
      "spec.guards.pii.allow[0]",
    ].sort(),
  );
  assertEquals(byPath["spec.defaultModel"], 'Model "nope" is not served by any AIGatewayRoute');
  assertEquals(byPath["spec.models[0]"], 'Model "big" is served by an AIGatewayRoute; a routing trigger must not be');
  assert(errors.every((e) => e.file === "test.yaml" && e.document === 1 && e.name === "default/r"));
});

Deno.test("compileSemanticRouters refuses two routers claiming the same model", () => {
  const parsed = parseResources(
    `${HEAD}  defaultModel: small\n---\n${HEAD.replace("name: r", "name: s")}  defaultModel: small\n`,
    "two.yaml",
  );
  const { errors } = compileSemanticRouters(parsed.resources as SemanticRouter[], { models: ["small"], routes: [] });
  assertEquals(errors.map((e) => [e.name, e.message]), [[
    "default/s",
    'Model "auto" is already routed by SemanticRouter "default/r"',
  ]]);
});

Deno.test("compileSemanticRouters without gateway models skips model checks (eval on a router alone)", () => {
  const { errors } = compile(HEAD + `  defaultModel: anything\n`, null);
  assertEquals(errors, []);
});
