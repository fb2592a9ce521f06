import { Writable } from "node:stream";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { createLogger } from "./logger.ts";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, destination };
}

Deno.test("createLogger writes structured JSON lines with the role and the fields given", () => {
  const c = capture();
  const log = createLogger({ level: "info", role: "extproc", destination: c.destination });
  log.info({ requestId: "r1", phase: "requestBody", durationMs: 0.12 }, "ExtProc stream closed");
  assertEquals(c.lines.length, 1);
  const l = c.lines[0]!;
  assertEquals([l.role, l.requestId, l.phase, l.durationMs, l.msg], [
    "extproc",
    "r1",
    "requestBody",
    0.12,
    "ExtProc stream closed",
  ]);
  assert(typeof l.time === "string");
});

Deno.test("createLogger redacts credentials wherever the usual names appear", () => {
  const c = capture();
  const log = createLogger({ level: "info", destination: c.destination });
  log.info({
    headers: { authorization: "Bearer sk-live-123", "api-key": "azure-456", "x-api-key": "anthropic-789" },
    backend: { apiKey: "k-1", secretAccessKey: "aws-2", token: "gcp-3" },
  }, "upstream");
  const text = JSON.stringify(c.lines);
  for (const secret of ["sk-live-123", "azure-456", "anthropic-789", "k-1", "aws-2", "gcp-3"]) {
    assert(!text.includes(secret), `${secret} leaked into ${text}`);
  }
  assertEquals((c.lines[0]!.headers as Record<string, string>).authorization, "[redacted]");
});
