// A bearer token kept in a file that something else rotates: a token refresher sidecar, GKE Workload Identity, an
// Azure federated token. The file is read once, then looked at again (stat only) at most every `maxAgeMs` on the
// injected clock, and read again when it changed, so rotation works without a restart. Either the plain token or
// an OAuth token response ({"access_token": "..."}) is accepted.
//
// The token never appears in an error message or a `cause`: errors name the path and say what is wrong with it.
import type { Clock } from "../../observability/clock.ts";

export interface BearerTokenFileOptions {
  readonly clock: Clock;
  /** How long a read token is served before the file is looked at again. */
  readonly maxAgeMs?: number;
}

export class BearerTokenFileError extends Error {
  override readonly name = "BearerTokenFileError";
}

/** What tells one version of the file from the next: an atomic rename changes the inode, a rewrite the mtime. */
interface Version {
  readonly mtime: number | undefined;
  readonly ino: number | null;
  readonly size: number;
}

interface Cached {
  readonly token: string;
  readonly version: Version;
  readonly checkedAt: number;
}

const DEFAULT_MAX_AGE_MS = 5_000;
/** Printable ASCII without spaces: what can follow "Bearer " in a header value. */
const TOKEN = /^[\x21-\x7e]+$/;

export class BearerTokenFile {
  readonly #path: string;
  readonly #clock: Clock;
  readonly #maxAgeMs: number;
  #cached: Cached | undefined;
  /** One refresh at a time: concurrent callers share it instead of racing to read the file. */
  #refreshing: Promise<string> | undefined;

  constructor(path: string, options: BearerTokenFileOptions) {
    this.#path = path;
    this.#clock = options.clock;
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  }

  async token(): Promise<string> {
    const cached = this.#cached;
    if (cached && this.#clock.now() - cached.checkedAt < this.#maxAgeMs) return cached.token;
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return await this.#refreshing;
  }

  async header(): Promise<string> {
    return `Bearer ${await this.token()}`;
  }

  async #refresh(): Promise<string> {
    const checkedAt = this.#clock.now();
    const version = await this.#stat();
    const cached = this.#cached;
    if (cached && sameVersion(cached.version, version)) {
      this.#cached = { ...cached, checkedAt };
      return cached.token;
    }
    const token = parseToken(await this.#read(), this.#path);
    this.#cached = { token, version, checkedAt };
    return token;
  }

  async #stat(): Promise<Version> {
    try {
      const info = await Deno.stat(this.#path);
      return { mtime: info.mtime?.getTime(), ino: info.ino, size: info.size };
    } catch (e) {
      throw this.#unreadable(e);
    }
  }

  async #read(): Promise<string> {
    try {
      return await Deno.readTextFile(this.#path);
    } catch (e) {
      throw this.#unreadable(e);
    }
  }

  /** The file system's error only says what happened to the path; it is kept as the cause. */
  #unreadable(e: unknown): BearerTokenFileError {
    const why = e instanceof Deno.errors.NotFound
      ? "it does not exist"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : "it cannot be read";
    return new BearerTokenFileError(`Cannot read the bearer token file ${JSON.stringify(this.#path)}: ${why}`, {
      cause: e,
    });
  }
}

function sameVersion(a: Version, b: Version): boolean {
  return a.mtime !== undefined && a.mtime === b.mtime && a.ino === b.ino && a.size === b.size;
}

function parseToken(text: string, path: string): string {
  const fail = (why: string) => new BearerTokenFileError(`Bad bearer token file ${JSON.stringify(path)}: ${why}`);
  const trimmed = text.trim();
  if (trimmed === "") throw fail("it is empty");
  let token = trimmed;
  if (trimmed.startsWith("{")) {
    // No cause: a JSON.parse error quotes the text it failed on, which is the secret.
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw fail("it starts with { but is not valid JSON");
    }
    const access = typeof parsed === "object" && parsed !== null
      ? (parsed as Record<string, unknown>).access_token
      : undefined;
    if (typeof access !== "string" || access.trim() === "") throw fail('its JSON has no "access_token" string');
    token = access.trim();
  }
  if (!TOKEN.test(token)) throw fail("the token has spaces or characters a header cannot carry");
  return token;
}
