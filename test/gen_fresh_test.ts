// Generated code is committed; this fails when src/protocol/gen/ no longer matches what `npm run gen:proto`
// produces from the protos in node_modules (e.g. after a ts-proto or @grpc/grpc-js-xds upgrade).
import { assertEquals } from "./support/assert.ts";

const root = new URL("../", import.meta.url).pathname;

async function listFiles(dir: string, prefix = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix + e.name;
    if (e.isDirectory) { for (const [k, v] of await listFiles(`${dir}/${e.name}`, rel + "/")) out.set(k, v); }
    else out.set(rel, await Deno.readTextFile(`${dir}/${e.name}`));
  }
  return out;
}

Deno.test("src/protocol/gen is what npm run gen:proto generates", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "tollgate-gen-" });
  try {
    const out = await new Deno.Command(`${root}scripts/gen_proto.sh`, {
      args: [tmp],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const fresh = await listFiles(tmp);
    const committed = await listFiles(`${root}src/protocol/gen`);
    assertEquals(
      [...committed.keys()].sort(),
      [...fresh.keys()].sort(),
      "generated file list differs: run npm run gen:proto",
    );
    const stale = [...fresh].filter(([k, v]) => committed.get(k) !== v).map(([k]) => k);
    assertEquals(stale, [], "stale generated files: run npm run gen:proto");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
