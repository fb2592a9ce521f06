// A local OpenAI-compatible /v1/embeddings server standing in for a real embedding model (which cannot be
// downloaded here). Its vectors are bags of content words hashed into 256 dimensions: two texts sharing most of
// their content words ("the capital of France" / "France's capital city") are close, unrelated texts are not. That
// is all a paraphrase test needs, and it is deterministic. It records what it was asked and can be told to fail or
// stall.
const STOP = new Set(
  ("a an the of to in on at by for with from and or is are was were be what which who how why when where tell me " +
    "please could would you your my i do does can s").split(" "),
);
const DIMENSIONS = 256;

export function fakeEmbedding(text: string): number[] {
  const v = new Array<number>(DIMENSIONS).fill(0);
  for (const word of text.toLowerCase().split(/[^a-z0-9]+/)) {
    if (word === "" || STOP.has(word)) continue;
    // Crude stemming so "cities" and "city", "capitals" and "capital" meet.
    const stem = word.replace(/(ies|es|s)$/, (m) => (m === "ies" ? "y" : ""));
    let h = 2166136261;
    for (let i = 0; i < stem.length; i++) h = Math.imul(h ^ stem.charCodeAt(i), 16777619);
    v[(h >>> 0) % DIMENSIONS]! += 1;
  }
  return v;
}

export interface FakeEmbeddings extends AsyncDisposable {
  readonly url: string;
  /** Every input text, in arrival order. */
  readonly inputs: string[];
  /** Set to a status to make the server fail, or to a delay in ms to make it slow. */
  failWith: number | undefined;
  delayMs: number;
  shutdown(): Promise<void>;
}

export function startFakeEmbeddings(): Promise<FakeEmbeddings> {
  return new Promise((resolve) => {
    const inputs: string[] = [];
    let self: FakeEmbeddings;
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (addr) => {
        self = {
          url: `http://127.0.0.1:${(addr as Deno.NetAddr).port}/v1/embeddings`,
          inputs,
          failWith: undefined,
          delayMs: 0,
          shutdown: () => server.shutdown(),
          [Symbol.asyncDispose]: () => server.shutdown(),
        };
        resolve(self);
      },
    }, async (req) => {
      const body = await req.json() as { input: string | string[]; model: string };
      if (self.delayMs > 0) await new Promise((r) => setTimeout(r, self.delayMs));
      if (self.failWith !== undefined) return Response.json({ error: { message: "down" } }, { status: self.failWith });
      const texts = typeof body.input === "string" ? [body.input] : body.input;
      inputs.push(...texts);
      return Response.json({
        object: "list",
        model: body.model,
        data: texts.map((t, index) => ({ object: "embedding", index, embedding: fakeEmbedding(t) })),
        usage: { prompt_tokens: texts.length, total_tokens: texts.length },
      });
    });
  });
}
