// What translation costs the sidecar, per pair in the registry: request() for a 5-message chat (and an embeddings
// body where the pair serves embeddings), response() for a ~1 KB answer, and a streamed answer of 50 text deltas in
// the provider's own framing, fed one event per chunk. Everything runs in this process; each figure is the median
// of several timed batches, taken after a warm-up. Every translation is checked before it is timed, so a broken
// translator fails the bench instead of getting fast. Run: deno run -A bench/translate_bench.ts --help
import process from "node:process";
import { parseArgs } from "node:util";
import { encodeAwsEvent } from "../src/protocol/aws_event_stream.ts";
import { AwsEventStreamParser } from "../src/protocol/aws_event_stream.ts";
import { sseEvent, SseParser } from "../src/protocol/sse.ts";
import { translatorFor } from "../src/protocol/translators/registry.ts";
import { isClientError } from "../src/protocol/translators/translator.ts";
import type {
  BackendLocation,
  BackendSchemaName,
  ClientApi,
  ClientEndpoint,
  TranslateRequest,
  Translator,
} from "../src/protocol/translators/translator.ts";
import { API_SCHEMAS } from "../src/control/resources/ai_gateway_route.ts";

const USAGE = `Usage: deno run -A bench/translate_bench.ts [flags]

  --runs N        timed batches per figure; the figure is their median (default 11)
  --batch-ms N    length of one timed batch (default 40)
  --warmup-ms N   untimed calls before the first batch, also used to size the batches (default 200)
  --only TEXT     only the rows whose pair contains TEXT (e.g. "anthropic→", "Bedrock")
  -h, --help      show this help

Prints the median µs per call (per upstream chunk for streams) as two tables, wall-clock and CPU time, then one
JSON line with every figure. Exits non-zero, before timing, when a translation does not read back as expected.`;

type Json = Record<string, unknown>;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const json = (v: unknown): Uint8Array => encoder.encode(JSON.stringify(v));
const headers = (h: Record<string, string>): ReadonlyMap<string, string> => new Map(Object.entries(h));

// ---- The traffic: the 5-message chat of extproc_bench.ts and the answer it gets, in every provider's shape. ----

const SYSTEM = "You are a support assistant for Acme Cloud. Answer concisely and accurately, cite the relevant " +
  "documentation page when you can, and never invent configuration options. If a question is about billing, " +
  "direct the user to the billing portal. Format code and commands as Markdown code blocks.";
const TURNS = [
  "Our nightly export job to object storage started failing yesterday with 'SignatureDoesNotMatch'. Nothing " +
  "changed in our code. The job runs in a container on the managed Kubernetes service, region eu-west-2.",
  "A sudden SignatureDoesNotMatch with unchanged code usually has one of three causes: the access key was rotated " +
  "and the pod still has the old secret, the container clock has drifted by more than 15 minutes, or a proxy " +
  "rewrites a signed header. Could you check when the key was last rotated and run `date -u` in the pod?",
  "The key was rotated two days ago by our security team, and the pod still mounts the secret from the old " +
  "version. How do I make the deployment pick up the new secret without downtime?",
  "Update the Secret, then trigger a rolling restart so new pods mount the new value while old ones keep serving:",
];
const ANSWER = "```sh\nkubectl create secret generic export-credentials --from-env-file=new.env --dry-run=client " +
  "-o yaml | kubectl apply -f -\nkubectl rollout restart deployment/nightly-export\nkubectl rollout status " +
  "deployment/nightly-export\n```\n\nThe rolling restart replaces pods one at a time (respecting `maxUnavailable`), " +
  'so the job keeps running. If the export runs as a CronJob instead, no "rollout restart" is needed: the next ' +
  "run mounts the updated Secret. See Docs › Kubernetes › Rotating secrets.";
const DELTA_COUNT = 50;
const DELTAS = Array.from({ length: DELTA_COUNT }, (_, i) => {
  const at = (k: number) => Math.floor((k * ANSWER.length) / DELTA_COUNT);
  return ANSWER.slice(at(i), at(i + 1));
});
const role = (i: number) => (i % 2 === 0 ? "user" : "assistant");

