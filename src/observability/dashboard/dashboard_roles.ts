// The dashboard as each role wires it, so the commands add one line each: `tollgate run` (its own traffic, the
// config revision it serves, the in-process or NATS-backed rate limits) and `tollgate aggregator` (the usage it folds
// from the whole cluster, the headroom of every counter it holds).
import type { GatewaySnapshot } from "../../control/snapshot.ts";
import type { AggregatorCore } from "../../usage/aggregator_core.ts";
import { Dashboard } from "./dashboard_routes.ts";
import { type DescriptorKeyName, descriptorKeyNames, type HeadroomSource } from "./dashboard_headroom.ts";

export function runDashboard(o: {
  readonly snapshot: () => GatewaySnapshot;
  /** The rate limits' core, when the config has rate-limit rules. */
  readonly core: () => HeadroomSource | undefined;
  /** Where usage events go: "in process" or "NATS JetStream". */
  readonly usagePath: string;
}): Dashboard {
  let names: { snapshot: GatewaySnapshot; names: ReadonlyMap<string, DescriptorKeyName> } | undefined;
  return new Dashboard({
    role: "run",
    configRevision: () => o.snapshot().revision,
    core: o.core,
    names: () => {
      const snapshot = o.snapshot();
      if (names?.snapshot !== snapshot) names = { snapshot, names: descriptorKeyNames(snapshot.rateLimits) };
      return names.names;
    },
    info: () => ({ models: o.snapshot().models.length, usage: o.usagePath }),
  });
}

export interface AggregatorDashboard extends Dashboard {
  /** The replica's core, once it has started (the admin port serves before). */
  attach(core: AggregatorCore): void;
}

export function aggregatorDashboard(o: {
  readonly replica: string;
  readonly notReadyReason: () => string | null;
}): AggregatorDashboard {
  let core: AggregatorCore | undefined;
  const dashboard = new Dashboard({
    role: "aggregator",
    core: () => core,
    info: () => ({
      replica: o.replica,
      ready: o.notReadyReason() ?? "yes",
      "folded sequence": core?.seq ?? null,
    }),
  });
  return Object.assign(dashboard, { attach: (c: AggregatorCore) => void (core = c) });
}
