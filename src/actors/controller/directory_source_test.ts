import { assertEquals } from "../../../test/support/assert.ts";
import { changedFiles } from "./directory_source.ts";

Deno.test("changedFiles names the YAML files of an event, ignores files that are gone or not YAML, and says all for the rest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tollgate-dirsource-" });
  try {
    await Deno.writeTextFile(`${dir}/notes.txt`, "x");
    await Deno.mkdir(`${dir}/sub`);
    await Deno.symlink(`${dir}/sub`, `${dir}/..data`);
    const event = (kind: Deno.FsEvent["kind"], paths: string[], flag?: Deno.FsEventFlag): Deno.FsEvent =>
      flag ? { kind, paths, flag } : { kind, paths };

    // An atomic replace: the temporary file is gone by the time its events are read; the target is what changed.
    assertEquals(changedFiles(event("create", [`${dir}/a.yaml.1234.tmp`])), []);
    assertEquals(changedFiles(event("rename", [`${dir}/a.yaml.1234.tmp`, `${dir}/a.yaml`])), [`${dir}/a.yaml`]);
    assertEquals(changedFiles(event("modify", [`${dir}/b.yml`, `${dir}/notes.txt`])), [`${dir}/b.yml`]);
    // A directory or a symlink moved (a ConfigMap volume swaps ..data), lost events, or an event of no known kind.
    assertEquals(changedFiles(event("create", [`${dir}/sub`])), "all");
    assertEquals(changedFiles(event("rename", [`${dir}/..data_tmp`, `${dir}/..data`])), "all");
    assertEquals(changedFiles(event("modify", [`${dir}/a.yaml`], "rescan")), "all");
    assertEquals(changedFiles(event("other", [`${dir}/a.yaml`])), "all");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
