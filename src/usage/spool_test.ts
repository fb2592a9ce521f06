import fc from "fast-check";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { crc32, Spool, SpoolError, type SpoolOptions } from "./spool.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function tempDir(): { readonly path: string } & Disposable {
  const path = Deno.makeTempDirSync({ prefix: "tollgate-spool-" });
  return { path, [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }) };
}

function options(dir: string, over: Partial<SpoolOptions> = {}): SpoolOptions {
  return { path: `${dir}/usage.spool`, maxBytes: 1 << 20, maxRecords: 1000, overflow: "reject-new", ...over };
}

function append(spool: Spool, id: string) {
  return spool.append(id, `tollgate.usage.${id}`, enc.encode(`{"id":"${id}"}`));
}

function ids(spool: Spool, n = 10_000): string[] {
  return spool.peekBatch(n).map((r) => r.id);
}

Deno.test("crc32 matches the IEEE check value", () => {
  assertEquals(crc32(enc.encode("123456789")), 0xcbf43926);
});

Deno.test("Spool gives records back in order with increasing indices, and ack removes them", () => {
  using dir = tempDir();
  using spool = Spool.open(options(dir.path));
  for (let i = 0; i < 5; i++) assertEquals(append(spool, `e${i}`), { accepted: true, index: i, evicted: 0 });
  const batch = spool.peekBatch(3);
  assertEquals(batch.map((r) => [r.index, r.id, r.subject, dec.decode(r.bytes)]), [
    [0, "e0", "tollgate.usage.e0", '{"id":"e0"}'],
    [1, "e1", "tollgate.usage.e1", '{"id":"e1"}'],
    [2, "e2", "tollgate.usage.e2", '{"id":"e2"}'],
  ]);
  assertEquals(spool.ack(1), 2);
  assertEquals(spool.ack(1), 0, "acking again removes nothing");
  assertEquals(ids(spool), ["e2", "e3", "e4"]);
  assertEquals(spool.peekBatch(1)[0]?.index, 2);
  assertEquals(spool.ack(4), 3);
  assertEquals([spool.records, spool.bytes, spool.fileBytes], [0, 0, 8], "an empty spool is truncated to its header");
  assertEquals(append(spool, "e5"), { accepted: true, index: 5, evicted: 0 }, "indices keep increasing");
});

Deno.test("Spool reopened after a restart mid-spool continues with the records not acknowledged, in order", () => {
  using dir = tempDir();
  {
    using spool = Spool.open(options(dir.path));
    for (let i = 0; i < 10; i++) append(spool, `e${i}`);
    spool.ack(spool.peekBatch(3)[2]!.index);
  }
  {
    using spool = Spool.open(options(dir.path));
    assertEquals(spool.recovered, { records: 7, tornBytes: 0 });
    assertEquals(ids(spool), ["e3", "e4", "e5", "e6", "e7", "e8", "e9"]);
    append(spool, "e10");
    spool.ack(spool.peekBatch(2)[1]!.index);
  }
  using spool = Spool.open(options(dir.path));
  assertEquals(ids(spool), ["e5", "e6", "e7", "e8", "e9", "e10"]);
});

Deno.test("Spool drops a torn last write when it is reopened, and appends after it", () => {
  using dir = tempDir();
  const o = options(dir.path);
  {
    using spool = Spool.open(o);
    for (let i = 0; i < 3; i++) append(spool, `e${i}`);
  }
  const whole = Deno.readFileSync(o.path);
  {
    using spool = Spool.open(o);
    append(spool, "e3");
  }
  const withFourth = Deno.readFileSync(o.path);
  // The process died half way through writing the fourth record.
  const cut = whole.length + Math.floor((withFourth.length - whole.length) / 2);
  Deno.writeFileSync(o.path, withFourth.subarray(0, cut));
  {
    using spool = Spool.open(o);
    assertEquals(spool.recovered, { records: 3, tornBytes: cut - whole.length });
    assertEquals(ids(spool), ["e0", "e1", "e2"]);
    append(spool, "e4");
  }
  using spool = Spool.open(o);
  assertEquals(ids(spool), ["e0", "e1", "e2", "e4"]);
});

Deno.test("Spool drops a last record whose checksum does not match", () => {
  using dir = tempDir();
  const o = options(dir.path);
  {
    using spool = Spool.open(o);
    for (let i = 0; i < 3; i++) append(spool, `e${i}`);
  }
  const data = Deno.readFileSync(o.path);
  data[data.length - 2] = data[data.length - 2]! ^ 0xff;
  Deno.writeFileSync(o.path, data);
  using spool = Spool.open(o);
  assertEquals(ids(spool), ["e0", "e1"]);
  assert(spool.recovered.tornBytes > 0);
});

