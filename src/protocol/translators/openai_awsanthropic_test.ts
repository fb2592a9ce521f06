import { assertEquals, assertMatch } from "../../../test/support/assert.ts";
import { openaiAwsAnthropicTranslator } from "./openai_awsanthropic.ts";
import {
  assertRequestNeverThrows,
  feed,
  readFixture,
  runRequestVectors,
  runResponseVectors,
  TEST_NOW,
  translateRequest,
} from "./anthropic_vectors.ts";

const translator = openaiAwsAnthropicTranslator(TEST_NOW);
const context = {
  model: "anthropic.claude-sonnet-4-20250514-v1:0",
  stream: true,
  backend: { name: "AWSAnthropic" },
  body: { stream: true },
} as const;
const eventStream = { "content-type": "application/vnd.amazon.eventstream" };
const decoder = new TextDecoder();

Deno.test("openaiAwsAnthropic translates every request vector in testdata/translators/openai_awsanthropic", async () => {
  await runRequestVectors("openai_awsanthropic", translator, "chatCompletions");
});

Deno.test("openaiAwsAnthropic translates every Bedrock answer in testdata, whole and byte by byte", async () => {
  await runResponseVectors("openai_awsanthropic", translator, "chatCompletions");
});

Deno.test("openaiAwsAnthropic.request never throws on arbitrary JSON object bodies (property)", () => {
  assertRequestNeverThrows(translator, context, "chatCompletions");
});

Deno.test("openaiAwsAnthropic sends the frames before a corrupt one, then an error chunk, however the bytes arrive", async () => {
  const frames = await readFixture("openai_awsanthropic", "upstream_text_stream.aws.json");
  const fourth = frameStarts(frames)[3]!;
  const corrupt = frames.slice();
  corrupt[fourth + 20]! ^= 0xff;
  const r = translateRequest(context, "chatCompletions");
  const whole = feed(translator, r, 200, eventStream, [corrupt]);
  const bytewise = feed(translator, r, 200, eventStream, [...corrupt].map((b) => new Uint8Array([b])));
  assertEquals(bytewise.body, whole.body);
  const text = decoder.decode(whole.body);
  assertMatch(
    text,
    /"content":"A cat"[^]*data: \{"error":\{"message":"Cannot read the AWSAnthropic stream: a frame is corrupt/,
  );
  assertEquals(text.includes("on a mat"), false);
  assertMatch(whole.translator.failure ?? "", /^Cannot read the AWSAnthropic stream: a frame is corrupt: /);
  assertEquals(whole.translator.usage.inputTokens, 14);
});

Deno.test("openaiAwsAnthropic reports a Bedrock stream that stops inside a frame after the frames before it", async () => {
  const frames = await readFixture("openai_awsanthropic", "upstream_text_stream.aws.json");
  const fed = feed(translator, translateRequest(context, "chatCompletions"), 200, eventStream, [frames.slice(0, -5)]);
  assertMatch(
    fed.translator.failure ?? "",
    /^Cannot read the AWSAnthropic stream: the stream ended inside a frame \(\d+ bytes left\)$/,
  );
  assertMatch(decoder.decode(fed.body), /"finish_reason":"stop"[^]*data: \{"error":/);
  assertEquals(fed.translator.usage.outputTokens, 9);
});

/** Where each event-stream frame starts (a frame begins with its total length). */
function frameStarts(bytes: Uint8Array): number[] {
  const starts: number[] = [];
  for (let at = 0; at < bytes.length; at += new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0)) {
    starts.push(at);
  }
  return starts;
}
