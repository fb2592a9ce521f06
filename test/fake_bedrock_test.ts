// The fake Bedrock is only worth its verdicts if AWS's own client agrees with them: the official SDK, signing with
// its own signer, must get through with the right key pair and be refused with a wrong one. Then Tollgate's own
// path (translate, sign with signAwsRequest, send, translate back) is held to the same server.
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from "@aws-sdk/client-bedrock-runtime";
import OpenAI from "openai";
import { signAwsRequest } from "../src/protocol/auth/aws_sigv4.ts";
import { openaiAwsBedrock } from "../src/protocol/translators/openai_awsbedrock.ts";
import { isClientError } from "../src/protocol/translators/translator.ts";
import type { TranslateRequest } from "../src/protocol/translators/translator.ts";
import { assert, assertEquals } from "./support/assert.ts";
import { startFakeBedrock } from "./support/fake_bedrock.ts";
import type { FakeBedrockHandlers } from "./support/fake_bedrock.ts";

const credentials = { accessKeyId: "AKIDFAKEBEDROCK", secretAccessKey: "fake/secret+key" };
const MODEL = "anthropic.claude-3-haiku-20240307-v1:0";

const handlers: FakeBedrockHandlers = {
  converse: () => ({
    output: { message: { role: "assistant", content: [{ text: "Hello from the fake" }] } },
    stopReason: "end_turn",
    usage: { inputTokens: 5, outputTokens: 4, totalTokens: 9 },
    metrics: { latencyMs: 1 },
  }),
  converseStream: () => [
    { event: "messageStart", payload: { role: "assistant" } },
    { event: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "Hel" } } },
    { event: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "lo" } } },
    { event: "contentBlockStop", payload: { contentBlockIndex: 0 } },
    { event: "messageStop", payload: { stopReason: "end_turn" } },
    { event: "metadata", payload: { usage: { inputTokens: 5, outputTokens: 2, totalTokens: 7 }, metrics: {} } },
  ],
};

function sdkClient(endpoint: string, secretAccessKey: string): BedrockRuntimeClient {
  return new BedrockRuntimeClient({
    region: "us-east-1",
    endpoint,
    credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey },
    maxAttempts: 1,
  });
}

Deno.test("The AWS SDK's ConverseCommand gets through the fake Bedrock with the right credentials", async () => {
  await using fake = await startFakeBedrock({ credentials, handlers });
  const client = sdkClient(fake.url, credentials.secretAccessKey);
  try {
    const out = await client.send(
      new ConverseCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "Hi" }] }] }),
    );
    assertEquals(out.output?.message?.content?.[0]?.text, "Hello from the fake");
    assertEquals(out.usage?.totalTokens, 9);
    assertEquals(fake.rejected, []);
    assertEquals(fake.calls.map((c) => [c.operation, c.modelId]), [["converse", MODEL]]);
  } finally {
    client.destroy();
  }
});

Deno.test("The AWS SDK reads the fake Bedrock's event stream frame by frame", async () => {
  await using fake = await startFakeBedrock({ credentials, handlers });
  const client = sdkClient(fake.url, credentials.secretAccessKey);
  try {
    const out = await client.send(
      new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "Hi" }] }] }),
    );
    const seen: string[] = [];
    for await (const e of out.stream ?? []) seen.push(Object.keys(e).join());
    assertEquals(seen, [
      "messageStart",
      "contentBlockDelta",
      "contentBlockDelta",
      "contentBlockStop",
      "messageStop",
      "metadata",
    ]);
  } finally {
    client.destroy();
  }
});

Deno.test("The fake Bedrock refuses the AWS SDK with 403 when the secret key is wrong", async () => {
  await using fake = await startFakeBedrock({ credentials, handlers });
  const client = sdkClient(fake.url, "not-the-secret");
  let status: number | undefined;
  let name = "";
  try {
    await client.send(new ConverseCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "Hi" }] }] }));
  } catch (e) {
    status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    name = (e as Error).name;
  } finally {
    client.destroy();
  }
  assertEquals(status, 403);
  assertEquals(name, "InvalidSignatureException");
  assertEquals(fake.calls, []);
});

