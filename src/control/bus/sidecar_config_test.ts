import { assert, assertEquals } from "../../../test/support/assert.ts";
import { silentLogger } from "../../observability/logger.ts";
import { systemClock } from "../../observability/clock.ts";
import { loadGatewayConfig } from "../gateway_config.ts";
import { buildSnapshot } from "../snapshot.ts";
import { type ConfigSnapshot, configSnapshot } from "./config_snapshot.ts";
import { SidecarConfig } from "./sidecar_config.ts";

const EXAMPLE = new URL("../../../testdata/routing/example", import.meta.url).pathname;

/** What a sidecar receives: fresh objects each time, as JSON.parse gives them. */
function received(snapshot: ConfigSnapshot): ConfigSnapshot {
  return JSON.parse(JSON.stringify(snapshot));
}

Deno.test("a sidecar keeps its running semantic routers through a snapshot that does not change them", async () => {
  const loaded = await loadGatewayConfig([EXAMPLE], { extProcTarget: "unix:///tmp/x.sock" });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const snapshot = configSnapshot(loaded.compiled, { rateLimitDomain: "ai-gateway" });
  assert((snapshot.gateway.semanticRouters?.length ?? 0) > 0, "the example has no router");
  using sidecar = new SidecarConfig({
    initial: buildSnapshot(0, { models: [] }),
    env: {},
    clock: systemClock,
    log: silentLogger(),
    secretsPollMs: 0,
  });
  sidecar.apply(received(snapshot), { revision: 1 });
  const first = sidecar.current().semanticRouters;

  // Another model listed, the routers as they were: the running router objects stay (their engines and caches too).
  const more = {
    ...snapshot,
    gateway: { ...snapshot.gateway, models: [...snapshot.gateway.models, { id: "x", ownedBy: "t", created: 1 }] },
  };
  sidecar.apply(received(more), { revision: 2 });
  assert(sidecar.current().semanticRouters === first, "the routers were replaced");
  assertEquals(sidecar.current().revision, 2);
  assert(sidecar.current().modelIds.has("x"), "the new model is not served");

  // A router that changes is replaced.
  const [router, ...others] = snapshot.gateway.semanticRouters!;
  const renamed = { ...router!, triggerModels: ["auto-2"] };
  const changed = { ...snapshot, gateway: { ...snapshot.gateway, semanticRouters: [renamed, ...others] } };
  sidecar.apply(received(changed), { revision: 3 });
  assert(sidecar.current().semanticRouters !== first, "a changed router was kept");
  assertEquals(sidecar.current().semanticRouters?.[0]?.triggerModels, ["auto-2"]);
});
