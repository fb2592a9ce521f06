// `${VAR}` and `${VAR:=default}` in YAML values, resolved from an env map the caller passes in (never from the
// process environment directly, so tests and the controller decide what a config may see). Substitution runs on
// the parsed YAML, value by value: comments and keys are never touched, an unquoted `port: ${PORT}` becomes a
// number, a quoted `"${PORT}"` stays a string, and every error knows its field path. `$$` writes a literal `$`.
import { type Document, isPair, isScalar, isSeq, visit } from "yaml";
import YAML from "yaml";
import type { PathSegment } from "./errors.ts";

export type Env = Readonly<Record<string, string | undefined>>;

export interface SubstitutionError {
  readonly path: readonly PathSegment[];
  /** Offset of the scalar in the source text. */
  readonly offset: number | undefined;
  readonly message: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Expands one string. Like the shell's `:=`, the default also applies when the variable is set but empty. */
export function expandVariables(text: string, env: Env): { value: string } | { error: string } {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf("$", i);
    if (dollar < 0) break;
    out += text.slice(i, dollar);
    const next = text[dollar + 1];
    if (next === "$") {
      out += "$";
      i = dollar + 2;
      continue;
    }
    if (next !== "{") {
      out += "$";
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf("}", dollar + 2);
    if (close < 0) return { error: `Unterminated variable reference "${text.slice(dollar)}"` };
    const body = text.slice(dollar + 2, close);
    const sep = body.indexOf(":=");
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME.test(name)) return { error: `Invalid variable name "${name}" in "\${${body}}"` };
    const value = env[name];
    if (value !== undefined && value !== "") out += value;
    else if (sep >= 0) out += body.slice(sep + 2);
    else if (value === "") out += "";
    else return { error: `Environment variable "${name}" is not set and has no default` };
    i = close + 1;
  }
  return { value: out + text.slice(i) };
}

/** Substitutes in place in every string value of the document; returns one error per value that failed. */
export function substituteDocument(doc: Document, env: Env): SubstitutionError[] {
  const errors: SubstitutionError[] = [];
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === "key" || typeof node.value !== "string" || !node.value.includes("$")) return;
      const expanded = expandVariables(node.value, env);
      if ("error" in expanded) {
        errors.push({ path: fieldPath(ancestors, node), offset: node.range?.[0], message: expanded.error });
        return;
      }
      // An unquoted scalar is typed after substitution, as if the value had been written in its place.
      node.value = node.type === "PLAIN" ? plainValue(expanded.value) : expanded.value;
    },
  });
  return errors;
}

function plainValue(text: string): unknown {
  try {
    const parsed: unknown = YAML.parse(text);
    if (parsed === null || typeof parsed === "number" || typeof parsed === "boolean") return parsed;
  } catch {
    // Not a scalar on its own (e.g. "a: b"): keep the text.
  }
  return text;
}

function fieldPath(ancestors: readonly unknown[], node: unknown): PathSegment[] {
  const chain = [...ancestors, node];
  const out: PathSegment[] = [];
  for (let i = 0; i < chain.length; i++) {
    const item = chain[i];
    if (isPair(item)) out.push(String(isScalar(item.key) ? item.key.value : item.key));
    else if (isSeq(item)) {
      const index = item.items.indexOf(chain[i + 1] as never);
      if (index >= 0) out.push(index);
    }
  }
  return out;
}
