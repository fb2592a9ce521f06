// The response body on its way downstream. Buffered: read whole, one message to the processor, then answer
// (the processor may still replace the whole response). Streamed or untouched: a pull-based stream with no
// buffer of its own (highWaterMark 0), so a slow client slows the upstream read instead of growing memory.
import type { ExtProcFilterStream, LocalReply } from "./ext_proc_filter.ts";
import type { HeaderList } from "./headers.ts";
import { concatChunks } from "./request_body.ts";

export interface StreamDone {
  /** Called exactly once: after the last byte, on a downstream cancel, or on a failure mid-stream. */
  (outcome: { bytesSent: number; aborted: boolean }): void;
}

export async function bufferResponseBody(
  body: ReadableStream<Uint8Array> | null,
  processor: ExtProcFilterStream,
  headers: HeaderList,
  limit: number,
): Promise<{ kind: "body"; body: Uint8Array } | { kind: "respond"; reply: LocalReply }> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  if (body) {
    for await (const chunk of body) {
      bytes += chunk.length;
      // Like Envoy's buffer limit on a BUFFERED body: the proxy never holds more than it is allowed to.
      if (bytes > limit) {
        processor.cancel();
        return {
          kind: "respond",
          reply: {
            status: 500,
            headers: [["content-type", "text/plain"]],
            body: new TextEncoder().encode("Response body exceeds the buffer limit"),
            details: "response_payload_too_large",
          },
        };
      }
      chunks.push(chunk);
    }
  }
  const whole = concatChunks(chunks, bytes);
  const r = await processor.onResponseBody(whole, true, headers);
  if (r.kind === "respond") return r;
  return { kind: "body", body: r.body ?? whole };
}

export function streamResponseBody(
  body: ReadableStream<Uint8Array> | null,
  processor: ExtProcFilterStream | undefined,
  headers: HeaderList,
  done: StreamDone,
): ReadableStream<Uint8Array> {
  const reader = body?.getReader();
  let sent = 0;
  let finished = false;
  const finish = (aborted: boolean) => {
    if (finished) return;
    finished = true;
    done({ bytesSent: sent, aborted });
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = reader ? await reader.read() : { done: true as const, value: undefined };
        if (next.done) {
          if (processor?.sendsBody("response")) {
            const r = await processor.onResponseBody(new Uint8Array(0), true, headers);
            if (r.kind === "respond") throw new Error(`Processor ended the response mid-stream (${r.reply.details})`);
            if (r.body && r.body.length > 0) {
              controller.enqueue(r.body);
              sent += r.body.length;
            }
          }
          controller.close();
          finish(false);
          return;
        }
        let chunk = next.value;
        if (processor?.sendsBody("response")) {
          const r = await processor.onResponseBody(chunk, false, headers);
          // Headers are already downstream: like Envoy, the only way left to fail is to reset the stream.
          if (r.kind === "respond") throw new Error(`Processor ended the response mid-stream (${r.reply.details})`);
          if (r.body) chunk = r.body;
        }
        if (chunk.length > 0) {
          controller.enqueue(chunk);
          sent += chunk.length;
        }
      } catch (e) {
        await reader?.cancel(e).catch(() => {});
        processor?.cancel();
        controller.error(e);
        finish(true);
      }
    },
    async cancel(reason) {
      processor?.cancel();
      await reader?.cancel(reason).catch(() => {});
      finish(true);
    },
  }, { highWaterMark: 0 });
}
