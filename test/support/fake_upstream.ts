// A local HTTP server standing in for an LLM provider (the one part that cannot run here). Each test gives it a
// handler; it records what reached it.
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Headers;
  readonly body: string;
}

export interface FakeUpstream extends AsyncDisposable {
  readonly port: number;
  readonly seen: SeenRequest[];
  /** Requests whose response body stream was cancelled by the client side. */
  readonly cancelled: { count: number };
  shutdown(): Promise<void>;
}

export type UpstreamHandler = (req: SeenRequest, ctx: { cancelled: { count: number } }) => Response | Promise<Response>;

export function startFakeUpstream(handler: UpstreamHandler): Promise<FakeUpstream> {
  const seen: SeenRequest[] = [];
  const cancelled = { count: 0 };
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (addr) =>
        resolve({
          port: (addr as Deno.NetAddr).port,
          seen,
          cancelled,
          shutdown: () => server.shutdown(),
          [Symbol.asyncDispose]: () => server.shutdown(),
        }),
    }, async (req) => {
      const url = new URL(req.url);
      const r = { method: req.method, path: url.pathname + url.search, headers: req.headers, body: await req.text() };
      seen.push(r);
      return handler(r, { cancelled });
    });
  });
}

export function chatCompletion(model: string, content: string): Response {
  return Response.json({
    id: "chatcmpl-test",
    object: "chat.completion",
    created: 1767225600,
    model,
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop", logprobs: null }],
    usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
  });
}

/** An SSE chat stream; with `pauseMs` between chunks and `chunks` words, it can outlast a client. */
export function chatStream(
  model: string,
  words: readonly string[],
  o: { pauseMs?: number; cancelled?: { count: number } } = {},
): Response {
  const encoder = new TextEncoder();
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (o.pauseMs) await new Promise((r) => setTimeout(r, o.pauseMs));
      if (i < words.length) {
        const delta = i === 0 ? { role: "assistant", content: words[i] } : { content: words[i] };
        const chunk = {
          id: "c1",
          object: "chat.completion.chunk",
          created: 1,
          model,
          choices: [{ index: 0, delta, finish_reason: null }],
        };
        c.enqueue(encoder.encode(`data: ${JSON.stringify(chunk)}\n\n`));
        i++;
        return;
      }
      c.enqueue(encoder.encode("data: [DONE]\n\n"));
      c.close();
    },
    cancel() {
      if (o.cancelled) o.cancelled.count++;
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}
