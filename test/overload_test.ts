// Overload: what the gateway holds in memory when clients are slow, bodies are huge, streams are many, or an
// upstream never ends what it started. Every assertion is on bytes, counts and states — memory bounds with the
// reason for each bound, never a duration.
import { assert, assertEquals } from "./support/assert.ts";
import { chatCompletion, startFakeUpstream } from "./support/fake_upstream.ts";
import { startGateway } from "./support/gateway_fixture.ts";
import { freePorts, pollUntil } from "./support/nats_server.ts";
import { TOLLGATE } from "./support/process.ts";
import { MAX_SSE_EVENT_CHARS, SseEventTooLargeError, SseParser } from "../src/protocol/sse.ts";
import { AwsEventStreamParser, MAX_EVENT_STREAM_FRAME_BYTES } from "../src/protocol/aws_event_stream.ts";
import { MAX_HELD_RESPONSE_BYTES } from "../src/actors/response_translation.ts";

const MiB = 1024 * 1024;
const encoder = new TextEncoder();
const TOKEN_EXAMPLE = "testdata/resources/token_ratelimit/token_ratelimit.yaml";
const MODEL = "rate-limit-funky-model";

/** `tollgate run` as a child on free ports, with the token rate limit example (limits raised) in front of `upstream`. */
async function startRun(upstreamPort: number) {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-overload-" });
  const config = (await Deno.readTextFile(TOKEN_EXAMPLE))
    .replace("port: 18080", `port: ${upstreamPort}`)
    .replace(/requests: \d+\n/g, "requests: 1000000000\n");
  await Deno.writeTextFile(`${dir}/gateway.yaml`, config);
  const [port, admin] = freePorts(2) as [number, number];
  const child = new Deno.Command(TOLLGATE, {
    args: ["run", `${dir}/gateway.yaml`, "--listen", `127.0.0.1:${port}`, "--admin", `127.0.0.1:${admin}`],
    env: { TOLLGATE_LOG_LEVEL: "warn" },
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  while (!banner.includes("Try it:")) {
    const { value, done } = await stderr.read();
    if (done) throw new Error(`tollgate run exited early:\n${banner}`);
    banner += value;
  }
  const draining = (async () => {
    while (!(await stderr.read()).done) { /* keep the pipe flowing */ }
  })();
  const metric = async (name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    let sum = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))) sum += Number(m[1]);
    return sum;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    /** Resident memory of the gateway process, MiB (/proc/PID/status VmRSS). */
    rssMiB: () => Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${child.pid}/status`))![1]) / 1024,
    metric,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await draining;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

const chunkEvent = (content: string) =>
  encoder.encode(`data: ${
    JSON.stringify({
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: MODEL,
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
    })
  }\n\n`);

Deno.test("a flood of 200 slow streaming clients: the gateway's memory levels off instead of following the upstream", async () => {
  const clients = 200;
  const event = chunkEvent("y".repeat(900));
  let started = 0;
  let cancelled = 0;
  // Each stream would go on for 64 MiB: far more than any buffer between here and the clients.
  await using upstream = await startFakeUpstream(() => {
    started++;
    let sent = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent >= 64 * MiB) return c.close();
          c.enqueue(event);
          sent += event.length;
        },
        cancel() {
          cancelled++;
        },
      }, { highWaterMark: 0 }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  await using run = await startRun(upstream.port);
  const body = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], stream: true });
  for (let i = 0; i < 10; i++) { // warm up: JIT, connection pools, the first streams
    const res = await fetch(`${run.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-user-id": "warm" },
      body,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
  }
  await pollUntil("the warm-up streams to be cancelled", () => cancelled === 10 || undefined);
  const baseline = run.rssMiB();

  const request = encoder.encode(
    `POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n` +
      `x-user-id: slow\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  );
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < clients; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: run.port });
      conns.push(conn);
      await writeAll(conn, request);
    }
    // Each client reads one byte every 100 ms. The first round returns once every stream has begun to flow.
    const one = new Uint8Array(1);
    const round = () => Promise.all(conns.map((c) => c.read(one)));
    await round();
    assertEquals(started, 10 + clients, "every slow request reached the upstream");
    const rounds = async (n: number) => {
      let peak = 0;
      for (let i = 0; i < n; i++) {
        await new Promise((r) => setTimeout(r, 100));
        await round();
        peak = Math.max(peak, run.rssMiB());
      }
      return peak;
    };
    const settled = await rounds(5);
    const later = await rounds(15);
    // Per slow stream the gateway holds what its HTTP server may queue for the client and its HTTP client may
    // read ahead from the upstream (hyper caps each buffer at ~400 KiB) and one chunk on its way through ext_proc:
    // ~0.65 MiB measured; 2 MiB each is the bound. Without back-pressure the upstream, at hundreds of MB/s, would
    // be read into memory at that pace: growth would follow it over the 15 rounds (> 1.5 s) between the samples.
    assert(
      Math.max(settled, later) - baseline < clients * 2,
      `RSS grew ${Math.max(settled, later) - baseline} MiB over ${baseline} MiB for ${clients} slow streams`,
    );
    assert(later - settled < 64, `RSS kept growing while the clients stalled: ${settled} → ${later} MiB`);
  } finally {
    for (const c of conns) c.close();
  }
  await pollUntil("every upstream stream to be cancelled", () => cancelled === started || undefined, {
    timeoutMs: 30_000,
  });
  await pollUntil(
    "nothing left open in the gateway",
    async () =>
      (await run.metric("tollgate_edge_requests_active")) === 0 &&
        (await run.metric("tollgate_extproc_streams_active")) === 0 || undefined,
    { timeoutMs: 30_000 },
  );
});

/** Uploads `total` bytes as fast as the edge takes them; stops at the response (as a client that reads it does). */
async function upload(port: number, total: number, chunked: boolean) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let written = 0;
  let response = "";
  let writtenAtResponse = -1;
  const reading = (async () => {
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return;
      if (writtenAtResponse < 0) writtenAtResponse = written;
      response += new TextDecoder().decode(buf.subarray(0, n));
      if (response.includes("\r\n\r\n")) return;
    }
  })();
  const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n` +
    (chunked ? "transfer-encoding: chunked\r\n\r\n" : `content-length: ${total}\r\n\r\n`);
  const piece = new Uint8Array(64 * 1024).fill(0x20);
  const frame = chunked
    ? new Uint8Array([...encoder.encode(`${piece.length.toString(16)}\r\n`), ...piece, 13, 10])
    : piece;
  try {
    await writeAll(conn, encoder.encode(head));
    while (written < total && writtenAtResponse < 0) {
      await writeAll(conn, frame);
      written += piece.length;
    }
  } catch { /* the edge closed the connection */ }
  await reading;
  conn.close();
  return { status: Number(response.split(" ")[1]), writtenAtResponse };
}

Deno.test("a 100 MB upload is refused with 413 before the edge holds it: none of a declared one, at most the limit of a chunked one", async () => {
  const limit = 8 * MiB;
  await using gw = await startGateway({
    upstreams: { openai: () => chatCompletion(MODEL, "never") },
    routes: [{ model: MODEL, priorities: [["openai"]] }],
    maxRequestBodyBytes: limit,
  });
  // The edge served through a body that counts what the edge took from it.
  let taken = 0;
  let largestChunk = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const reader = req.body?.getReader();
    const body = reader &&
      new ReadableStream<Uint8Array>({
        async pull(c) {
          const r = await reader.read();
          if (r.done) return c.close();
          taken += r.value.length;
          largestChunk = Math.max(largestChunk, r.value.length);
          c.enqueue(r.value);
        },
        cancel: (reason) => reader.cancel(reason),
      }, { highWaterMark: 0 });
    return gw.edge.handle(
      new Request(req.url, { method: req.method, headers: req.headers, body: body ?? null, signal: req.signal }),
    );
  });
  try {
    const declared = await upload(server.addr.port, 100 * MiB, false);
    assertEquals(declared.status, 413);
    assertEquals(taken, 0, "a declared length over the limit is refused before any of the body is read");
    assert(declared.writtenAtResponse < 100 * MiB, "the 413 came while the client was still uploading");

    taken = 0;
    const chunked = await upload(server.addr.port, 100 * MiB, true);
    assertEquals(chunked.status, 413);
    assert(taken > limit && taken <= limit + largestChunk, `the edge took ${taken} bytes for a limit of ${limit}`);
    assert(chunked.writtenAtResponse < 100 * MiB, "the 413 came while the client was still uploading");
  } finally {
    await server.shutdown();
  }
  assertEquals(gw.upstreams.openai!.seen.length, 0, "nothing reached the provider");
  await pollUntil("streams to close", () => gw.extproc.openStreams === 0 && gw.edge.activeRequests === 0 || undefined);
  assertEquals(gw.accessLog.map((l) => [l.status, l.response_code_details]), [
    [413, "request_payload_too_large"],
    [413, "request_payload_too_large"],
  ]);
});