Deno.test("The fake Bedrock refuses an unsigned request with 403 in Bedrock's error shape", async () => {
  await using fake = await startFakeBedrock({ credentials, handlers });
  const res = await fetch(`${fake.url}/model/m/converse`, { method: "POST", body: "{}" });
  assertEquals(res.status, 403);
  assertEquals(res.headers.get("x-amzn-errortype")?.split(":")[0], "MissingAuthenticationTokenException");
  assertEquals(await res.json(), { message: "Missing Authentication Token" });
});

function chatRequest(body: Record<string, unknown>, stream: boolean): TranslateRequest {
  const full = { model: MODEL, ...body, stream };
  return {
    endpoint: "chatCompletions",
    body: full,
    rawBody: new TextEncoder().encode(JSON.stringify(full)),
    model: MODEL,
    stream,
    forceStreamUsage: false,
    backend: { name: "AWSBedrock" },
  };
}

/** What the edge does for one attempt: translate, sign, send, translate the answer back. */
async function roundTrip(fakeHost: string, r: TranslateRequest, secretAccessKey: string) {
  const up = openaiAwsBedrock.request(r);
  assert(!isClientError(up));
  const signed = await signAwsRequest({
    method: "POST",
    host: fakeHost,
    path: up.path,
    headers: up.headers,
    body: up.body,
    region: "us-east-1",
    service: "bedrock",
    credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey },
  });
  const res = await fetch(`http://${fakeHost}${up.path}`, {
    method: "POST",
    headers: { ...up.headers, ...signed },
    body: new Uint8Array(up.body),
  });
  const t = openaiAwsBedrock.response(r);
  const headers = t.headers(res.status, new Map(res.headers));
  const out = new Uint8Array(await res.arrayBuffer());
  return { status: res.status, headers, body: new TextDecoder().decode(t.body(out, true)), usage: t.usage };
}

Deno.test("A chat completion translated and signed by Tollgate passes the fake Bedrock's signature check", async () => {
  await using fake = await startFakeBedrock({ credentials, handlers });
  const r = chatRequest({ messages: [{ role: "user", content: "Hi" }] }, false);
  const out = await roundTrip(fake.host, r, credentials.secretAccessKey);
  assertEquals(out.status, 200);
  const completion = JSON.parse(out.body);
  assertEquals(completion.choices[0].message.content, "Hello from the fake");
  assertEquals(out.usage, { inputTokens: 5, outputTokens: 4, totalTokens: 9 });
  assertEquals(fake.calls[0]?.path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
});

Deno.test("A streamed chat signed by Tollgate comes back as OpenAI chunks ending in [DONE]", async () => {
  await using fake = await startFakeBedrock({ credentials, handlers });
  const r = chatRequest({ messages: [{ role: "user", content: "Hi" }] }, true);
  const out = await roundTrip(fake.host, r, credentials.secretAccessKey);
  assertEquals(out.headers, { "content-type": "text/event-stream" });
  const data = out.body.split("\n\n").filter((s) => s !== "").map((s) => s.replace(/^data: /, ""));
  assertEquals(data.at(-1), "[DONE]");
  const text = data.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta?.content ?? "").join("");
  assertEquals(text, "Hello");
  assertEquals(out.usage, { inputTokens: 5, outputTokens: 2, totalTokens: 7 });
});

Deno.test("A request signed with the wrong secret gets Bedrock's 403 as an OpenAI error", async () => {
  await using fake = await startFakeBedrock({ credentials, handlers });
  const r = chatRequest({ messages: [{ role: "user", content: "Hi" }] }, false);
  const out = await roundTrip(fake.host, r, "wrong");
  assertEquals(out.status, 403);
  const error = JSON.parse(out.body).error;
  assertEquals(error.type, "authentication_error");
  assert(error.message.startsWith("The request signature we calculated does not match"));
  assertEquals(fake.rejected, ["InvalidSignatureException"]);
});

