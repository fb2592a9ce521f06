// An external jailbreak classifier (for example a fine-tuned ModernBERT or Prompt Guard model behind a small HTTP
// service the user runs). The contract is deliberately minimal so that any model server can be wrapped in a few
// lines:
//
//   POST <url>                      content-type: application/json
//   {"text": "<the prompt>"}
//
//   200 OK                          content-type: application/json
//   {"jailbreak": true, "score": 0.97}     score: the classifier's confidence that the text is a jailbreak, in [0, 1]
//
// Other fields in the answer are ignored. Anything else (a timeout, a refused connection, a non-2xx status, a body
// that does not match) throws a JailbreakClassifierError with a `reason`, so the caller decides whether to fail open
// (let the request through) or closed (block it).

export type JailbreakClassifierErrorReason =
  | "timeout"
  | "aborted"
  | "unavailable"
  | "http_status"
  | "invalid_response";

export class JailbreakClassifierError extends Error {
  override readonly name = "JailbreakClassifierError";
  readonly reason: JailbreakClassifierErrorReason;
  /** The HTTP status when reason is "http_status". */
  readonly status: number | undefined;

  constructor(reason: JailbreakClassifierErrorReason, message: string, o: { cause?: unknown; status?: number } = {}) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.reason = reason;
    this.status = o.status;
  }
}

export interface RemoteJailbreakOptions {
  readonly url: string;
  /** Deadline for the whole exchange, body included. */
  readonly timeoutMs: number;
  /** The caller's cancellation (e.g. the client went away); reported as reason "aborted". */
  readonly signal?: AbortSignal;
  /** Extra request headers, e.g. authorization for the classifier. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Asks the classifier at `o.url` about `text`. Throws JailbreakClassifierError on any failure. */
export async function classifyJailbreakRemote(
  text: string,
  o: RemoteJailbreakOptions,
): Promise<{ jailbreak: boolean; score: number }> {
  if (!(o.timeoutMs > 0)) throw new RangeError(`Invalid classifier timeout ${o.timeoutMs} ms: expected > 0`);
  const where = `jailbreak classifier at ${o.url}`;
  if (o.signal?.aborted) {
    throw new JailbreakClassifierError("aborted", `Request to the ${where} was cancelled`, { cause: o.signal.reason });
  }
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), o.timeoutMs);
  const signal = o.signal ? AbortSignal.any([o.signal, timeout.signal]) : timeout.signal;
  const failure = (err: unknown): JailbreakClassifierError => {
    if (o.signal?.aborted) {
      return new JailbreakClassifierError("aborted", `Request to the ${where} was cancelled`, { cause: err });
    }
    if (timeout.signal.aborted) {
      return new JailbreakClassifierError("timeout", `The ${where} did not answer within ${o.timeoutMs} ms`, {
        cause: err,
      });
    }
    return new JailbreakClassifierError("unavailable", `Cannot reach the ${where}: ${(err as Error).message}`, {
      cause: err,
    });
  };
  try {
    let res: Response;
    try {
      res = await fetch(o.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json", ...o.headers },
        body: JSON.stringify({ text }),
        signal,
      });
    } catch (err) {
      throw failure(err);
    }
    let body: string;
    try {
      body = await res.text();
    } catch (err) {
      throw failure(err);
    }
    if (!res.ok) {
      throw new JailbreakClassifierError(
        "http_status",
        `The ${where} answered ${res.status}: ${body.slice(0, 200)}`,
        { status: res.status },
      );
    }
    return parseAnswer(body, where);
  } finally {
    clearTimeout(timer);
  }
}

function parseAnswer(body: string, where: string): { jailbreak: boolean; score: number } {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    throw new JailbreakClassifierError("invalid_response", `The ${where} answered with invalid JSON`, { cause: err });
  }
  const v = value as { jailbreak?: unknown; score?: unknown } | null;
  if (typeof v !== "object" || v === null || typeof v.jailbreak !== "boolean") {
    throw new JailbreakClassifierError("invalid_response", `The ${where} answered without a boolean "jailbreak"`);
  }
  if (typeof v.score !== "number" || !(v.score >= 0 && v.score <= 1)) {
    throw new JailbreakClassifierError("invalid_response", `The ${where} answered without a "score" in [0, 1]`);
  }
  return { jailbreak: v.jailbreak, score: v.score };
}