Deno.test("2,000 concurrent requests, half of them streams, through the edge: all answered, none 5xx, nothing left open", async () => {
  await using gw = await startGateway({
    upstreams: {
      openai: (r) => {
        const body = JSON.parse(r.body);
        if (!body.stream) return chatCompletion(body.model, "ok");
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(chunkEvent("o"));
            c.enqueue(chunkEvent("k"));
            c.enqueue(encoder.encode("data: [DONE]\n\n"));
            c.close();
          },
        });
        return new Response(stream, { headers: { "content-type": "text/event-stream" } });
      },
    },
    routes: [{ model: MODEL, priorities: [["openai"]] }],
  });
  const n = 2000;
  const results = await Promise.all(Array.from({ length: n }, async (_, i) => {
    try {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], stream: i % 2 === 1 }),
        signal: AbortSignal.timeout(60_000),
      });
      const text = await res.text();
      return res.status === 200 && text.includes(i % 2 === 1 ? "[DONE]" : "chat.completion") ? "ok" : `${res.status}`;
    } catch (err) {
      return `error: ${(err as Error).message}`;
    }
  }));
  const counts: Record<string, number> = {};
  for (const r of results) counts[r] = (counts[r] ?? 0) + 1;
  assertEquals(counts, { ok: n });
  assertEquals(gw.upstreams.openai!.seen.length, n);
  await pollUntil(
    "every stream to close",
    () =>
      gw.extproc.openStreams === 0 && gw.extproc.registeredRouters === 0 && gw.edge.activeRequests === 0 ||
      undefined,
    { timeoutMs: 30_000 },
  );
  assertEquals(gw.usage.length, n, "one usage event per request");
});

