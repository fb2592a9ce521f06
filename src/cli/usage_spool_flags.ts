// Where and how much a sidecar spools usage events while NATS is down or slow.
import { tmpdir } from "node:os";
import type { OverflowPolicy, SpoolOptions } from "../usage/spool.ts";
import { type Parsed, positiveIntFlag, stringFlag, UsageError } from "./args.ts";

export const USAGE_SPOOL_FLAGS = {
  "usage-spool": { type: "string" },
  "usage-spool-max-bytes": { type: "string" },
  "usage-spool-max-records": { type: "string" },
  "usage-spool-overflow": { type: "string" },
  "usage-spool-sync": { type: "boolean" },
} as const;

export const USAGE_SPOOL_HELP =
  `  --usage-spool PATH       spool file (default $TMPDIR/tollgate/usage.spool; put it on a volume that outlives the
                           container, e.g. an emptyDir, so a restart replays what the last process held)
  --usage-spool-max-bytes N     bytes of events it may hold (default 268435456)
  --usage-spool-max-records N   events it may hold (default 1000000)
  --usage-spool-overflow P drop-oldest (default: recent usage matters most to live limits) or reject-new
  --usage-spool-sync       fdatasync every write (survives a machine crash, at a disk flush per spooled event)`;

export interface UsageSpoolOptions {
  readonly spool: SpoolOptions;
}

export function usageSpoolOptions(command: string, p: Parsed, defaultName = "usage.spool"): UsageSpoolOptions {
  const overflow = stringFlag(p, "usage-spool-overflow", "drop-oldest");
  if (overflow !== "drop-oldest" && overflow !== "reject-new") {
    throw new UsageError(`tollgate ${command}: --usage-spool-overflow must be drop-oldest or reject-new`);
  }
  return {
    spool: {
      path: stringFlag(p, "usage-spool", `${tmpdir()}/tollgate/${defaultName}`),
      maxBytes: positiveIntFlag(command, p, "usage-spool-max-bytes", 256 << 20),
      maxRecords: positiveIntFlag(command, p, "usage-spool-max-records", 1_000_000),
      overflow: overflow as OverflowPolicy,
      sync: p.values["usage-spool-sync"] === true,
    },
  };
}
