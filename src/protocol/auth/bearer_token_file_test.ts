import { assert, assertEquals, assertMatch } from "../../../test/support/assert.ts";
import { ManualClock } from "../../observability/clock.ts";
import { BearerTokenFile, BearerTokenFileError } from "./bearer_token_file.ts";

const SECRET = "ya29.c.b0AXv0zTsecret-token_value";

async function tempDir(): Promise<AsyncDisposable & { readonly path: (name: string) => string }> {
  const dir = await Deno.makeTempDir({ prefix: "bearer_token_file_" });
  return {
    path: (name) => `${dir}/${name}`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert(e instanceof Error);
    return e;
  }
  throw new Error("expected a rejection");
}

/** Everything an error could show in a log line: message, stack and the whole cause chain. */
function everythingIn(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return `${e.message}\n${e.stack}\n${everythingIn(e.cause)}`;
}

Deno.test("BearerTokenFile reads the trimmed token and builds the Authorization value", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(dir.path("token"), `  ${SECRET}\n`);
  const file = new BearerTokenFile(dir.path("token"), { clock: new ManualClock() });
  assertEquals(await file.token(), SECRET);
  assertEquals(await file.header(), `Bearer ${SECRET}`);
});

Deno.test("BearerTokenFile accepts an OAuth token response with access_token", async () => {
  await using dir = await tempDir();
  const json = { access_token: SECRET, expires_in: 3599, token_type: "Bearer" };
  await Deno.writeTextFile(dir.path("token.json"), JSON.stringify(json, null, 2));
  const file = new BearerTokenFile(dir.path("token.json"), { clock: new ManualClock() });
  assertEquals(await file.token(), SECRET);
});

Deno.test("BearerTokenFile picks up a rotated token once maxAgeMs has passed on the clock", async () => {
  await using dir = await tempDir();
  const path = dir.path("token");
  await Deno.writeTextFile(path, "first-token");
  const clock = new ManualClock();
  const file = new BearerTokenFile(path, { clock, maxAgeMs: 1_000 });
  assertEquals(await file.token(), "first-token");

  // Rotation as refreshers do it: a new file renamed over the old one.
  await Deno.writeTextFile(dir.path("token.tmp"), "second-token");
  await Deno.rename(dir.path("token.tmp"), path);
  clock.advance(999);
  assertEquals(await file.token(), "first-token", "the file is not looked at before maxAgeMs");
  clock.advance(1);
  assertEquals(await file.token(), "second-token");

  // Rotation in place: same inode, a new mtime.
  await Deno.writeTextFile(path, "third-token!");
  await Deno.utime(path, new Date(), new Date(Date.now() + 60_000));
  clock.advance(1_000);
  assertEquals(await file.token(), "third-token!");
});

Deno.test("BearerTokenFile does not read the file again while it has not changed", async () => {
  await using dir = await tempDir();
  const path = dir.path("token");
  await Deno.writeTextFile(path, "stable-token");
  const stamp = new Date("2030-01-01T00:00:00Z");
  await Deno.utime(path, stamp, stamp);
  const clock = new ManualClock();
  const file = new BearerTokenFile(path, { clock, maxAgeMs: 10 });
  assertEquals(await file.token(), "stable-token");
  // Same size, same mtime, same inode: indistinguishable from the cached version, so the cache answers.
  await Deno.writeTextFile(path, "sneaky-token");
  await Deno.utime(path, stamp, stamp);
  clock.advance(10);
  assertEquals(await file.token(), "stable-token");
});

Deno.test("BearerTokenFile answers concurrent callers with the same token", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(dir.path("token"), SECRET);
  const file = new BearerTokenFile(dir.path("token"), { clock: new ManualClock() });
  assertEquals(await Promise.all([file.token(), file.token(), file.header()]), [SECRET, SECRET, `Bearer ${SECRET}`]);
});

Deno.test("BearerTokenFile names the path of a missing file", async () => {
  await using dir = await tempDir();
  const path = dir.path("absent");
  const e = await rejection(new BearerTokenFile(path, { clock: new ManualClock() }).token());
  assert(e instanceof BearerTokenFileError);
  assertEquals(e.name, "BearerTokenFileError");
  assertEquals(e.message, `Cannot read the bearer token file ${JSON.stringify(path)}: it does not exist`);
});

Deno.test("BearerTokenFile refuses an empty file and a JSON file without access_token", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(dir.path("empty"), " \n");
  await Deno.writeTextFile(dir.path("no_access"), JSON.stringify({ id_token: SECRET }));
  const clock = new ManualClock();
  const empty = await rejection(new BearerTokenFile(dir.path("empty"), { clock }).token());
  assertMatch(empty.message, /^Bad bearer token file ".*empty": it is empty$/);
  const noAccess = await rejection(new BearerTokenFile(dir.path("no_access"), { clock }).token());
  assertMatch(noAccess.message, /^Bad bearer token file ".*no_access": its JSON has no "access_token" string$/);
});

Deno.test("BearerTokenFile never shows the token in an error, its stack or its cause", async () => {
  await using dir = await tempDir();
  const cases: Record<string, string> = {
    broken_json: `{"access_token": "${SECRET}"`,
    not_a_header: `${SECRET} ${SECRET}`,
    id_token_only: JSON.stringify({ id_token: SECRET }),
    bad_access_token: JSON.stringify({ access_token: `${SECRET}\n${SECRET}` }),
  };
  for (const [name, content] of Object.entries(cases)) {
    await Deno.writeTextFile(dir.path(name), content);
    const e = await rejection(new BearerTokenFile(dir.path(name), { clock: new ManualClock() }).token());
    assert(e instanceof BearerTokenFileError, name);
    assert(!everythingIn(e).includes("secret-token"), `${name}: ${everythingIn(e)}`);
  }
});

Deno.test("BearerTokenFile fails once the file disappears after a rotation check is due", async () => {
  await using dir = await tempDir();
  const path = dir.path("token");
  await Deno.writeTextFile(path, SECRET);
  const clock = new ManualClock();
  const file = new BearerTokenFile(path, { clock, maxAgeMs: 100 });
  assertEquals(await file.token(), SECRET);
  await Deno.remove(path);
  assertEquals(await file.token(), SECRET, "the cached token is served until the next check");
  clock.advance(100);
  const e = await rejection(file.token());
  assertMatch(e.message, /: it does not exist$/);
  assert(!everythingIn(e).includes(SECRET));
});