const openAIChat = (stream: boolean): Json => ({
  model: "gpt-4o-mini",
  temperature: 0.2,
  max_tokens: 512,
  messages: [{ role: "system", content: SYSTEM }, ...TURNS.map((content, i) => ({ role: role(i), content }))],
  ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
});
const anthropicChat = (stream: boolean): Json => ({
  model: "claude-sonnet-4-5-20250929",
  max_tokens: 512,
  temperature: 0.2,
  system: SYSTEM,
  messages: TURNS.map((content, i) => ({ role: role(i), content })),
  ...(stream ? { stream: true } : {}),
});
// The OpenAI Python SDK asks for base64 unless told otherwise.
const EMBEDDINGS = {
  input: "Nightly export job fails with SignatureDoesNotMatch after the access key was rotated.",
  model: "text-embedding-3-small",
  encoding_format: "base64",
};

/** Deterministic floats shaped like embedding components. */
function vector(n: number): number[] {
  let s = 42;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return Number(((s / 2 ** 32 - 0.5) / 8).toPrecision(9));
  });
}
function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

const OPENAI_USAGE = {
  prompt_tokens: 312,
  completion_tokens: 118,
  total_tokens: 430,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0,
  },
};
const SAFE = { filtered: false, severity: "safe" };
const AZURE_FILTER = { hate: SAFE, self_harm: SAFE, sexual: SAFE, violence: SAFE };
const ANTHROPIC_USAGE = { input_tokens: 312, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
const PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"; // Bedrock pads every event with a "p" field.

/** One provider's native answer: the whole body, and the same answer streamed, one event per chunk. */
interface Upstream {
  readonly body: Uint8Array;
  readonly headers: ReadonlyMap<string, string>;
  readonly stream: readonly Uint8Array[];
  readonly streamHeaders: ReadonlyMap<string, string>;
}

function openAIUpstream(azure: boolean): Upstream {
  const envelope = {
    id: "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    created: 1741570283,
    model: "gpt-4o-mini-2024-07-18",
    system_fingerprint: "fp_06737a9306",
  };
  const filter = azure ? { content_filter_results: AZURE_FILTER } : {};
  const choice = (delta: Json, finish: string | null = null) => ({
    ...envelope,
    object: "chat.completion.chunk",
    service_tier: "default",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish, ...filter }],
    usage: null,
  });
  const prompt = { prompt_filter_results: [{ prompt_index: 0, content_filter_results: AZURE_FILTER }] };
  const events = [
    ...(azure ? [{ choices: [], created: 0, id: "", model: "", object: "", ...prompt }] : []),
    choice({ role: "assistant", content: "", refusal: null }),
    ...DELTAS.map((content) => choice({ content })),
    choice({}, "stop"),
    { ...envelope, object: "chat.completion.chunk", choices: [], usage: OPENAI_USAGE },
  ];
  const message = { role: "assistant", content: ANSWER, refusal: null, annotations: [] };
  return {
    body: json({
      ...envelope,
      object: "chat.completion",
      choices: [{ index: 0, message, logprobs: null, finish_reason: "stop", ...filter }],
      usage: OPENAI_USAGE,
      ...(azure ? prompt : { service_tier: "default" }),
    }),
    headers: headers({ "content-type": "application/json" }),
    stream: [...events.map((e) => sseEvent(JSON.stringify(e))), sseEvent("[DONE]")],
    streamHeaders: headers({ "content-type": "text/event-stream; charset=utf-8" }),
  };
}

function geminiUpstream(): Upstream {
  const envelope = {
    modelVersion: "gemini-2.5-flash",
    createTime: "2025-06-01T12:01:00.000001Z",
    responseId: "k9w8aMHyBbSjmecP-p2WgQ4",
  };
  const usageMetadata = {
    promptTokenCount: 298,
    candidatesTokenCount: 121,
    totalTokenCount: 419,
    trafficType: "ON_DEMAND",
    promptTokensDetails: [{ modality: "TEXT", tokenCount: 298 }],
    candidatesTokensDetails: [{ modality: "TEXT", tokenCount: 121 }],
  };
  const event = (text: string, last: boolean) => ({
    candidates: [{ content: { role: "model", parts: [{ text }] }, ...(last ? { finishReason: "STOP" } : {}) }],
    usageMetadata: last ? usageMetadata : { trafficType: "ON_DEMAND" },
    ...envelope,
  });
  return {
    body: json({
      candidates: [{ content: { role: "model", parts: [{ text: ANSWER }] }, finishReason: "STOP", avgLogprobs: -0.21 }],
      usageMetadata,
      ...envelope,
    }),
    headers: headers({ "content-type": "application/json; charset=UTF-8" }),
    stream: DELTAS.map((d, i) => encoder.encode(`data: ${JSON.stringify(event(d, i === DELTA_COUNT - 1))}\r\n\r\n`)),
    streamHeaders: headers({ "content-type": "text/event-stream" }),
  };
}

