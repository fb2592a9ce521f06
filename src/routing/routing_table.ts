// From a snapshot's SemanticRouter configs to the engines that run them, built once per (services, configs) and
// shared by every stream that starts with that snapshot: trained classifiers, embedding caches and semantic caches
// live as long as the config does. A new snapshot builds new engines; the built-in classifiers of an unchanged
// config object are not trained again.
import type { SemanticRouterConfig } from "./config.ts";
import { type RoutingServices, SemanticRouterEngine } from "./router_engine.ts";
import { builtinClassifier } from "./signals.ts";
import { routingServices } from "./routing_services.ts";

export interface RoutingTable {
  /** The router for a request naming `model`, if one routes it. */
  routerFor(model: string): SemanticRouterEngine | undefined;
}

/** Without services from the process: global fetch, the system clock, caches in memory (NATS KV needs --nats). */
export const DEFAULT_ROUTING_SERVICES: RoutingServices = routingServices();

const EMPTY: RoutingTable = { routerFor: () => undefined };
const tables = new WeakMap<RoutingServices, WeakMap<readonly SemanticRouterConfig[], RoutingTable>>();

export function routingTable(
  configs: readonly SemanticRouterConfig[],
  services: RoutingServices = DEFAULT_ROUTING_SERVICES,
): RoutingTable {
  if (configs.length === 0) return EMPTY;
  let byConfigs = tables.get(services);
  if (!byConfigs) tables.set(services, byConfigs = new WeakMap());
  let table = byConfigs.get(configs);
  if (!table) {
    const byModel = new Map<string, SemanticRouterEngine>();
    for (const config of configs) {
      const engine = new SemanticRouterEngine(config, services);
      for (const m of [...config.triggerModels, ...config.routeModels]) byModel.set(m, engine);
    }
    table = { routerFor: (model) => byModel.get(model) };
    byConfigs.set(configs, table);
  }
  return table;
}

/**
 * Starts training the built-in classifiers now (at config load) rather than on the first routed request. Training
 * gives the event loop back between steps; a failure shows on the requests that need the classifier.
 */
export function prepareRouting(configs: readonly SemanticRouterConfig[]): void {
  for (const c of configs) if (c.classifier.kind === "builtin") builtinClassifier(c.classifier).catch(() => {});
}
