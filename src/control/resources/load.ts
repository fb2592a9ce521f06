// Reads resource files (or directories of *.yaml / *.yml), splits multi-document YAML, substitutes ${VAR}s, checks
// every document against its schema and then the references between resources. Nothing stops at the first problem:
// the result carries every error, each with file, document index, resource, field path and (when known) line.
import { resolve } from "node:path";
import YAML, { type Document, LineCounter } from "yaml";
import type { core } from "zod";
import {
  errorAt,
  formatPath,
  issueMessage,
  type PathSegment,
  type ResourceError,
  type ResourceOrigin,
  sortErrors,
} from "./errors.ts";
import { DEFAULT_NAMESPACE, lookupKind, type Resource, toResource } from "./resource.ts";
import { type Env, substituteDocument } from "./substitute.ts";
import { validateReferences } from "./references.ts";
import { nodeOffset, yamlValue } from "./yaml_positions.ts";

/** A document of a kind Tollgate does not read (a Deployment, a BackendTLSPolicy…), skipped on purpose. */
export interface IgnoredDocument {
  readonly file: string;
  readonly document: number;
  readonly apiVersion: string;
  readonly kind: string;
  readonly name?: string;
}

export interface LoadResult {
  readonly resources: readonly Resource[];
  readonly errors: readonly ResourceError[];
  readonly ignored: readonly IgnoredDocument[];
}

export interface LoadOptions {
  /** Values for ${VAR} substitution. */
  readonly env?: Env;
  /**
   * Parsed files by path, reused while a file's text is unchanged (the controller reloads a directory of thousands
   * of routes on every change; YAML parsing dominates). Valid for one `env` only. Files no longer present are
   * dropped from it.
   */
  readonly cache?: Map<string, { readonly text: string; readonly result: LoadResult }>;
  /**
   * Check the references between the resources loaded (default true). The controller says false: it checks them
   * once, across every source, and hands the index it built to the compiler.
   */
  readonly checkReferences?: boolean;
  /**
   * Absolute paths of the YAML files that changed since the last load with this `cache`, from file events (the
   * controller's directory source). When given, a cached file not among them is taken from the cache without being
   * read. One that is neither found by this load nor gone from disk (spelled another way than the walk found it, e.g.
   * through a symlink) makes this load read every file. Without it, every file is read.
   */
  readonly changed?: ReadonlySet<string>;
}

export async function loadResources(paths: readonly string[], options: LoadOptions = {}): Promise<LoadResult> {
  const resources: Resource[] = [];
  const errors: ResourceError[] = [];
  const ignored: IgnoredDocument[] = [];
  const seen = new Set<string>();
  const pause = new Pause();
  const listed: { entry: string; files: string[] }[] = [];
  for (const entry of paths) {
    const files = resourceFiles(entry);
    if ("error" in files) errors.push({ file: entry, path: "", message: files.error });
    else listed.push({ entry, files: files.files });
  }
  const stale = staleFiles(listed.flatMap((l) => l.files), options);
  for (const { files } of listed) {
    const texts = await readAll(files, stale, options.cache);
    for (const [i, file] of files.entries()) {
      await pause.maybe();
      const read = texts[i]!;
      if ("error" in read) {
        const e = read.error;
        errors.push({ file, path: "", message: `Cannot read the file: ${e instanceof Error ? e.message : String(e)}` });
        continue;
      }
      const { text } = read;
      seen.add(file);
      const hit = options.cache?.get(file);
      const parsed = hit && hit.text === text ? hit.result : parseResources(text, file, options);
      options.cache?.set(file, { text, result: parsed });
      resources.push(...parsed.resources);
      errors.push(...parsed.errors);
      ignored.push(...parsed.ignored);
    }
  }
  for (const file of options.cache?.keys() ?? []) if (!seen.has(file)) options.cache!.delete(file);
  if (options.checkReferences !== false) errors.push(...validateReferences(resources));
  return { resources, errors: sortErrors(errors), ignored };
}

/**
 * Reads every file, results in the order given. Synchronous reads, giving the event loop back every few
 * milliseconds: for a directory of thousands of small manifests they take a third of the time of as many
 * asynchronous reads (no promise and no thread hop per file), and the pauses keep the process answering meanwhile
 * (the controller renews its lease while it loads).
 */
async function readAll(
  files: readonly string[],
  stale: (file: string) => boolean,
  cache: LoadOptions["cache"],
): Promise<({ text: string } | { error: unknown })[]> {
  const out = new Array<{ text: string } | { error: unknown }>(files.length);
  const pause = new Pause();
  for (const [i, file] of files.entries()) {
    const cached = cache?.get(file);
    if (cached && !stale(file)) {
      out[i] = { text: cached.text };
      continue;
    }
    await pause.maybe();
    try {
      out[i] = { text: Deno.readTextFileSync(file) };
    } catch (error) {
      out[i] = { error };
    }
  }
  return out;
}

/** Whether a file must be read again (see LoadOptions.changed): every one, unless the changes are all accounted for. */
function staleFiles(files: readonly string[], options: LoadOptions): (file: string) => boolean {
  const changed = options.changed;
  if (!changed || !options.cache) return () => true;
  const absolute = new Map(files.map((f) => [f, resolve(f)]));
  const found = new Set(absolute.values());
  for (const path of changed) {
    if (found.has(path)) continue;
    try {
      Deno.lstatSync(path);
    } catch {
      continue; // Gone: the walk no longer lists it, and the cache drops it.
    }
    return () => true;
  }
  return (file) => changed.has(absolute.get(file) ?? resolve(file));
}