function converseUpstream(): Upstream {
  const aws = { "x-amzn-requestid": "9d6f7a7e-4a4b-4c36-9d7b-1d0c7f3b2a11", date: "Thu, 01 Jan 2026 00:00:00 GMT" };
  const usage = { inputTokens: 305, outputTokens: 121, totalTokens: 426 };
  const frame = (type: string, payload: Json, pad: number) =>
    encodeAwsEvent(type, json({ ...payload, p: PAD.slice(0, pad) }));
  return {
    body: json({
      output: { message: { role: "assistant", content: [{ text: ANSWER }] } },
      stopReason: "end_turn",
      usage,
      metrics: { latencyMs: 1874 },
    }),
    headers: headers({ "content-type": "application/json", ...aws }),
    stream: [
      frame("messageStart", { role: "assistant" }, 20),
      ...DELTAS.map((text, i) =>
        frame("contentBlockDelta", { contentBlockIndex: 0, delta: { text } }, 40 - text.length + (i % 3))
      ),
      frame("contentBlockStop", { contentBlockIndex: 0 }, 12),
      frame("messageStop", { stopReason: "end_turn" }, 8),
      frame("metadata", { usage, metrics: { latencyMs: 1874 } }, 30),
    ],
    streamHeaders: headers({ "content-type": "application/vnd.amazon.eventstream", ...aws }),
  };
}

function anthropicEvents(model: string, bedrock: boolean): Json[] {
  const metrics = { inputTokenCount: 312, outputTokenCount: 121, invocationLatency: 1874, firstByteLatency: 402 };
  return [
    {
      type: "message_start",
      message: {
        id: "msg_01XFDUDYJgAACzvnptvVoYEL",
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...ANTHROPIC_USAGE, output_tokens: 1 },
      },
    },
    { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
    ...(bedrock ? [] : [{ type: "ping" }]),
    ...DELTAS.map((text) => ({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } })),
    { type: "content_block_stop", index: 0 },
    { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 121 } },
    { type: "message_stop", ...(bedrock ? { "amazon-bedrock-invocationMetrics": metrics } : {}) },
  ];
}

