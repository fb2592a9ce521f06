// The services semantic routing runs with in a process: fetch for embeddings and classifier servers, the clock,
// and where each router's cache lives. A router whose cache says `backend: nats` gets the NATS KV cache shared by
// every sidecar when the process has a NATS connection, and the in-memory cache (with a warning) when it has none.
// The bucket opens in the background; a lookup waits for it at most OPEN_WAIT_MS (then misses), a store waits.
import type { NatsConnection } from "nats";
import { type Clock, systemClock } from "../observability/clock.ts";
import type { Logger } from "../observability/logger.ts";
import { createMemoryCache, type SemanticCache } from "./cache.ts";
import { createNatsKvCache, type NatsKvCache, openNatsKvCacheBucket } from "./cache_nats_kv.ts";
import type { CacheConfig } from "./config.ts";
import type { RoutingServices } from "./router_engine.ts";

const OPEN_WAIT_MS = 1000;

export interface RoutingServiceOptions {
  readonly logger?: Logger;
  /** For `backend: nats` caches: the connection, or the promise of it while the process is still dialling. */
  readonly nats?: NatsConnection | Promise<NatsConnection>;
  readonly fetch?: typeof fetch;
  readonly clock?: Clock;
}

export interface ProcessRoutingServices extends RoutingServices, AsyncDisposable {
  /** Closes the NATS KV caches (their watches). */
  close(): Promise<void>;
}

export function routingServices(o: RoutingServiceOptions = {}): ProcessRoutingServices {
  const opened: Promise<NatsKvCache>[] = [];
  const memory = (c: CacheConfig) =>
    createMemoryCache({ mode: c.mode, threshold: c.threshold, ttlMs: c.ttlMs, maxEntries: c.maxEntries });
  // Only the buckets that opened are closed: one still waiting for NATS would keep close() waiting with it.
  const open: NatsKvCache[] = [];
  const close = async () => {
    opened.splice(0);
    for (const c of open.splice(0)) await c.close();
  };
  return {
    fetch: o.fetch ?? ((input, init) => fetch(input, init)),
    clock: o.clock ?? systemClock,
    ...(o.logger ? { logger: o.logger } : {}),
    createCache(c, router) {
      if (c.backend !== "nats") return memory(c);
      if (!o.nats) {
        o.logger?.warn(
          { router },
          "The semantic cache wants NATS KV but this process has no --nats; caching in memory",
        );
        return memory(c);
      }
      const kv = Promise.resolve(o.nats).then((nc) =>
        openNatsKvCacheBucket(nc.jetstream(), { bucket: c.bucket, ttlMs: c.ttlMs })
      ).then((bucket) =>
        createNatsKvCache(bucket, {
          mode: c.mode,
          threshold: c.threshold,
          ttlMs: c.ttlMs,
          maxEntries: c.maxEntries,
        })
      );
      opened.push(kv);
      kv.then((c) => open.push(c), () => {});
      kv.catch((err: unknown) =>
        o.logger?.error({ err, router, bucket: c.bucket }, "Cannot open the semantic cache bucket; every lookup misses")
      );
      return lazyCache(kv, o.clock ?? systemClock);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The cache `pending` resolves to. The first lookup before then waits a little; once one waited in vain (NATS is
 * down), lookups miss at once and answers are not stored until the bucket is there — nothing queues up meanwhile.
 */
function lazyCache(pending: Promise<SemanticCache>, clock: Clock): SemanticCache {
  let ready: SemanticCache | undefined;
  let waitedInVain = false;
  pending.then((c) => (ready = c), () => {});
  const soon = async (signal: AbortSignal | undefined): Promise<SemanticCache | undefined> => {
    let timer: unknown;
    const late = new Promise<undefined>((resolve) => {
      timer = clock.setTimeout(() => resolve(undefined), OPEN_WAIT_MS);
      signal?.addEventListener("abort", () => resolve(undefined), { once: true });
    });
    try {
      return await Promise.race([pending.catch(() => undefined), late]);
    } finally {
      clock.clearTimeout(timer);
    }
  };
  return {
    async lookup(q, signal) {
      const cache = ready ?? (waitedInVain ? undefined : await soon(signal));
      if (!cache) waitedInVain = true;
      signal?.throwIfAborted();
      return cache ? cache.lookup(q, signal) : undefined;
    },
    store: async (q, r) => {
      if (ready) await ready.store(q, r);
    },
  };
}
