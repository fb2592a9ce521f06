// The built-in demo provider: an OpenAI-compatible server that answers by echoing the last user message, so a
// fresh `npm start` has something to route to. It streams (SSE, with a usage chunk when asked), lists its models,
// and returns deterministic embeddings. Token counts are word counts: plausible, never presented as real.

export interface EchoProvider extends AsyncDisposable {
  readonly port: number;
  shutdown(): Promise<void>;
}

const encoder = new TextEncoder();

function tokens(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return "";
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown };
    if (m?.role !== "user") continue;
    if (typeof m.content === "string") return m.content;
    if (Array.isArray(m.content)) {
      return m.content.map((p: { type?: string; text?: string }) => (p?.type === "text" ? p.text ?? "" : "")).join(" ");
    }
  }
  return "";
}

function promptTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  return messages.reduce(
    (n: number, m: { content?: unknown }) => n + (typeof m?.content === "string" ? tokens(m.content) : 1),
    0,
  );
}

function error(status: number, message: string): Response {
  return Response.json({ error: { message, type: "invalid_request_error", param: null, code: null } }, { status });
}

function chat(body: Record<string, unknown>): Response {
  const model = String(body.model);
  const reply = `Echo: ${lastUserText(body.messages) || "(nothing to echo)"}`;
  const usage = {
    prompt_tokens: promptTokens(body.messages),
    completion_tokens: tokens(reply),
    total_tokens: promptTokens(body.messages) + tokens(reply),
  };
  const id = `chatcmpl-${crypto.randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  if (body.stream !== true) {
    return Response.json({
      id,
      object: "chat.completion",
      created,
      model,
      choices: [{ index: 0, message: { role: "assistant", content: reply }, finish_reason: "stop", logprobs: null }],
      usage,
    });
  }
  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  const words = reply.split(/(?<=\s)/);
  const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
    encoder.encode(
      `data: ${
        JSON.stringify({
          id,
          object: "chat.completion.chunk",
          created,
          model,
          choices: [{ index: 0, delta, finish_reason: finish }],
          ...extra,
        })
      }\n\n`,
    );
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(chunk({ role: "assistant", content: "" }, null));
      for (const w of words) c.enqueue(chunk({ content: w }, null));
      c.enqueue(chunk({}, "stop"));
      if (includeUsage) {
        c.enqueue(
          encoder.encode(
            `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage })}\n\n`,
          ),
        );
      }
      c.enqueue(encoder.encode("data: [DONE]\n\n"));
      c.close();
    },
  });
  return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
}

function embeddings(body: Record<string, unknown>): Response {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const data = inputs.map((input, index) => {
    const text = String(input);
    const vector = Array.from({ length: 8 }, (_, i) => {
      let h = 2166136261 ^ i;
      for (const ch of text) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
      return ((h >>> 0) % 2000) / 1000 - 1;
    });
    return { object: "embedding", index, embedding: vector };
  });
  const n = inputs.reduce((sum: number, i) => sum + tokens(String(i)), 0);
  return Response.json({
    object: "list",
    data,
    model: String(body.model),
    usage: { prompt_tokens: n, total_tokens: n },
  });
}

export async function handleEcho(req: Request, models: readonly string[]): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (req.method === "GET" && path === "/v1/models") {
    return Response.json({
      object: "list",
      data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "tollgate-demo" })),
    });
  }
  if (req.method !== "POST") return error(405, `Method ${req.method} is not allowed on ${path}`);
  let body: Record<string, unknown>;
  try {
    body = await req.json();
  } catch {
    return error(400, "The request body is not valid JSON");
  }
  switch (path) {
    case "/v1/chat/completions":
      return chat(body);
    case "/v1/embeddings":
      return embeddings(body);
    default:
      return error(404, `Unknown path ${path}`);
  }
}

export function startEchoProvider(models: readonly string[], port = 0): Promise<EchoProvider> {
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port,
      onListen: (addr) => {
        resolve({
          port: (addr as Deno.NetAddr).port,
          shutdown: () => server.shutdown(),
          [Symbol.asyncDispose]: () => server.shutdown(),
        });
      },
    }, (req) => handleEcho(req, models));
  });
}