function anthropicUpstream(model: string, bedrock: boolean): Upstream {
  const events = anthropicEvents(model, bedrock);
  const stream = bedrock
    ? events.map((e, i) => encodeAwsEvent("chunk", json({ bytes: base64(json(e)), p: PAD.slice(0, 4 + (i % 20)) })))
    : events.map((e) => sseEvent(JSON.stringify(e), e.type as string));
  return {
    body: json({
      id: "msg_01XFDUDYJgAACzvnptvVoYEL",
      type: "message",
      role: "assistant",
      model,
      content: [{ type: "text", text: ANSWER }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { ...ANTHROPIC_USAGE, output_tokens: 121 },
    }),
    headers: headers({ "content-type": "application/json" }),
    stream,
    streamHeaders: headers({
      "content-type": bedrock ? "application/vnd.amazon.eventstream" : "text/event-stream; charset=utf-8",
    }),
  };
}

function embeddingsUpstream(titan: boolean): Upstream {
  const floats = vector(titan ? 1024 : 1536);
  const body = titan ? { embedding: floats, embeddingsByType: { float: floats }, inputTextTokenCount: 17 } : {
    object: "list",
    data: [{ object: "embedding", index: 0, embedding: base64(new Uint8Array(new Float32Array(floats).buffer)) }],
    model: "text-embedding-3-small",
    usage: { prompt_tokens: 17, total_tokens: 17 },
  };
  return {
    body: json(body),
    headers: headers({ "content-type": "application/json" }),
    stream: [],
    streamHeaders: new Map(),
  };
}

// ---- The pairs: every one the registry holds for chat, messages and embeddings. ----

type Column = "request" | "embeddings" | "response" | "embeddingsResponse" | "stream";
const COLUMNS: readonly Column[] = ["request", "embeddings", "response", "embeddingsResponse", "stream"];

interface Pair {
  readonly label: string;
  readonly api: ClientApi;
  readonly schema: BackendSchemaName;
  readonly model: string;
  readonly location?: BackendLocation;
  readonly upstream: Upstream;
  /** What the translated chat request must look like: a piece of its path, its turns (messages or contents). */
  readonly path: string;
  readonly turns: number;
  /** The translated body must be the client's bytes, untouched. */
  readonly passThrough?: boolean;
  readonly embeddings?: { readonly model: string; readonly path: string; readonly upstream: Upstream };
  /** A variant of a pair above: only these columns are measured. */
  readonly only?: readonly Column[];
  /** Costs are configured and the client did not ask for usage: the translator forces it, then hides it. */
  readonly forcedUsage?: boolean;
}

type PairOptions = Partial<Pick<Pair, "location" | "passThrough" | "embeddings" | "only" | "forcedUsage">>;

/** `label` reads "<client api>→<backend schema>", then ", <variant>" for a variant. */
function pair(label: string, model: string, upstream: Upstream, path: string, options: PairOptions = {}): Pair {
  const [api, schema] = label.split(",")[0]!.split("→") as [ClientApi, BackendSchemaName];
  // OpenAI-shaped backends keep the system message among the messages; the others lift it out of them.
  const turns = schema === "OpenAI" || schema === "AzureOpenAI" ? 5 : 4;
  return { label, api, schema, model, upstream, path, turns, ...options };
}

const GCP = { project: "acme-prod", region: "europe-west1" };
const CLAUDE = "claude-sonnet-4-5-20250929";
const CLAUDE_BEDROCK = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const CLAUDE_VERTEX = "claude-sonnet-4-5@20250929";
const OPENAI = openAIUpstream(false);
const ANTHROPIC = anthropicUpstream(CLAUDE, false);
const CONVERSE = converseUpstream();
const TITAN = {
  model: "amazon.titan-embed-text-v2:0",
  path: "/model/amazon.titan-embed-text-v2%3A0/invoke",
  upstream: embeddingsUpstream(true),
};
const openAIEmbeddings = (path: string) => ({ model: EMBEDDINGS.model, path, upstream: embeddingsUpstream(false) });
const AZURE_PATH = "/openai/deployments/gpt-4o-mini/chat/completions?api-version=";
const AZURE_EMBEDDINGS_PATH = "/openai/deployments/text-embedding-3-small/embeddings?api-version=";
const VERTEX_PATH = "/publishers/google/models/gemini-2.5-flash:generateContent";

const PAIRS: readonly Pair[] = [
  pair("openai→OpenAI", "gpt-4o-mini", OPENAI, "/v1/chat/completions", {
    passThrough: true,
    embeddings: openAIEmbeddings("/v1/embeddings"),
  }),
  pair("openai→AzureOpenAI", "gpt-4o-mini", openAIUpstream(true), AZURE_PATH, {
    passThrough: true,
    embeddings: openAIEmbeddings(AZURE_EMBEDDINGS_PATH),
  }),
  pair("openai→AWSBedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", CONVERSE, "/converse", {
    embeddings: TITAN,
  }),
  pair("openai→GCPVertexAI", "gemini-2.5-flash", geminiUpstream(), VERTEX_PATH, { location: GCP }),
  pair("openai→Anthropic", CLAUDE, ANTHROPIC, "/v1/messages"),
  pair("openai→AWSAnthropic", CLAUDE_BEDROCK, anthropicUpstream(CLAUDE, true), "/invoke"),
  pair("openai→GCPAnthropic", CLAUDE_VERTEX, anthropicUpstream(CLAUDE, false), ":rawPredict", { location: GCP }),
  pair("anthropic→Anthropic", CLAUDE, ANTHROPIC, "/v1/messages", { passThrough: true }),
  pair("anthropic→AWSAnthropic", CLAUDE_BEDROCK, anthropicUpstream(CLAUDE, true), "/invoke"),
  pair("anthropic→GCPAnthropic", CLAUDE_VERTEX, anthropicUpstream(CLAUDE, false), ":rawPredict", { location: GCP }),
  // Variants: what leaving pass-through costs.
  pair("openai→OpenAI, model override", "gpt-4o-mini-2024-07-18", OPENAI, "/v1/chat/completions", {
    only: ["request"],
  }),
  pair("openai→OpenAI, usage forced", "gpt-4o-mini", OPENAI, "/v1/chat/completions", {
    only: ["stream"],
    forcedUsage: true,
  }),
  pair("anthropic→Anthropic, model override", "claude-sonnet-4-5", ANTHROPIC, "/v1/messages", { only: ["request"] }),
];

const chatEndpoint = (p: Pair): ClientEndpoint => (p.api === "anthropic" ? "messages" : "chatCompletions");

function translatorOf(p: Pair, endpoint: ClientEndpoint): Translator {
  const t = translatorFor(p.api, endpoint, p.schema);
  if (!t) throw new Error(`The registry has no translator for ${p.api}/${endpoint}/${p.schema}`);
  return t;
}

function request(p: Pair, endpoint: ClientEndpoint, stream: boolean): TranslateRequest {
  let body: Json;
  if (endpoint === "embeddings") body = EMBEDDINGS;
  else if (p.api === "anthropic") body = anthropicChat(stream);
  else {
    body = openAIChat(stream);
    // With costs configured, a client that did not ask for usage gets it forced into the request, then hidden.
    if (p.forcedUsage) delete body.stream_options;
  }
  return {
    endpoint,
    body,
    rawBody: json(body),
    model: endpoint === "embeddings" ? p.embeddings?.model ?? "" : p.model,
    stream,
    forceStreamUsage: p.forcedUsage ?? false,
    backend: { name: p.schema },
    ...(p.location ? { location: p.location } : {}),
  };
}

// ---- Checks: each translation is read back before it is timed. ----

function fail(p: Pair, what: string): never {
  throw new Error(`${p.label}: ${what}`);
}

function parse(p: Pair, bytes: Uint8Array, what: string): Json {
  try {
    const v: unknown = JSON.parse(decoder.decode(bytes));
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Json;
  } catch {
    // Reported below.
  }
  return fail(p, `${what} is not a JSON object: ${decoder.decode(bytes).slice(0, 200)}`);
}

/** Returns the sizes of the client's body and of the upstream one. */
function checkRequest(p: Pair, endpoint: ClientEndpoint): [number, number] {
  const r = request(p, endpoint, false);
  const out = translatorOf(p, endpoint).request(r);
  if (isClientError(out)) fail(p, `request refused with ${out.status}: ${out.message}`);
  const path = endpoint === "embeddings" ? p.embeddings?.path ?? "" : p.path;
  if (!out.path.includes(path)) fail(p, `upstream path ${out.path} lacks ${path}`);
  const body = parse(p, out.body, "the upstream request");
  if (endpoint === "embeddings") {
    if (typeof (body.input ?? body.inputText) !== "string") fail(p, "the embeddings request has no input text");
    return [r.rawBody.length, out.body.length];
  }
  const turns = body.messages ?? body.contents;
  if (!Array.isArray(turns) || turns.length !== p.turns) fail(p, `expected ${p.turns} turns upstream`);
  if ((p.passThrough === true) !== (out.body === r.rawBody)) {
    fail(p, p.passThrough ? "the client's bytes were not passed through" : "the body was not rewritten");
  }
  return [r.rawBody.length, out.body.length];
}

/** Feeds an upstream answer, whole or one chunk at a time; returns what the client got. */
function feed(p: Pair, endpoint: ClientEndpoint, stream: boolean) {
  const up = endpoint === "embeddings" ? p.embeddings!.upstream : p.upstream;
  const rt = translatorOf(p, endpoint).response(request(p, endpoint, stream));
  rt.headers(200, stream ? up.streamHeaders : up.headers);
  const chunks = stream ? up.stream : [up.body];
  const out = chunks.map((c, i) => rt.body(c, i === chunks.length - 1));
  if (rt.failure !== undefined) fail(p, `the translator failed: ${rt.failure}`);
  if (rt.usage.inputTokens === undefined) fail(p, "no input tokens were read from the answer");
  const bytes = new Uint8Array(out.reduce((n, c) => n + c.length, 0));
  out.reduce((at, c) => (bytes.set(c, at), at + c.length), 0);
  return { bytes, rt };
}

function checkResponse(p: Pair, endpoint: ClientEndpoint): number {
  const { bytes } = feed(p, endpoint, false);
  const body = parse(p, bytes, "the client's response");
  if (endpoint === "embeddings") {
    const data = body.data as { embedding?: unknown }[] | undefined;
    if (typeof data?.[0]?.embedding !== "string") fail(p, "the embeddings response has no base64 embedding");
  } else if (p.api === "openai") {
    const choices = body.choices as { message?: { content?: unknown } }[] | undefined;
    if (choices?.[0]?.message?.content !== ANSWER) fail(p, "the chat.completion does not hold the answer");
  } else if ((body.content as { text?: unknown }[] | undefined)?.[0]?.text !== ANSWER) {
    fail(p, "the message does not hold the answer");
  }
  return bytes.length;
}

function checkStream(p: Pair): { bytes: number; events: number } {
  const { bytes } = feed(p, chatEndpoint(p), true);
  const sse = new SseParser();
  const events = [...sse.push(bytes), ...sse.end()];
  let text = "";
  let usageChunks = 0;
  for (const e of events) {
    if (e.data === "[DONE]") continue;
    const o = JSON.parse(e.data) as Json;
    if (p.api === "anthropic") {
      if (o.type === "content_block_delta") text += (o.delta as { text: string }).text;
    } else {
      text += (o.choices as { delta?: { content?: string } }[])[0]?.delta?.content ?? "";
      if (o.usage) usageChunks++;
    }
  }
  const last = events.at(-1)?.data ?? "";
  if (text !== ANSWER) fail(p, `the streamed text differs from the answer: ${JSON.stringify(text.slice(0, 80))}`);
  if (p.api === "openai" && last !== "[DONE]") fail(p, "the stream does not end with [DONE]");
  if (p.api === "anthropic" && !last.includes('"message_stop"')) fail(p, "the stream does not end with message_stop");
  if (p.api === "openai" && usageChunks !== (p.forcedUsage ? 0 : 1)) fail(p, `${usageChunks} usage chunks`);
  return { bytes: bytes.length, events: events.length };
}

// ---- Timing. ----

interface Case {
  readonly label: string;
  readonly column: Column;
  /** Upstream chunks per call (streams), 1 otherwise: figures are µs per unit. */
  readonly units: number;
  readonly op: () => number;
  batch: number;
  /** Per batch, µs per unit: wall-clock time, and the CPU time of the whole process (GC threads included). */
  readonly wall: number[];
  readonly cpu: number[];
}

/** Every call's output length lands here, so no call can be optimised away. */
let sink = 0;

const newCase = (label: string, column: Column, units: number, op: () => number): Case => ({
  label,
  column,
  units,
  op,
  batch: 1,
  wall: [],
  cpu: [],
});

function casesOf(p: Pair): Case[] {
  const out: Case[] = [];
  const add = (column: Column, units: number, op: () => number) => {
    if (p.only === undefined || p.only.includes(column)) out.push(newCase(p.label, column, units, op));
  };
  for (const endpoint of [chatEndpoint(p), ...(p.embeddings ? ["embeddings" as const] : [])]) {
    const emb = endpoint === "embeddings";
    const t = translatorOf(p, endpoint);
    const r = request(p, endpoint, false);
    const up = emb ? p.embeddings!.upstream : p.upstream;
    add(emb ? "embeddings" : "request", 1, () => {
      const out = t.request(r);
      return isClientError(out) ? -1 : out.body.length;
    });
    add(emb ? "embeddingsResponse" : "response", 1, () => {
      const rt = t.response(r);
      rt.headers(200, up.headers);
      return rt.body(up.body, true).length;
    });
  }
  const t = translatorOf(p, chatEndpoint(p));
  const r = request(p, chatEndpoint(p), true);
  const chunks = p.upstream.stream;
  add("stream", chunks.length, () => {
    const rt = t.response(r);
    rt.headers(200, p.upstream.streamHeaders);
    let n = 0;
    for (let i = 0; i < chunks.length; i++) n += rt.body(chunks[i]!, i === chunks.length - 1).length;
    return n;
  });
  return out;
}

/** Floors under the stream figures: only cutting the provider's framing into events, no translator. */
function floorCases(): Case[] {
  const floor = (label: string, chunks: readonly Uint8Array[], parser: () => { push(c: Uint8Array): unknown[] }) =>
    newCase(label, "stream", chunks.length, () => {
      const q = parser();
      let n = 0;
      for (const c of chunks) n += q.push(c).length;
      return n;
    });
  return [
    floor("floor: SseParser, OpenAI stream", OPENAI.stream, () => new SseParser()),
    floor("floor: AwsEventStreamParser, Converse stream", CONVERSE.stream, () => new AwsEventStreamParser()),
  ];
}

/** Calls for `ms` untimed (the warm-up); returns the ms per call it saw, to size the batches. */
function warmUp(c: Case, ms: number): number {
  const start = performance.now();
  let calls = 0;
  let now = start;
  do {
    sink = (sink + c.op()) | 0;
    calls++;
    now = performance.now();
  } while (now - start < ms);
  return (now - start) / calls;
}

function timeBatch(c: Case): void {
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < c.batch; i++) sink = (sink + c.op()) | 0;
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  c.wall.push((wall * 1000) / (c.batch * c.units));
  c.cpu.push((used.user + used.system) / (c.batch * c.units));
}

