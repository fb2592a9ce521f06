import Anthropic from "@anthropic-ai/sdk";
import { assertEquals, assertMatch } from "../../../test/support/assert.ts";
import { anthropicAwsAnthropic } from "./anthropic_awsanthropic.ts";
import {
  assertRequestNeverThrows,
  feed,
  readFixture,
  runRequestVectors,
  runResponseVectors,
  translateRequest,
} from "./anthropic_vectors.ts";
import { isClientError } from "./translator.ts";

const model = "anthropic.claude-sonnet-4-20250514-v1:0";
const backend = { name: "AWSAnthropic" } as const;
const eventStream = { "content-type": "application/vnd.amazon.eventstream" };

Deno.test("anthropicAwsAnthropic translates every request vector in testdata/translators/anthropic_awsanthropic", async () => {
  await runRequestVectors("anthropic_awsanthropic", anthropicAwsAnthropic, "messages");
});

Deno.test("anthropicAwsAnthropic translates every Bedrock answer in testdata, whole and byte by byte", async () => {
  await runResponseVectors("anthropic_awsanthropic", anthropicAwsAnthropic, "messages");
});

Deno.test("anthropicAwsAnthropic.request never throws on arbitrary JSON object bodies (property)", () => {
  assertRequestNeverThrows(anthropicAwsAnthropic, { model, backend }, "messages");
});

/** An Anthropic SDK whose requests go through the translator and are answered by a Bedrock capture. */
function sdkAgainst(file: string, status = 200, headers: Record<string, string> = eventStream): Anthropic {
  return new Anthropic({
    apiKey: "test",
    baseURL: "http://gateway.test",
    maxRetries: 0,
    fetch: async (_url: string | URL | Request, init?: RequestInit) => {
      const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
      const r = translateRequest({ model, stream: body.stream === true, backend, body }, "messages");
      const upstream = anthropicAwsAnthropic.request(r);
      if (isClientError(upstream)) throw new Error(upstream.message);
      const fed = feed(anthropicAwsAnthropic, r, status, headers, [await readFixture("anthropic_awsanthropic", file)]);
      return new Response(fed.body, { status, headers: fed.headers });
    },
  });
}

const params = { model: "claude-sonnet-4", max_tokens: 100, messages: [{ role: "user" as const, content: "Hi" }] };

Deno.test("the Anthropic SDK reads the SSE that anthropicAwsAnthropic makes of Bedrock frames", async () => {
  const client = sdkAgainst("../openai_awsanthropic/upstream_text_stream.aws.json");
  const message = await client.messages.stream(params).finalMessage();
  assertEquals(message.content.map((b) => b.type === "text" ? b.text : b.type), ["A cat on a mat."]);
  assertEquals(message.stop_reason, "end_turn");
  const events: string[] = [];
  for await (const e of await client.messages.create({ ...params, stream: true })) events.push(e.type);
  assertEquals(events, [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
  ]);
});

Deno.test("the Anthropic SDK raises a Bedrock exception frame and a Bedrock error status", async () => {
  let error: unknown;
  try {
    await sdkAgainst("../openai_awsanthropic/upstream_throttled_stream.aws.json").messages.stream(params)
      .finalMessage();
  } catch (e) {
    error = e;
  }
  assertEquals(error instanceof Anthropic.APIError, true);
  assertMatch(String((error as Error).message), /Too many tokens/);
  error = undefined;
  try {
    await sdkAgainst("../openai_awsanthropic/upstream_validation_error.json", 400, {
      "content-type": "application/json",
    })
      .messages.create(params);
  } catch (e) {
    error = e;
  }
  assertEquals(error instanceof Anthropic.BadRequestError, true);
  assertMatch(String((error as Error).message), /Malformed input request/);
});
