import { assert, assertEquals } from "../../../test/support/assert.ts";
import { routeFile, routeYaml, writeRoute } from "../../../test/support/control_plane.ts";
import { type LoadOptions, loadResources } from "../resources/load.ts";
import { compileGateway } from "./compile_gateway.ts";
import { CompileMemo } from "./compile_memo.ts";
import { CanonicalEncoder, canonicalJson } from "../bus/canonical_json.ts";
import type { CompileOptions, CompileResult } from "./compiled.ts";

const OPTIONS: CompileOptions = {
  extProcTarget: "unix:///tmp/tollgate/extproc.sock",
  messageTimeoutMs: 10_000,
  failureModeAllow: false,
  rateLimit: { target: "127.0.0.1:8081", domain: "ai-gateway" },
};

function trafficPolicy(route: string, requests: number): string {
  return `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: ${route}-limit
  namespace: default
spec:
  targetRefs:
    - name: ${route}
      kind: HTTPRoute
      group: gateway.networking.k8s.io
  rateLimit:
    type: Global
    global:
      rules:
        - clientSelectors:
            - headers:
                - name: x-user-id
                  type: Distinct
          limit:
            requests: ${requests}
            unit: Hour
`;
}

const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: default
spec:
  gatewayClassName: envoy
  listeners:
    - name: http
      protocol: HTTP
      port: 8080
`;

/** One encoder for the whole test, as the controller keeps one: it remembers the objects the memo hands back. */
const encoder = new CanonicalEncoder();

/**
 * Compiles `dir` twice, with the memo and from scratch, checks both agree (and encode alike, the memoized one through
 * the remembering encoder), and returns the memo's.
 */
async function compileBoth(dir: string, cache: NonNullable<LoadOptions["cache"]>, memo: CompileMemo) {
  const loaded = await loadResources([dir], { cache });
  assertEquals(loaded.errors, []);
  const memoized = compileGateway(loaded.resources, OPTIONS, { memo });
  const fresh = compileGateway(loaded.resources, OPTIONS);
  assertEquals(memoized, fresh);
  assertEquals(encoder.encode(memoized), canonicalJson(fresh));
  return memoized;
}

function clusters(result: CompileResult) {
  if (!result.ok) throw new Error(`compile failed: ${JSON.stringify(result.errors)}`);
  return new Map(result.edge.clusters.map((c) => [c.name, c]));
}

Deno.test("a memoized compile equals a fresh one through edits, and reuses what an edit did not touch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-compile-memo-" });
  try {
    for (let i = 0; i < 4; i++) {
      await writeRoute(dir, { model: `m-${i}`, port: 9000 + i, ...(i % 2 ? { apiKey: { placeholder: "k" } } : {}) });
    }
    const cache: NonNullable<LoadOptions["cache"]> = new Map();
    const memo = new CompileMemo();
    const first = clusters(await compileBoth(dir, cache, memo));
    const name = (i: number) => `httproute/default/m-${i}/rule/0`;

    // Only m-1's Backend moves: every other cluster is the very same object.
    await writeRoute(dir, { model: "m-1", port: 9100, apiKey: { placeholder: "k" } });
    const second = clusters(await compileBoth(dir, cache, memo));
    assert(second.get(name(0)) === first.get(name(0)), "m-0 was compiled again");
    assert(second.get(name(1)) !== first.get(name(1)), "m-1 was reused");
    assertEquals(second.get(name(1))?.priorities[0]?.[0]?.port, 9100);

    // A policy that targets m-2 from another file: m-2 reads the policies, so it compiles again; m-3 too (it read
    // the same list), yet to the same content.
    await Deno.writeTextFile(`${dir}/policy.yaml`, trafficPolicy("m-2", 10));
    const third = await compileBoth(dir, cache, memo);
    if (!third.ok) throw new Error("third compile failed");
    assertEquals(third.rateLimitRules.map((r) => r.limit.requests), [10]);
    await Deno.writeTextFile(`${dir}/policy.yaml`, trafficPolicy("m-2", 20));
    const fourth = await compileBoth(dir, cache, memo);
    if (!fourth.ok) throw new Error("fourth compile failed");
    assertEquals(fourth.rateLimitRules.map((r) => r.limit.requests), [20]);

    // A Gateway the routes attach to (none names a parent, so all of them) changes the listener port.
    await Deno.writeTextFile(`${dir}/gateway.yaml`, GATEWAY);
    const fifth = await compileBoth(dir, cache, memo);
    assertEquals(fifth.ok && fifth.edge.listener.port, 8080);

    // A broken reference fails both compiles with the same errors; fixing it compiles again.
    const broken = routeYaml({ model: "m-3", port: 9003 }).replace(
      "backendRefs:\n        - name: m-3",
      "backendRefs:\n        - name: gone",
    );
    await Deno.writeTextFile(routeFile(dir, "m-3"), broken);
    const loaded = await loadResources([dir], { cache });
    const memoized = compileGateway(loaded.resources, OPTIONS, { memo });
    assertEquals(memoized, compileGateway(loaded.resources, OPTIONS));
    assert(!memoized.ok, "a route to a missing backend compiled");
    await writeRoute(dir, { model: "m-3", port: 9003, apiKey: { placeholder: "k" } });
    assert((await compileBoth(dir, cache, memo)).ok, "the fixed route did not compile");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