interface Figure {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

function figure(samples: readonly number[]): Figure {
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s.at(-1)! };
}

// ---- Main. ----

function options() {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      runs: { type: "string", default: "11" },
      "batch-ms": { type: "string", default: "40" },
      "warmup-ms": { type: "string", default: "200" },
      only: { type: "string", default: "" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const positive = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, not "${v}"`);
    return n;
  };
  return {
    runs: positive("runs", values.runs),
    batchMs: positive("batch-ms", values["batch-ms"]),
    warmupMs: positive("warmup-ms", values["warmup-ms"]),
    only: values.only,
    help: values.help,
  };
}

/** A pair the registry holds that this bench does not cover is reported, not silently left out. */
function uncoveredPairs(): string[] {
  const schemas: readonly BackendSchemaName[] = API_SCHEMAS;
  const covered = new Set(PAIRS.flatMap((p) => [
    `${p.api}/${chatEndpoint(p)}/${p.schema}`,
    ...(p.embeddings ? [`${p.api}/embeddings/${p.schema}`] : []),
  ]));
  const missing: string[] = [];
  for (const api of ["openai", "anthropic"] as const) {
    for (const endpoint of ["chatCompletions", "embeddings", "messages"] as const) {
      for (const schema of schemas) {
        const key = `${api}/${endpoint}/${schema}`;
        if (!covered.has(key) && translatorFor(api, endpoint, schema)) missing.push(key);
      }
    }
  }
  return missing;
}

/** Translates and reads back everything a row will time; returns the sizes involved, upstream and client. */
function check(p: Pair): Record<string, number> {
  const f: Record<string, number> = {};
  const wanted = (c: Column) => p.only === undefined || p.only.includes(c);
  if (wanted("request")) [f.requestBytesIn, f.requestBytesOut] = checkRequest(p, chatEndpoint(p));
  if (wanted("response")) {
    f.responseBytesIn = p.upstream.body.length;
    f.responseBytesOut = checkResponse(p, chatEndpoint(p));
  }
  if (p.embeddings && wanted("embeddings")) {
    [f.embeddingsRequestBytesIn, f.embeddingsRequestBytesOut] = checkRequest(p, "embeddings");
    f.embeddingsBytesIn = p.embeddings.upstream.body.length;
    f.embeddingsBytesOut = checkResponse(p, "embeddings");
  }
  if (wanted("stream")) {
    const s = checkStream(p);
    f.streamChunks = p.upstream.stream.length;
    f.streamBytesIn = p.upstream.stream.reduce((n, c) => n + c.length, 0);
    f.streamBytesOut = s.bytes;
    f.streamEventsOut = s.events;
  }
  return f;
}

const fmt = (us: number) => (us < 10 ? us.toFixed(2) : us < 100 ? us.toFixed(1) : us.toFixed(0));
const round = (x: number) => Math.round(x * 1000) / 1000;

function printTable(title: string, cases: readonly Case[], pick: (c: Case) => readonly number[]): void {
  const rows = new Map<string, { cells: Partial<Record<Column, string>>; chunks: number; whole: string }>();
  for (const c of cases) {
    const row = rows.get(c.label) ?? { cells: {}, chunks: 0, whole: "–" };
    const median = figure(pick(c)).median;
    row.cells[c.column] = fmt(median);
    if (c.column === "stream") {
      row.chunks = c.units;
      row.whole = fmt(median * c.units);
    }
    rows.set(c.label, row);
  }
  console.log(`\n${title}\n`);
  console.log(
    "| pair | request() chat | request() embeddings | response() chat | response() embeddings | stream, per chunk | " +
      "chunks | stream, whole |",
  );
  console.log("| --- | --: | --: | --: | --: | --: | --: | --: |");
  for (const [label, { cells, chunks, whole }] of rows) {
    const cols = COLUMNS.map((c) => cells[c] ?? "–");
    console.log(`| ${[label, ...cols, chunks || "–", whole].join(" | ")} |`);
  }
}

function main(): void {
  const o = options();
  if (o.help) return console.log(USAGE);
  const missing = uncoveredPairs();
  if (missing.length > 0) console.error(`Warning: registry pairs this bench does not cover: ${missing.join(", ")}`);

  const pairs = PAIRS.filter((p) => p.label.includes(o.only));
  const sizes = new Map(pairs.map((p) => [p.label, check(p)]));
  console.log(`All ${pairs.length} rows translate and read back correctly. Timing…`);

  const cases = [...pairs.flatMap(casesOf), ...(o.only === "" ? floorCases() : [])];
  for (const c of cases) c.batch = Math.max(1, Math.round(o.batchMs / warmUp(c, o.warmupMs)));
  // Runs interleave the cases, each run in a rotated order, so that the machine's noise spreads over all of them.
  for (let run = 0; run < o.runs; run++) {
    for (let i = 0; i < cases.length; i++) timeBatch(cases[(i + run * 3) % cases.length]!);
  }

  console.log(
    `\nDeno ${Deno.version.deno}; medians of ${o.runs} batches of ~${o.batchMs} ms each, after ${o.warmupMs} ms of ` +
      "warm-up per cell; µs per call, or per upstream chunk for streams (the translator's creation included).",
  );
  printTable("Wall-clock µs:", cases, (c) => c.wall);
  printTable("CPU µs of the bench process (all its threads):", cases, (c) => c.cpu);
  console.log("\nBytes: requests client → upstream, answers upstream → client:");
  for (const [label, s] of sizes) {
    const part = (name: string, key: string) => {
      const i = s[`${key}BytesIn`];
      return i === undefined ? [] : [`${name} ${i} → ${s[`${key}BytesOut`]}`];
    };
    const parts = [
      ...part("request", "request"),
      ...part("embeddings request", "embeddingsRequest"),
      ...part("response", "response"),
      ...part("embeddings", "embeddings"),
      ...part("stream", "stream"),
    ];
    if (parts.length > 0) console.log(`  ${label}: ${parts.join(", ")}`);
  }
  const widest = cases.map((c) => {
    const f = figure(c.wall);
    return { c, ratio: (f.max - f.min) / f.median };
  }).sort((a, b) => b.ratio - a.ratio)[0];
  if (widest) {
    const { c, ratio } = widest;
    console.log(
      `\nWidest run-to-run spread (wall): ${(ratio * 100).toFixed(0)} % of the median (${c.label}, ${c.column}).`,
    );
  }

  const json = (f: Figure) => ({ median: round(f.median), min: round(f.min), max: round(f.max) });
  console.log(JSON.stringify({
    bench: "translate",
    deno: Deno.version.deno,
    runs: o.runs,
    batchMs: o.batchMs,
    warmupMs: o.warmupMs,
    unit: "µs per call; stream: µs per upstream chunk",
    cells: cases.map((c) => ({
      pair: c.label,
      column: c.column,
      units: c.units,
      wall: json(figure(c.wall)),
      cpu: json(figure(c.cpu)),
    })),
    sizes: Object.fromEntries(sizes),
    sink,
  }));
}

main();
