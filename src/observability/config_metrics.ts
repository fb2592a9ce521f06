// The configuration revision a process is running, read when Prometheus scrapes. One name for every config path
// (resource files watched by `extproc --config`, the static config of `run`, the NATS config subscriber), so one
// alert (revisions disagreeing across pods) covers them all.
import { Gauge, type Registry } from "prom-client";

export const CONFIG_REVISION_METRIC = "tollgate_config_revision";

/** Registers the gauge unless the process already has one (the config subscriber registers its own). */
export function registerConfigRevision(registry: Registry, revision: () => number): void {
  if (registry.getSingleMetric(CONFIG_REVISION_METRIC)) return;
  new Gauge({
    name: CONFIG_REVISION_METRIC,
    help: "Revision of the configuration snapshot in force (0: the built-in default).",
    registers: [registry],
    collect() {
      this.set(revision());
    },
  });
}