Deno.test("Spool with reject-new refuses records beyond its record or byte limit and keeps the old ones", () => {
  using dir = tempDir();
  {
    using spool = Spool.open(options(dir.path, { maxRecords: 3 }));
    for (let i = 0; i < 3; i++) assert(append(spool, `e${i}`).accepted);
    assertEquals(append(spool, "e3"), { accepted: false, reason: "full" });
    spool.ack(spool.peekBatch(1)[0]!.index);
    assert(append(spool, "e4").accepted, "room again once one is acknowledged");
    assertEquals(ids(spool), ["e1", "e2", "e4"]);
  }
  using dir2 = tempDir();
  using spool = Spool.open(options(dir2.path, { maxBytes: 100 }));
  assert(append(spool, "a").accepted);
  assert(append(spool, "b").accepted);
  assertEquals(append(spool, "c"), { accepted: false, reason: "full" });
  assertEquals(spool.append("big", "s", new Uint8Array(200)), { accepted: false, reason: "too_large" });
  assert(spool.bytes <= 100);
});

Deno.test("Spool with drop-oldest evicts the oldest records, and the eviction survives a restart", () => {
  using dir = tempDir();
  const o = options(dir.path, { maxRecords: 3, overflow: "drop-oldest" });
  {
    using spool = Spool.open(o);
    const results = Array.from({ length: 5 }, (_, i) => append(spool, `e${i}`));
    assertEquals(results.map((r) => r.accepted && r.evicted), [0, 0, 0, 1, 1]);
    assertEquals(ids(spool), ["e2", "e3", "e4"]);
  }
  using spool = Spool.open(o);
  assertEquals(ids(spool), ["e2", "e3", "e4"]);
  assertEquals(spool.append("big", "s", new Uint8Array(2 << 20)), { accepted: false, reason: "too_large" });
});

Deno.test("Spool rewrites its file once the acknowledged part outweighs the rest, keeping order", () => {
  using dir = tempDir();
  const o = options(dir.path, { compactBytes: 512 });
  {
    using spool = Spool.open(o);
    for (let i = 0; i < 200; i++) {
      append(spool, `e${i}`);
      if (i % 2 === 1) spool.ack(spool.peekBatch(1)[0]!.index);
    }
    assertEquals(spool.records, 100);
    assert(spool.fileBytes < 2 * spool.bytes + 1024, `file ${spool.fileBytes} B for ${spool.bytes} B live`);
    assertEquals(ids(spool), Array.from({ length: 100 }, (_, i) => `e${100 + i}`));
    assertEquals(spool.peekBatch(1)[0]!.index, 100, "indices survive the rewrite");
  }
  using spool = Spool.open(o);
  assertEquals(ids(spool), Array.from({ length: 100 }, (_, i) => `e${100 + i}`));
});

Deno.test("Spool refuses a second opener and a file that is not a spool", () => {
  using dir = tempDir();
  using _spool = Spool.open(options(dir.path));
  let error: unknown;
  try {
    Spool.open(options(dir.path));
  } catch (err) {
    error = err;
  }
  assert(error instanceof SpoolError && /another process has it open/.test(error.message));
  Deno.writeTextFileSync(`${dir.path}/other`, "not a spool at all");
  error = undefined;
  try {
    Spool.open({ ...options(dir.path), path: `${dir.path}/other` });
  } catch (err) {
    error = err;
  }
  assert(error instanceof SpoolError && /bad header/.test(error.message));
});

Deno.test("Spool behaves like a bounded FIFO under any mix of appends, acks, peeks and restarts", () => {
  type Op =
    | { op: "append"; size: number }
    | { op: "ack"; n: number }
    | { op: "peek"; n: number }
    | { op: "reopen" };
  const op = fc.oneof(
    fc.record({ op: fc.constant("append" as const), size: fc.integer({ min: 0, max: 300 }) }),
    fc.record({ op: fc.constant("ack" as const), n: fc.integer({ min: 0, max: 6 }) }),
    fc.record({ op: fc.constant("peek" as const), n: fc.integer({ min: 1, max: 8 }) }),
    fc.record({ op: fc.constant("reopen" as const) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), fc.boolean(), (ops: Op[], dropOldest) => {
      using dir = tempDir();
      const o = options(dir.path, {
        maxRecords: 12,
        maxBytes: 2000,
        compactBytes: 256,
        overflow: dropOldest ? "drop-oldest" : "reject-new",
      });
      let spool = Spool.open(o);
      const model: { id: string; size: number }[] = [];
      let seq = 0;
      try {
        for (const step of ops) {
          if (step.op === "append") {
            const id = `e${seq++}`;
            const r = spool.append(id, "s", new Uint8Array(step.size).fill(seq % 251));
            if (r.accepted) {
              model.splice(0, r.evicted);
              model.push({ id, size: step.size });
            } else {
              assert(!dropOldest, "drop-oldest always makes room for a record that fits at all");
            }
          } else if (step.op === "ack") {
            const batch = spool.peekBatch(step.n);
            if (batch.length) spool.ack(batch[batch.length - 1]!.index);
            model.splice(0, batch.length);
          } else if (step.op === "peek") {
            const batch = spool.peekBatch(step.n);
            assertEquals(batch.map((r) => r.id), model.slice(0, step.n).map((m) => m.id));
            assertEquals(batch.map((r) => r.bytes.length), model.slice(0, step.n).map((m) => m.size));
          } else {
            spool.close();
            spool = Spool.open(o);
          }
          assertEquals(spool.records, model.length);
          assert(spool.records <= 12 && spool.bytes <= 2000);
        }
        assertEquals(ids(spool), model.map((m) => m.id));
      } finally {
        spool.close();
      }
    }),
    { numRuns: 150 },
  );
});
