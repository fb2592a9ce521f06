// What the loader, the reference checks and the compiler report: one error per problem, each pointing at the file,
// the document inside it, the resource and the field, so a user can fix every problem of a config in one pass.
import type { core } from "zod";

export interface ResourceError {
  readonly file: string;
  /** 0-based index of the YAML document in the file; absent when the file itself could not be read. */
  readonly document?: number;
  /** 1-based line of the offending node, when it is known. */
  readonly line?: number;
  readonly kind?: string;
  /** "namespace/name" of the resource. */
  readonly name?: string;
  /** Field path in the resource, e.g. `spec.rules[0].backendRefs[1].priority`; "" for the whole document. */
  readonly path: string;
  /** Sentence case, says what is wrong. */
  readonly message: string;
}

/** Where a resource (or a document that failed to become one) came from. */
export interface ResourceOrigin {
  readonly file: string;
  readonly document: number;
  readonly kind?: string;
  readonly name?: string;
}

export type PathSegment = string | number;

export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += out === "" ? segment : `.${segment}`;
  }
  return out;
}

/** `basic.yaml#3 AIGatewayRoute default/route spec.rules[0]: Message` (document shown 0-based, as reported). */
export function formatResourceError(e: ResourceError): string {
  const where = e.document === undefined ? e.file : `${e.file}#${e.document}`;
  const line = e.line === undefined ? "" : `:${e.line}`;
  const what = e.kind === undefined ? "" : ` ${e.kind}${e.name === undefined ? "" : ` ${e.name}`}`;
  const path = e.path === "" ? "" : ` ${e.path}`;
  return `${where}${line}${what}${path}: ${e.message}`;
}

export function errorAt(origin: ResourceOrigin, path: readonly PathSegment[] | string, message: string): ResourceError {
  return {
    file: origin.file,
    document: origin.document,
    ...(origin.kind === undefined ? {} : { kind: origin.kind }),
    ...(origin.name === undefined ? {} : { name: origin.name }),
    path: typeof path === "string" ? path : formatPath(path),
    message,
  };
}

/** Orders errors by file, document and path so reports are stable whatever order the checks ran in. */
export function sortErrors(errors: readonly ResourceError[]): ResourceError[] {
  return [...errors].sort((a, b) =>
    a.file.localeCompare(b.file) || (a.document ?? -1) - (b.document ?? -1) || a.path.localeCompare(b.path) ||
    a.message.localeCompare(b.message)
  );
}

/** zod's per-parse error map: our own sentence-case messages instead of zod's defaults. */
export function issueMessage(issue: core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return "Field is required";
      return `Expected ${article(issue.expected)}, got ${describe(issue.input)}`;
    case "invalid_value":
      return `Expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, got ${describe(issue.input)}`;
    case "too_small":
      if (issue.origin === "array") return `Must have at least ${issue.minimum} item${issue.minimum === 1 ? "" : "s"}`;
      if (issue.origin === "string") return issue.minimum === 1 ? "Must not be empty" : `Is too short`;
      return `Must be at least ${issue.minimum}`;
    case "too_big":
      if (issue.origin === "array") return `Must have at most ${issue.maximum} items`;
      if (issue.origin === "string") return `Must be at most ${issue.maximum} characters long`;
      return `Must be at most ${issue.maximum}`;
    case "invalid_key":
      return issue.issues[0]?.message ?? "Invalid key";
    case "invalid_format":
      return `Is not a valid ${issue.format === "regex" ? "value" : issue.format}: ${describe(issue.input)}`;
    default:
      return undefined;
  }
}

function article(expected: string): string {
  if (expected === "object" || expected === "array" || expected === "int") {
    return expected === "int" ? "an integer" : `an ${expected}`;
  }
  return expected === "string" || expected === "number" || expected === "boolean" ? `a ${expected}` : expected;
}

function describe(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "an array";
  if (typeof input === "object") return "an object";
  if (typeof input === "string") {
    return `string ${JSON.stringify(input.length > 60 ? `${input.slice(0, 57)}...` : input)}`;
  }
  if (typeof input === "number" && !Number.isInteger(input)) return `number ${input}`;
  return `${typeof input} ${String(input)}`;
}
