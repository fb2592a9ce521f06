// A category classifier the user runs (a fine-tuned BERT behind a small HTTP service, vLLM Semantic Router's
// classification API…). The contract is small so any model server can be wrapped:
//
//   POST <url>   {"text": "<the query>"}
//   200          {"category": "math", "confidence": 0.93}
//                (or vLLM Semantic Router's {"classification": {"category": ..., "confidence": ...}})
//
// Any failure rejects; the engine then falls back to the default model and records why.
import type { Clock } from "../observability/clock.ts";

export class ClassifierError extends Error {
  override readonly name = "ClassifierError";
}

export interface RemoteClassifierOptions {
  readonly url: string;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  readonly clock: Clock;
}

export async function classifyRemote(
  text: string,
  o: RemoteClassifierOptions,
  signal?: AbortSignal,
): Promise<{ category: string; confidence: number }> {
  const deadline = new AbortController();
  const timer = o.clock.setTimeout(() => deadline.abort(), o.timeoutMs);
  const combined = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
  try {
    const res = await o.fetch(o.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ text }),
      signal: combined,
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new ClassifierError(`The classifier at ${o.url} answered ${res.status}`);
    }
    const json = await res.json() as Record<string, unknown>;
    const result =
      (typeof json.classification === "object" && json.classification !== null ? json.classification : json) as Record<
        string,
        unknown
      >;
    const { category, confidence } = result;
    if (typeof category !== "string" || typeof confidence !== "number" || !(confidence >= 0 && confidence <= 1)) {
      throw new ClassifierError(`The classifier at ${o.url} did not return a category and a confidence in [0, 1]`);
    }
    return { category, confidence };
  } catch (e) {
    if (e instanceof ClassifierError) throw e;
    if (signal?.aborted) throw signal.reason;
    if (deadline.signal.aborted) throw new ClassifierError(`The classifier at ${o.url} did not answer in time`);
    throw new ClassifierError(`Cannot reach the classifier at ${o.url}: ${(e as Error).message}`, { cause: e });
  } finally {
    o.clock.clearTimeout(timer);
  }
}
