// What `tollgate render envoy` writes must load in Envoy: the whole bootstrap, every nested message and every
// typed_config, decoded strictly against Envoy's own protos (test/support/envoy_protos.ts). Envoy rejects a bootstrap
// with an unknown field or an "@type" it does not know, and so does this decode.
import { throws } from "node:assert/strict";
import { toJson } from "@bufbuild/protobuf";
import { parse } from "yaml";
import { assert, assertEquals } from "./support/assert.ts";
import { decodeEnvoy, envoyRegistry, messageType } from "./support/envoy_protos.ts";
import { TOLLGATE } from "./support/process.ts";
import { exampleEdgeConfig, renderExample } from "../deploy/envoy/render_example.ts";
import type { EdgeConfig } from "../src/edge/config.ts";
import { renderEnvoyBootstrap, renderEnvoyYaml } from "../src/edge/render_envoy.ts";
import { Bootstrap } from "../src/protocol/gen/envoy/config/bootstrap/v3/bootstrap.ts";
import { RateLimitPerRoute } from "../src/protocol/gen/envoy/extensions/filters/http/ratelimit/v3/rate_limit.ts";

const BOOTSTRAP = "envoy.config.bootstrap.v3.Bootstrap";
const options = { extProcSocketPath: "/run/tollgate/extproc.sock" };

/** The example plus what it leaves out: every descriptor action, mutation rules, plain and mixed-TLS clusters. */
const everything: EdgeConfig = {
  ...exampleEdgeConfig,
  routerExtProc: {
    ...exampleEdgeConfig.routerExtProc!,
    initialMetadata: { "x-tollgate-role": "router" },
    requestAttributes: ["xds.route_name"],
    mutationRules: { allowAllRouting: true, allowEnvoy: false, disallowSystem: true, disallowIsError: true },
  },
  routes: [
    ...exampleEdgeConfig.routes,
    {
      name: "mixed",
      match: { prefix: "/v1/", headers: [{ name: "x-ai-eg-model", exact: "mixed" }] },
      cluster: "mixed",
      timeoutMs: 0,
      retryPolicy: {
        retryOn: ["5xx", "gateway-error"],
        numRetries: 3,
        perTryTimeoutMs: 0,
        retriableStatusCodes: [],
        previousPriorities: false,
        backOff: { baseMs: 0, maxMs: 0 },
      },
      rateLimits: [{
        actions: [
          {
            kind: "headerValueMatch",
            descriptorKey: "tier",
            descriptorValue: "free",
            expectMatch: false,
            headers: [{ name: "x-tier", exact: "premium" }],
          },
          {
            kind: "metadata",
            descriptorKey: "backend",
            namespace: "io.envoy.ai_gateway",
            key: "backend",
            defaultValue: "-",
          },
        ],
        applyOnStreamDone: true,
        hitsAddend: { number: 1000 },
      }],
      autoHostRewrite: true,
    },
  ],
  clusters: [
    ...exampleEdgeConfig.clusters,
    {
      name: "mixed",
      priorities: [
        [{ host: "api.anthropic.com", port: 443, weight: 2, tls: true, metadata: {} }],
        [],
        [{ host: "ollama.internal", port: 11434, weight: 1, tls: false, metadata: { "aigateway.envoy.io": {} } }],
      ],
      connectTimeoutMs: 1500,
    },
  ],
  accessLog: "/var/log/tollgate/access.log",
};

async function decodeYaml(text: string) {
  return decodeEnvoy(await envoyRegistry(), BOOTSTRAP, parse(text));
}

Deno.test("the rendered bootstrap decodes strictly as Envoy's Bootstrap, typed_configs included", async () => {
  const registry = await envoyRegistry();
  const decoded = await decodeYaml(renderEnvoyYaml(everything, { ...options, rateLimitTarget: "rls.internal:8081" }));
  // The decode kept what Envoy 1.33 added to route.v3.RateLimit (declared by the patch in scripts/gen_proto.sh).
  const json = JSON.stringify(toJson(messageType(registry, BOOTSTRAP), decoded, { registry, useProtoFieldName: true }));
  assert(json.includes('"apply_on_stream_done":true'), "apply_on_stream_done was lost");
  assert(json.includes('"format":"%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%"'), "hits_addend was lost");
  assert(json.includes('"number":"1000"'), "hits_addend.number was lost");
});

