// `tollgate extproc` serves from a supervised worker: a crash of the worker (what Deno's node:http2 does when a
// client closes a busy HTTP/2 connection) is followed at once by a new worker on the same socket, SIGTERM still
// drains and exits 0, and a worker whose supervisor was killed outright does not linger.
import { assert, assertEquals } from "./support/assert.ts";
import { spawnTollgate } from "./support/process.ts";
import { pollUntil } from "./support/nats_server.ts";
import { ExtProcTestClient } from "./support/extproc_client.ts";
import { bodyRequest, headersRequest } from "../src/protocol/ext_proc_request.ts";

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/\) Z /.test(stat); // A zombie has exited.
  } catch {
    return false;
  }
}

async function answers(socket: string): Promise<boolean> {
  const client = new ExtProcTestClient(`unix://${socket}`);
  try {
    const s = client.open();
    await s.exchange(headersRequest("requestHeaders", {
      ":method": "POST",
      ":path": "/v1/chat/completions",
      "content-type": "application/json",
    }));
    const r = await s.exchange(
      bodyRequest(
        "requestBody",
        JSON.stringify({ model: "tollgate-echo", messages: [{ role: "user", content: "hi" }] }),
      ),
    );
    s.cancel();
    return r.response?.$case === "requestBody";
  } catch {
    return false;
  } finally {
    client.close();
  }
}

const workers = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => l.msg === "Worker started" || l.msg === "Worker crashed; restarting it").length;

Deno.test("a crashed ExtProc worker is replaced at once on the same socket, and SIGTERM still exits 0", async () => {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/extproc.sock`;
  await using p = spawnTollgate(["extproc", "--listen", `unix://${socket}`, "--admin", "off"]);
  const started = await p.waitForLog("Worker started");
  const first = started.worker as number;
  await p.waitForLog("ExtProc server listening");
  assert(await answers(socket), "the first worker answers");

  Deno.kill(first, "SIGABRT"); // What the nghttp2 assertion does.
  const crashed = await p.waitForLog("Worker crashed; restarting it");
  assertEquals(crashed.signal, "SIGABRT");
  await pollUntil(
    "a second worker to listen",
    () => p.lines.filter((l) => l.msg === "ExtProc server listening").length === 2 || undefined,
    { timeoutMs: 20_000 },
  );
  assert(await answers(socket), "the new worker answers on the same socket");
  assertEquals(workers(p.lines), 2);

  p.child.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a worker exits when its supervisor is killed outright, and --crash-restarts 0 runs unsupervised", async () => {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/extproc.sock`;
  {
    await using p = spawnTollgate(["extproc", "--listen", `unix://${socket}`, "--admin", "off"]);
    const worker = (await p.waitForLog("Worker started")).worker as number;
    await p.waitForLog("ExtProc server listening");
    p.child.kill("SIGKILL");
    await p.child.status;
    await pollUntil("the orphaned worker to exit", () => !alive(worker) || undefined, { timeoutMs: 5000 });
  }
  {
    await using p = spawnTollgate([
      "extproc",
      "--listen",
      `unix://${socket}`,
      "--admin",
      "off",
      "--crash-restarts",
      "0",
    ]);
    await p.waitForLog("ExtProc server listening");
    assertEquals(workers(p.lines), 0, "no supervisor");
    assert(await answers(socket));
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("after a client closes a connection that carried hundreds of streams, the sidecar still answers", async () => {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/extproc.sock`;
  await using p = spawnTollgate(["extproc", "--listen", `unix://${socket}`, "--admin", "off"]);
  await p.waitForLog("ExtProc server listening");
  // Deno 2.9.6's node:http2 often aborts the server when the GOAWAY of such a connection arrives; whether it does
  // this time or not, a client must find the sidecar answering again.
  for (let round = 0; round < 2; round++) {
    const client = new ExtProcTestClient(`unix://${socket}`);
    const body = JSON.stringify({ model: "tollgate-echo", messages: [{ role: "user", content: "hi" }] });
    for (let i = 0; i < 300; i += 30) {
      await Promise.all(Array.from({ length: 30 }, async () => {
        const s = client.open();
        await s.exchange(headersRequest("requestHeaders", {
          ":method": "POST",
          ":path": "/v1/chat/completions",
          "content-type": "application/json",
        }));
        await s.exchange(bodyRequest("requestBody", body));
        await s.end();
      }));
    }
    client.close();
    await new Promise((r) => setTimeout(r, 300));
    await pollUntil("the sidecar to answer", async () => (await answers(socket)) || undefined, {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
  }
  const crashes = p.lines.filter((l) => l.msg === "Worker crashed; restarting it").length;
  console.log(`worker crashes during the test: ${crashes}`);
  p.child.kill("SIGTERM");
  assertEquals((await p.child.status).code, 0);
  await Deno.remove(dir, { recursive: true });
});