/** Gives the event loop back (timers, I/O) once `everyMs` of work has passed since the last time. */
class Pause {
  #since = performance.now();
  constructor(readonly everyMs = 20) {}

  async maybe(): Promise<void> {
    if (performance.now() - this.#since < this.everyMs) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.#since = performance.now();
  }
}

/** One file's documents, schema-checked; references to other files are checked by loadResources. */
export function parseResources(text: string, file: string, options: LoadOptions = {}): LoadResult {
  const lineCounter = new LineCounter();
  const docs = YAML.parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const result = { resources: [] as Resource[], errors: [] as ResourceError[], ignored: [] as IgnoredDocument[] };
  if (!Array.isArray(docs)) return result;
  docs.forEach((doc, index) => parseDocument(doc, { file, document: index }, lineCounter, options.env ?? {}, result));
  return result;
}

function parseDocument(
  doc: Document,
  at: ResourceOrigin,
  lines: LineCounter,
  env: Env,
  out: { resources: Resource[]; errors: ResourceError[]; ignored: IgnoredDocument[] },
): void {
  const [syntax] = doc.errors;
  if (syntax) {
    // Only the first: the parser's later errors in the same document are nearly always echoes of it.
    const line = lines.linePos(syntax.pos[0]).line;
    out.errors.push({ ...errorAt(at, "", `Invalid YAML: ${syntax.message.split("\n")[0]}`), line });
    return;
  }
  const substitution = substituteDocument(doc, env);
  const raw = yamlValue(doc);
  if (raw instanceof Error) {
    out.errors.push(errorAt(at, "", `Invalid YAML: ${raw.message}`));
    return;
  }
  if (raw === null || raw === undefined) return;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    out.errors.push(errorAt(at, "", "A resource document must be a mapping"));
    return;
  }
  const body = raw as Record<string, unknown>;
  const origin = originOf(body, at);
  const lineOf = (path: readonly PathSegment[]) => {
    const offset = nodeOffset(doc, path);
    return offset === undefined ? {} : { line: lines.linePos(offset).line };
  };
  for (const e of substitution) out.errors.push({ ...errorAt(origin, e.path, e.message), ...lineOf(e.path) });

  const { apiVersion, kind } = body;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    for (const field of ["apiVersion", "kind"] as const) {
      if (typeof body[field] !== "string") out.errors.push(errorAt(origin, field, "Field is required"));
    }
    return;
  }
  const found = lookupKind(apiVersion, kind);
  if (found.status === "ignored") {
    out.ignored.push({ ...at, apiVersion, kind, ...(origin.name ? { name: origin.name } : {}) });
    return;
  }
  if (found.status === "unsupported") {
    out.errors.push({ ...errorAt(origin, "kind", found.message), ...lineOf(["kind"]) });
    return;
  }
  const parsed = found.schema.safeParse(body, { error: issueMessage });
  if (parsed.success) {
    out.resources.push(toResource(parsed.data as Record<string, unknown>, origin));
    return;
  }
  // A variable that failed to expand leaves its ${...} text behind; the schema error it causes would say it twice.
  const substituted = new Set(substitution.map((e) => formatPath(e.path)));
  for (const issue of parsed.error.issues) {
    for (const [path, message] of issueErrors(issue)) {
      if (substituted.has(formatPath(path))) continue;
      out.errors.push({ ...errorAt(origin, path, message), ...lineOf(path) });
    }
  }
}

function issueErrors(issue: core.$ZodIssue): [PathSegment[], string][] {
  const path = issue.path.map((p) => (typeof p === "number" ? p : String(p)));
  if (issue.code === "unrecognized_keys") return issue.keys.map((key) => [[...path, key], `Unknown field "${key}"`]);
  return [[path, issue.message]];
}

function originOf(body: Record<string, unknown>, at: ResourceOrigin): ResourceOrigin {
  const meta = body["metadata"];
  const name = typeof meta === "object" && meta !== null ? (meta as Record<string, unknown>)["name"] : undefined;
  const ns = typeof meta === "object" && meta !== null ? (meta as Record<string, unknown>)["namespace"] : undefined;
  return {
    ...at,
    ...(typeof body["kind"] === "string" ? { kind: body["kind"] } : {}),
    ...(typeof name === "string" && name !== ""
      ? { name: `${typeof ns === "string" ? ns : DEFAULT_NAMESPACE}/${name}` }
      : {}),
  };
}

/** The YAML files of a file or directory entry, sorted. Synchronous listing: as with reading, a promise per
 * directory entry costs more than the listing itself. */
function resourceFiles(entry: string): { files: string[] } | { error: string } {
  try {
    const info = Deno.statSync(entry);
    if (!info.isDirectory) return { files: [entry] };
    const files: string[] = [];
    walk(entry.replace(/\/$/, ""), files);
    return { files: files.sort() };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { error: "No such file or directory" };
    return { error: `Cannot read: ${e instanceof Error ? e.message : String(e)}` };
  }
}

const YAML_FILE = /\.ya?ml$/;

function walk(dir: string, into: string[]): void {
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) walk(path, into);
    else if (entry.isFile && YAML_FILE.test(entry.name)) into.push(path);
  }
}