/** An upstream that answers a stream request with `total` bytes that never complete what they started. */
async function endlessUpstream(contentType: string, first: string, filler: Uint8Array, total: number) {
  const produced = { bytes: 0, cancelled: false };
  const upstream = await startFakeUpstream(() =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(encoder.encode(first));
        },
        pull(c) {
          if (produced.bytes >= total) return c.close();
          c.enqueue(filler);
          produced.bytes += filler.length;
        },
        cancel() {
          produced.cancelled = true;
        },
      }, { highWaterMark: 0 }),
      { headers: { "content-type": contentType } },
    )
  );
  return { upstream, produced };
}

for (
  const [what, contentType, first, cap] of [
    ["an event stream whose event never ends", "text/event-stream", "data: ", MAX_SSE_EVENT_CHARS],
    ["a JSON body instead of events, without end", "application/json", '{"filler": "', MAX_HELD_RESPONSE_BYTES],
  ] as const
) {
  Deno.test(`a stream answered with ${what} is cut once the sidecar would hold more than its cap`, async () => {
    const total = 96 * MiB; // what the upstream would send, over the cap and the socket buffers on the way
    const { upstream, produced } = await endlessUpstream(
      contentType,
      first,
      new Uint8Array(64 * 1024).fill(0x78),
      total,
    );
    await using _upstream = upstream;
    await using gw = await startGateway({
      upstreams: {},
      listening: { endless: upstream.port },
      routes: [{ model: MODEL, priorities: [["endless"]], timeoutMs: 0 }],
    });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], stream: true }),
    });
    let received = 0;
    let failed: unknown;
    try {
      for await (const chunk of res.body!) received += chunk.length;
    } catch (err) {
      failed = err;
    }
    assert(failed !== undefined, "the client's stream ends in an error, not as if complete");
    await pollUntil("the upstream stream to be cancelled", () => produced.cancelled || undefined);
    // Cut at the cap: what the upstream managed to send is the cap plus what socket buffers took, far below total.
    assert(produced.bytes >= cap && produced.bytes < total, `the upstream sent ${produced.bytes} bytes`);
    assert(received < total, `the client received ${received} bytes`);
    await pollUntil(
      "streams to close",
      () => gw.extproc.openStreams === 0 && gw.edge.activeRequests === 0 || undefined,
    );
  });
}

Deno.test("the stream parsers refuse what they would have to hold without bound", () => {
  const sse = new SseParser({ maxEventChars: 1000 });
  assertEquals(sse.push(encoder.encode(`data: ${"a".repeat(900)}\n\n`)).length, 1, "an event under the cap passes");
  let thrown: unknown;
  try {
    for (let i = 0; i < 20; i++) sse.push(encoder.encode(`data: ${"b".repeat(90)}\n`)); // data lines, never a blank one
  } catch (err) {
    thrown = err;
  }
  assert(thrown instanceof SseEventTooLargeError, "data lines that never end their event");
  thrown = undefined;
  try {
    new SseParser({ maxEventChars: 1000 }).push(new Uint8Array(1001).fill(0x61));
  } catch (err) {
    thrown = err;
  }
  assert(thrown instanceof SseEventTooLargeError, "a line that never ends");

  // A prelude announcing a 1 GiB frame is refused at once instead of being buffered until it arrives.
  const prelude = new Uint8Array(16);
  new DataView(prelude.buffer).setUint32(0, 1024 * MiB);
  thrown = undefined;
  try {
    new AwsEventStreamParser().push(prelude);
  } catch (err) {
    thrown = err;
  }
  assert(thrown instanceof Error && /Corrupt event-stream frame/.test(thrown.message));
  assert(MAX_EVENT_STREAM_FRAME_BYTES === 16 * MiB);
});
