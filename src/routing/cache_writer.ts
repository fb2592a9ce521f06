// Writes answers into the semantic cache off the request path. It is one long-lived actor per router, outside
// every stream, so a stream that ends (Envoy half-closes right after the last chunk) never cancels a write; streams
// send it events. A failed write is logged and forgotten: a cache is allowed to forget.
import { type ActorRefFrom, createActor, fromCallback } from "xstate";
import type { Logger } from "../observability/logger.ts";
import type { CachedResponse, CacheQuery, SemanticCache } from "./cache.ts";

export type CacheWriterEvent = {
  readonly type: "store";
  readonly query: CacheQuery;
  readonly response: CachedResponse;
};

const cacheWriterLogic = fromCallback<CacheWriterEvent, { cache: SemanticCache; logger: Logger | undefined }>(
  ({ input, receive }) => {
    receive((e) => {
      input.cache.store(e.query, e.response).catch((err: unknown) =>
        input.logger?.warn({ err, scope: e.query.scope }, "Cannot store a response in the semantic cache")
      );
    });
  },
);

export type CacheWriter = ActorRefFrom<typeof cacheWriterLogic>;

export function startCacheWriter(cache: SemanticCache, logger: Logger | undefined): CacheWriter {
  return createActor(cacheWriterLogic, { input: { cache, logger } }).start();
}
