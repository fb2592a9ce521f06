// Reading the downstream request body as Envoy's buffering filters do: up to the buffer limit (413 beyond it,
// without reading the rest), then through the router-level processor in its body mode.
import type { ExtProcFilterStream, LocalReply, PhaseResult } from "./ext_proc_filter.ts";
import type { HeaderList } from "./headers.ts";

const encoder = new TextEncoder();

export type BodyRead =
  | { readonly kind: "body"; readonly chunks: readonly Uint8Array[]; readonly bytes: number }
  | { readonly kind: "respond"; readonly reply: LocalReply };

const TOO_LARGE: BodyRead = {
  kind: "respond",
  reply: {
    status: 413,
    headers: [["content-type", "text/plain"]],
    body: encoder.encode("Payload Too Large"),
    details: "request_payload_too_large",
  },
};

/**
 * `contentLength` is the request's content-length header. A declared length over the limit can only end in 413, so
 * it is refused before any of the body is read: otherwise every such request would hold `limit` bytes (50 MiB by
 * default) until it reached it, and a few dozen concurrent ones would hold gigabytes. Envoy answers the same 413
 * once its buffer overflows. A chunked body is read up to the limit, as Envoy's buffer does.
 */
export async function readRequestBody(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  contentLength: string | null = null,
): Promise<BodyRead> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  if (!body) return { kind: "body", chunks, bytes };
  if (contentLength !== null && Number(contentLength) > limit) {
    // Deno's HTTP server then reads and discards the rest of a declared body to keep the connection; nothing of it
    // is held.
    await body.cancel();
    return TOO_LARGE;
  }
  const reader = body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes += value.length;
    if (bytes > limit) {
      await reader.cancel();
      return TOO_LARGE;
    }
    chunks.push(value);
  }
  return { kind: "body", chunks, bytes };
}

export function concatChunks(chunks: readonly Uint8Array[], bytes: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Runs the request body through the processor: one message when buffered, one per chunk when streamed. */
export async function processRequestBody(
  processor: ExtProcFilterStream,
  read: { chunks: readonly Uint8Array[]; bytes: number },
  headers: HeaderList,
): Promise<{ kind: "continue"; body: Uint8Array; clearRouteCache: boolean } | { kind: "respond"; reply: LocalReply }> {
  let clearRouteCache = false;
  if (!processor.streamsBody("request")) {
    const body = concatChunks(read.chunks, read.bytes);
    const r: PhaseResult = await processor.onRequestBody(body, true, headers);
    if (r.kind === "respond") return r;
    return { kind: "continue", body: r.body ?? body, clearRouteCache: r.clearRouteCache };
  }
  const out: Uint8Array[] = [];
  let bytes = 0;
  const parts = [...read.chunks, new Uint8Array(0)];
  for (let i = 0; i < parts.length; i++) {
    const chunk = parts[i]!;
    const r = await processor.onRequestBody(chunk, i === parts.length - 1, headers);
    if (r.kind === "respond") return r;
    clearRouteCache ||= r.clearRouteCache;
    const kept = r.body ?? chunk;
    out.push(kept);
    bytes += kept.length;
  }
  return { kind: "continue", body: concatChunks(out, bytes), clearRouteCache };
}
