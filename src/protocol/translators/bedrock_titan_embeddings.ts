// OpenAI embeddings → Amazon Titan Text Embeddings V2 through Bedrock InvokeModel (/model/{id}/invoke).
// https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
//
// Titan embeds one text per request and knows three sizes (256, 512, 1024); anything else is refused, not adjusted.
import { count, usage as tokenUsage } from "../usage.ts";
import type { TokenUsage } from "../usage.ts";
import { bedrockErrorBody, bedrockModelPath } from "./bedrock_converse.ts";
import { clientErrorBody, jsonBytes } from "./translator.ts";
import { Buffer } from "node:buffer";
import type { ClientError, ResponseTranslator, TranslateRequest, Translator, UpstreamRequest } from "./translator.ts";

const PREFIX = "Cannot translate request for AWS Bedrock Titan embeddings: ";
const TITAN_DIMENSIONS = [256, 512, 1024];

function refuse(status: 400 | 422, param: string, reason: string): ClientError {
  return { status, message: `${PREFIX}${param} ${reason}`, param };
}

interface TitanRequest {
  readonly inputText: string;
  readonly dimensions?: number;
  readonly normalize?: boolean;
}

function titanRequest(body: Readonly<Record<string, unknown>>): TitanRequest | ClientError {
  let input = body.input;
  if (Array.isArray(input)) {
    if (input.length === 0) return refuse(400, "input", "must not be empty");
    if (input.length > 1) {
      return refuse(422, "input", `holds ${input.length} inputs, but Titan embeds one input per request`);
    }
    input = input[0];
    if (typeof input === "number" || Array.isArray(input)) {
      return refuse(422, "input", "holds token ids, but Titan embeds text");
    }
  }
  if (typeof input !== "string") return refuse(400, "input", "must be a string or an array of strings");
  if (input === "") return refuse(400, "input", "must not be an empty string");
  const dimensions = body.dimensions ?? undefined;
  if (dimensions !== undefined && (typeof dimensions !== "number" || !Number.isSafeInteger(dimensions))) {
    return refuse(400, "dimensions", "must be an integer");
  }
  if (dimensions !== undefined && !TITAN_DIMENSIONS.includes(dimensions)) {
    return refuse(422, "dimensions", "must be 256, 512 or 1024 for Titan");
  }
  const format = body.encoding_format ?? undefined;
  if (format !== undefined && format !== "float" && format !== "base64") {
    return refuse(400, "encoding_format", 'must be "float" or "base64"');
  }
  // Not an OpenAI parameter: Titan's own switch (on by default), for clients that send it through extra_body.
  const normalize = body.normalize ?? undefined;
  if (normalize !== undefined && typeof normalize !== "boolean") return refuse(400, "normalize", "must be a boolean");
  return {
    inputText: input,
    ...(dimensions !== undefined ? { dimensions } : {}),
    ...(normalize !== undefined ? { normalize } : {}),
  };
}

export const bedrockTitanEmbeddings: Translator = {
  request(r: TranslateRequest): UpstreamRequest | ClientError {
    if (r.endpoint !== "embeddings") {
      return { status: 422, message: `${PREFIX}the ${r.endpoint} endpoint is not supported` };
    }
    const titan = titanRequest(r.body);
    if ("status" in titan) return titan;
    const path = bedrockModelPath(r.model, "invoke");
    if (typeof path !== "string") return path;
    return {
      path,
      headers: { "content-type": "application/json", accept: "application/json" },
      body: jsonBytes(titan),
    };
  },
  response(r: TranslateRequest): ResponseTranslator {
    return new TitanResponse(r.model, r.body.encoding_format === "base64");
  },
};

class TitanResponse implements ResponseTranslator {
  usage: TokenUsage = {};
  readonly responseModel = undefined;
  failure: string | undefined;
  #status = 200;
  #headers: ReadonlyMap<string, string> = new Map();
  #chunks: Uint8Array[] = [];

  constructor(readonly model: string, readonly base64: boolean) {}

  headers(status: number, headers: ReadonlyMap<string, string>): Readonly<Record<string, string>> {
    this.#status = status;
    this.#headers = headers;
    return { "content-type": "application/json" };
  }

  body(chunk: Uint8Array, endOfStream: boolean): Uint8Array {
    this.#chunks.push(chunk);
    if (!endOfStream) return new Uint8Array(0);
    const bytes = concat(this.#chunks);
    if (this.#status < 200 || this.#status >= 300) return bedrockErrorBody(this.#status, this.#headers, bytes);
    let answer: unknown;
    try {
      answer = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      answer = undefined;
    }
    const embedding = typeof answer === "object" && answer !== null ? (answer as Record<string, unknown>) : {};
    const vector = embedding.embedding;
    if (!Array.isArray(vector) || !vector.every((x) => typeof x === "number")) {
      this.failure = "Titan answer is not JSON with an embedding array";
      return clientErrorBody("openai", 502, "AWS Bedrock returned an embedding the gateway could not read");
    }
    const tokens = count(embedding.inputTextTokenCount);
    this.usage = tokenUsage({ inputTokens: tokens, totalTokens: tokens });
    return jsonBytes({
      object: "list",
      data: [{ object: "embedding", index: 0, embedding: this.base64 ? float32Base64(vector) : vector }],
      model: this.model,
      ...(tokens !== undefined ? { usage: { prompt_tokens: tokens, total_tokens: tokens } } : {}),
    });
  }
}

/** OpenAI's base64 encoding: the vector as little-endian float32, base64-encoded. */
function float32Base64(vector: readonly number[]): string {
  const view = new DataView(new ArrayBuffer(vector.length * 4));
  vector.forEach((x, i) => view.setFloat32(i * 4, x, true));
  return Buffer.from(view.buffer).toString("base64");
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