/** The edge in miniature for the official openai SDK: each call is translated, signed, sent to the fake Bedrock,
 * and its answer translated back chunk by chunk as it arrives. */
function gatewayClient(fakeHost: string): OpenAI {
  const gatewayFetch = async (_url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
    const r = { ...chatRequest(body, body.stream === true), model: String(body.model) };
    const up = openaiAwsBedrock.request(r);
    if (isClientError(up)) {
      return new Response(JSON.stringify({ error: { message: up.message } }), { status: up.status });
    }
    const signed = await signAwsRequest({
      method: "POST",
      host: fakeHost,
      path: up.path,
      headers: up.headers,
      body: up.body,
      region: "us-east-1",
      service: "bedrock",
      credentials,
    });
    const res = await fetch(`http://${fakeHost}${up.path}`, {
      method: "POST",
      headers: { ...up.headers, ...signed },
      body: new Uint8Array(up.body),
    });
    const t = openaiAwsBedrock.response(r);
    const headers = t.headers(res.status, new Map(res.headers));
    const translated = res.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => controller.enqueue(t.body(chunk, false)),
        flush: (controller) => controller.enqueue(t.body(new Uint8Array(), true)),
      }),
    );
    return new Response(translated, { status: res.status, headers });
  };
  return new OpenAI({ apiKey: "unused", baseURL: "http://gateway.invalid/v1", maxRetries: 0, fetch: gatewayFetch });
}

Deno.test("The openai SDK assembles streamed tool calls from Bedrock through the translator", async () => {
  await using fake = await startFakeBedrock({
    credentials,
    handlers: {
      converseStream: () => [
        { event: "messageStart", payload: { role: "assistant" } },
        { event: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "Checking." } } },
        {
          event: "contentBlockStart",
          payload: { contentBlockIndex: 1, start: { toolUse: { toolUseId: "tu_1", name: "weather" } } },
        },
        { event: "contentBlockDelta", payload: { contentBlockIndex: 1, delta: { toolUse: { input: '{"city"' } } } },
        { event: "contentBlockDelta", payload: { contentBlockIndex: 1, delta: { toolUse: { input: ':"Oslo"}' } } } },
        { event: "messageStop", payload: { stopReason: "tool_use" } },
        { event: "metadata", payload: { usage: { inputTokens: 20, outputTokens: 9, totalTokens: 29 }, metrics: {} } },
      ],
    },
  });
  const completion = await gatewayClient(fake.host).chat.completions.stream({
    model: MODEL,
    messages: [{ role: "user", content: "Weather in Oslo?" }],
    tools: [{ type: "function", function: { name: "weather", parameters: { type: "object" } } }],
    stream_options: { include_usage: true },
  }).finalChatCompletion();
  const choice = completion.choices[0]!;
  assertEquals(choice.finish_reason, "tool_calls");
  assertEquals(choice.message.content, "Checking.");
  const calls = (choice.message.tool_calls ?? []).map((c) => c.type === "function" ? c.function : undefined);
  assertEquals(calls, [{ name: "weather", arguments: '{"city":"Oslo"}' }]);
  assertEquals(completion.usage, { prompt_tokens: 20, completion_tokens: 9, total_tokens: 29 });
});

Deno.test("The openai SDK raises Bedrock's mid-stream throttling as an API error", async () => {
  await using fake = await startFakeBedrock({
    credentials,
    handlers: {
      converseStream: () => [
        { event: "messageStart", payload: { role: "assistant" } },
        { exception: "throttlingException", payload: { message: "Too many requests" } },
      ],
    },
  });
  const stream = await gatewayClient(fake.host).chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "Hi" }],
    stream: true,
  });
  let error: unknown;
  try {
    for await (const _ of stream) { /* drain */ }
  } catch (e) {
    error = e;
  }
  assert(error instanceof OpenAI.APIError, `an APIError, got ${String(error)}`);
  assertEquals(error.message, "Too many requests");
});