Deno.test("deploy/envoy/envoy.yaml decodes strictly and is what render_example.ts renders", async () => {
  const text = await Deno.readTextFile(new URL("../deploy/envoy/envoy.yaml", import.meta.url));
  assertEquals(
    text,
    renderExample(),
    "deploy/envoy/envoy.yaml is stale: run deno run -A deploy/envoy/render_example.ts",
  );
  await decodeYaml(text);
});

Deno.test("a misspelled field deep inside a typed_config fails the decode", async () => {
  const text = renderEnvoyYaml(exampleEdgeConfig, options).replace("update_frequency:", "update_frequncy:");
  await decodeYaml(text).then(
    () => assert(false, "the decode accepted update_frequncy"),
    (e: Error) => assert(e.message.includes('"update_frequncy" is unknown'), e.message),
  );
});

Deno.test("an @type that Envoy does not know fails the decode", async () => {
  const text = renderEnvoyYaml(exampleEdgeConfig, options).replaceAll(
    "ratelimit.v3.RateLimitPerRoute",
    "ratelimit.v3.RateLimitPerRout",
  );
  await decodeYaml(text).then(
    () => assert(false, "the decode accepted RateLimitPerRout"),
    (e: Error) => assert(e.message.includes("RateLimitPerRout is not in the type registry"), e.message),
  );
});

Deno.test("an enum name that Envoy does not know fails the decode", async () => {
  const registry = await envoyRegistry();
  const bootstrap = structuredClone(renderEnvoyBootstrap(exampleEdgeConfig, options)) as {
    static_resources: { clusters: { type: string }[] };
  };
  bootstrap.static_resources.clusters[0]!.type = "STRICT";
  throws(() => decodeEnvoy(registry, BOOTSTRAP, bootstrap), /STRICT/);
});

Deno.test("the generated ts-proto types read the rendered bootstrap and the Envoy 1.33 rate-limit fields", () => {
  // ts-proto is lenient (unknown keys are ignored, an Any keeps no content), so this only shows that the committed
  // generated code carries the patched fields; the strict check is the decode above.
  const bootstrap = renderEnvoyBootstrap(exampleEdgeConfig, options);
  const generated = Bootstrap.fromJSON(bootstrap);
  assertEquals(
    generated.staticResources?.clusters.map((c) => c.name),
    ["tollgate_extproc", "tollgate_ratelimit", "gpt-4o-mini", "llama-3.1-8b-instruct"],
  );
  assertEquals(generated.admin?.address?.address?.$case, "socketAddress");
  const perRoute = RateLimitPerRoute.fromJSON({
    rate_limits: [{
      actions: [{ generic_key: { descriptor_value: "v" } }],
      apply_on_stream_done: true,
      hits_addend: { format: "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%" },
    }],
  });
  assertEquals(perRoute.rateLimits[0]?.applyOnStreamDone, true);
  assertEquals(perRoute.rateLimits[0]?.hitsAddend?.format, "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%");
  assertEquals(RateLimitPerRoute.toJSON(perRoute), {
    rateLimits: [{
      actions: [{ genericKey: { descriptorValue: "v" } }],
      applyOnStreamDone: true,
      hitsAddend: { format: "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%" },
    }],
  });
});

Deno.test("tollgate render envoy writes a bootstrap that decodes strictly", async () => {
  const out = await new Deno.Command(TOLLGATE, {
    args: ["render", "envoy", "--extproc-socket", "/run/tollgate/extproc.sock"],
    env: { OPENAI_API_KEY: "sk-render-test", OPENAI_BASE_URL: "https://llm.example.com/v1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  await decodeYaml(text);
  // Credentials stay with the sidecar; Envoy's config never holds them.
  assert(!text.includes("sk-render-test"));
  assert(text.includes("llm.example.com"));
});

for (const example of ["basic", "provider_fallback", "token_ratelimit"]) {
  Deno.test(`tollgate render envoy renders the ${example} example resources into a bootstrap that decodes strictly`, async () => {
    const out = await new Deno.Command(TOLLGATE, {
      args: ["render", "envoy", `testdata/resources/${example}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    await decodeYaml(new TextDecoder().decode(out.stdout));
  });
}
